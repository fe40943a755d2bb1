"""Per-participant message throttling (dip.ingress.ratelimit) and case-insensitive paths (dip.ingress.paths).

The limiter's answer becomes a 429's Retry-After, so a participant that waits that long must get
through; paths are case-insensitive on ingress (API-CONTRACT.md section 1) except where the
case is data.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip.ingress.paths import normalise
from dip.ingress.ratelimit import MessageRateLimiter

# --- MessageRateLimiter ------------------------------------------------------------------------------------


def test_rate_zero_disables_the_limit() -> None:
    limiter = MessageRateLimiter(rate=0, burst=1)

    assert [limiter.take("p", 1_000_000, now=0.0) for _ in range(5)] == [0.0] * 5


def test_burst_is_allowed_then_refused_with_a_retry_after() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)

    assert limiter.take("p", 15, now=100.0) == 0.0
    assert limiter.take("p", 5, now=100.0) == 0.0
    wait = limiter.take("p", 1, now=100.0)

    assert wait >= 1.0
    assert wait == int(wait)  # whole seconds, for the Retry-After header


def test_retry_after_covers_the_shortfall() -> None:
    limiter = MessageRateLimiter(rate=2, burst=20)
    limiter.take("p", 20, now=0.0)

    assert limiter.take("p", 10, now=0.0) == 5.0  # 10 tokens at 2 per second


def test_tokens_refill_over_time() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)
    limiter.take("p", 20, now=0.0)

    assert limiter.take("p", 5, now=0.5) == 0.0  # 5 tokens back after half a second
    assert limiter.take("p", 1, now=0.5) > 0


def test_refill_never_exceeds_the_burst() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)
    limiter.take("p", 20, now=0.0)

    assert limiter.take("p", 20, now=1000.0) == 0.0
    assert limiter.take("p", 1, now=1000.0) > 0


def test_refused_request_takes_no_tokens() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)
    limiter.take("p", 15, now=0.0)

    assert limiter.take("p", 10, now=0.0) > 0
    assert limiter.take("p", 5, now=0.0) == 0.0


def test_callers_have_separate_buckets() -> None:
    limiter = MessageRateLimiter(rate=1, burst=5)
    limiter.take("a", 5, now=0.0)

    assert limiter.take("a", 1, now=0.0) > 0
    assert limiter.take("b", 5, now=0.0) == 0.0


def test_batch_bigger_than_the_burst_goes_through_on_a_full_bucket() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)

    assert limiter.take("p", 500, now=0.0) == 0.0


def test_batch_bigger_than_the_burst_waits_for_a_full_bucket_not_for_ever() -> None:
    limiter = MessageRateLimiter(rate=10, burst=20)
    limiter.take("p", 20, now=0.0)

    wait = limiter.take("p", 500, now=0.0)

    assert wait == 2.0  # 20 tokens at 10 per second
    assert limiter.take("p", 500, now=wait) == 0.0


def test_burst_below_one_is_treated_as_one() -> None:
    limiter = MessageRateLimiter(rate=1, burst=0)

    assert limiter.take("p", 1, now=0.0) == 0.0
    assert limiter.take("p", 1, now=0.0) > 0


# Rates and times are binary fractions, so the arithmetic is exact and the test checks the limiter's
# logic rather than float rounding (a real client always waits a little longer than Retry-After).
@given(
    rate=st.one_of(st.integers(1, 1000), st.sampled_from([0.25, 0.5, 1.5, 2.5, 12.75])),
    burst=st.integers(1, 500),
    earlier=st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 5 * 1024)), max_size=8),
    count=st.integers(1, 2000),
)
def test_waiting_the_retry_after_is_enough(
    rate: float, burst: int, earlier: list[tuple[int, int]], count: int
) -> None:
    limiter = MessageRateLimiter(rate=rate, burst=burst)
    now = 1000.0
    for taken, gap_1024ths in earlier:  # any history of requests
        now += gap_1024ths / 1024
        limiter.take("p", taken, now=now)

    wait = limiter.take("p", count, now=now)

    assert wait >= 0
    if wait:
        assert wait >= 1.0
        assert limiter.take("p", count, now=now + wait) == 0.0


# --- normalise ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/DIP-Channel/if-005/PubConfig/1234567890", "/dip-channel/IF-005/pubconfig/1234567890"),
        ("/dip-channel/IF-005", "/dip-channel/IF-005"),
        ("/DIP-CHANNEL/If-021", "/dip-channel/IF-021"),
        ("/dip-channel/rep-002a", "/dip-channel/REP-002A"),
        ("/Dip-Channel/if-005/Replay/abcDEF1234", "/dip-channel/IF-005/replay/abcDEF1234"),
        ("/dip-channel/if-005/REQUEUE/AbCdEfGhIj", "/dip-channel/IF-005/requeue/AbCdEfGhIj"),
        ("/StatusMessage", "/statusmessage"),
        ("/StatusMessage/Config/AbCdEfGhIj", "/statusmessage/config/AbCdEfGhIj"),
        ("/Validate/if-005/MeterInstall", "/validate/IF-005/MeterInstall"),
    ],
)
def test_participant_api_paths_are_normalised(path: str, expected: str) -> None:
    assert normalise(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/dip-channel/IF-005/pubconfig/abcdefABCD",  # participant IDs keep their case
        "/admin/channels/if-005",
        "/Admin/Participants/AbCdEfGhIj",
        "/ADMIN/channels/IF-005",
        "/healthz",
        "/dip/certificate",
        "/",
        "",
    ],
)
def test_other_paths_and_participant_ids_are_left_as_sent(path: str) -> None:
    assert normalise(path) == path


@given(st.text(alphabet="abcdefghijABCDEFGHIJ0123456789", min_size=10, max_size=10))
def test_participant_id_in_a_path_is_never_changed(participant_id: str) -> None:
    assert normalise(f"/DIP-Channel/if-005/PubConfig/{participant_id}").endswith(f"/{participant_id}")
    assert normalise(f"/statusmessage/CONFIG/{participant_id}") == f"/statusmessage/config/{participant_id}"


# (path segment, whether its case is free): path words and interface IDs are; IDs and event codes are data.
PATHS = [
    [("dip-channel", True), ("IF-005", True), ("pubconfig", True), ("1234567890", False)],
    [("dip-channel", True), ("REP-002A", True), ("replay", True), ("abcDEF1234", False)],
    [("statusmessage", True), ("config", True), ("ABCdef1234", False)],
    [("validate", True), ("IF-021", True), ("ActivePower", False)],
]


@given(st.sampled_from(PATHS), st.randoms(use_true_random=False))
def test_normalise_ignores_the_case_of_path_words_and_interface_ids(
    segments: list[tuple[str, bool]], rng: random.Random
) -> None:
    canonical = "/" + "/".join(segment for segment, _ in segments)
    recased = "/" + "/".join(
        "".join(c.swapcase() if free and rng.random() < 0.5 else c for c in segment) for segment, free in segments
    )

    assert normalise(recased) == canonical
    assert normalise(canonical) == canonical
