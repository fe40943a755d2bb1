"""Case-insensitive paths (dip.ingress.paths): paths are case-insensitive on ingress
(API-CONTRACT.md section 1) except where the case is data. (The rate limits' token bucket is
tested on both stores in tests/integration/test_rate_limits.py.)
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip.ingress.paths import normalise

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
