"""Recipients that misbehave, end to end, on SQLite and PostgreSQL.

Every test goes through the whole DIP: messages are sent through the API, routed at ingest
(IF-021 from SDS: MDS always, SUP by MPAN), and pushed by the DIP's delivery worker to real
webhook servers (dip.tools.testing.WebhookReceiver) that answer as scripted: errors, Retry-After,
hanging, dropped connections, nobody listening, odd 2xx answers. What is checked is what a
participant can observe: the calls a webhook receives (and when), the delivery states the store
records, and the status messages the sender's status webhook receives.

Timing assertions compare the receivers' arrival times (``time.monotonic()``) with the bounds
dip.egress.retry documents, with a little slack for scheduling.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dip import ids
from dip.store import Store
from dip.tools.client import DipClient, Identity
from dip.tools.samples import consumption_block, mpan_core
from dip.tools.testing import AdminClient, RecordedCall, RunningDip, WebhookReceiver
from tests.helpers import MDS, SDS, SUP, consumption, in_store, items, onboard_all

Cast = dict[str, Identity]
DipFactory = Callable[..., RunningDip]

THRESHOLD = 5  # dip.egress.breaker.CircuitBreakers: failed calls in a row before the breaker opens
CLOCK = 0.02  # arrival times are taken on another thread than the worker's clock: allow a hair
SLACK = 0.5  # scheduling slack on upper bounds: the worker's poll, a claim, building and signing


# -- set-up and observation ------------------------------------------------------------------


def start(dip_factory: DipFactory, **settings: Any) -> tuple[RunningDip, Cast]:
    """A DIP with these settings (polling every 50 ms unless told) and the usual cast on board."""
    dip = dip_factory(**{"delivery_poll_seconds": 0.05, **settings})
    with AdminClient(dip.url, dip.admin_key) as admin:
        return dip, onboard_all(admin)


def register(dip: RunningDip, who: Identity, url: str, interface_id: str | None = "IF-021", **config: Any) -> None:
    response = DipClient(dip.url, who).register_webhook(interface_id, url, **config)
    assert response.status_code == 201, response.text


def send(dip: RunningDip, cast: Cast, payloads: list[dict[str, Any]] | int) -> list[str]:
    """Send IF-021 messages from SDS; their transaction IDs, in order."""
    client = DipClient(dip.url, cast["SDS"])
    response = client.send("IF-021", consumption(client, payloads) if isinstance(payloads, int) else payloads)
    assert response.status_code == 201, response.text
    return [entry["transactionID"] for entry in items(response)]


def states(dip: RunningDip, transactions: Sequence[str], recipient: str = MDS) -> list[str]:
    """The delivery states of these messages to ``recipient``, in the order given."""
    found = {s[0]: s[4] for s in in_store(dip, lambda store: store.delivery_states(list(transactions)))
             if s[1] == recipient and s[3] != "status"}
    return [found.get(t, "none") for t in transactions]


def wait_states(dip: RunningDip, transactions: Sequence[str], wanted: str, recipient: str = MDS,
                timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if states(dip, transactions, recipient) == [wanted] * len(transactions):
            return
        time.sleep(0.03)
    raise AssertionError(f"states {states(dip, transactions, recipient)} never became all {wanted!r}")


def attempts(dip: RunningDip, queue: str) -> list[int]:
    """How many calls each pending delivery of ``queue`` has been part of (the store's count)."""
    async def query(store: Store) -> list[int]:
        return [p.attempts for p in await store.pending(queue, 1000)]

    return in_store(dip, query)


def carried(call: RecordedCall) -> list[str]:
    """The transaction IDs a webhook call carried, in order."""
    assert isinstance(call.json, list), call.body[:200]
    return [m["payload"]["CommonBlock"]["D0"]["transactionID"] for m in call.json]


def entries(calls: Sequence[RecordedCall]) -> list[dict[str, Any]]:
    """Every status message the sender's status webhook received, in order."""
    return [entry for call in calls for entry in call.json]


def report_level_4(dip: RunningDip, cast: Cast, transaction_id: str, text: str) -> None:
    """MDS reports a finding about a message it received; the DIP relays it to the sender."""
    report = [{"transactionID": transaction_id, "senderID": MDS, "message": "RCP1061 MPAN Invalid or Unknown",
               "help": text, "recipientID": None, "senderUniqueReference": None, "correlationID": None,
               "sentTimestamp": ids.timestamp(datetime.now(UTC)), "DIPConnectionProviderID": None,
               "serviceTicketURL": None}]
    response = DipClient(dip.url, cast["MDS"]).post("/statusmessage", orjson.dumps(report))
    assert response.status_code == 201, response.text


def backoff_bounds(retry: int, initial: float, most: float) -> tuple[float, float]:
    """The wait before retry number ``retry`` as dip.egress.retry's docstring states it: the base is
    ``min(max_delay, initial * 2 ** (n - 1))``, jitter drawn from ``[max(initial, base / 2), base]``."""
    base = min(most, initial * 2 ** (retry - 1))
    return max(initial, base / 2), base


# -- 1. backoff ----------------------------------------------------------------------------


def test_backoff_between_attempts_grows_within_the_policys_bounds(dip_factory: DipFactory) -> None:
    initial, most = 0.2, 0.8
    dip, cast = start(dip_factory, retry_initial_seconds=initial, retry_max_seconds=most)
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        # Five failures: the fifth also opens the breaker, for min(30, max) = max seconds, so the
        # last wait is the cap whatever the jitter (and far beyond it were the backoff uncapped).
        hook.respond(503, times=THRESHOLD)
        (tid,) = send(dip, cast, 1)
        calls = hook.wait_for(lambda calls: len(calls) == THRESHOLD + 1, timeout=15)
        wait_states(dip, [tid], "delivered")
    assert all(carried(call) == [tid] for call in calls)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    bounds = [backoff_bounds(retry, initial, most) for retry in range(1, len(gaps) + 1)]
    assert bounds == [(0.2, 0.2), (0.2, 0.4), (0.4, 0.8), (0.4, 0.8), (0.4, 0.8)]  # doubling, then capped
    for retry, (gap, (low, high)) in enumerate(zip(gaps, bounds, strict=True), start=1):
        assert low - CLOCK <= gap <= high + SLACK, f"retry {retry}: waited {gap:.3f} s, not in [{low}, {high}]; {gaps}"
    # it grows: from the third retry on, every wait is at least twice the first
    assert min(gaps[2:]) >= 2 * initial - CLOCK, gaps


# -- 2. Retry-After ------------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured(dip_factory: DipFactory) -> None:
    dip, cast = start(dip_factory, retry_initial_seconds=0.1, retry_max_seconds=0.2)  # backoff alone: <= 0.2 s
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        hook.respond(429, headers={"Retry-After": "1"})
        (tid,) = send(dip, cast, 1)
        first, second = hook.wait_for(lambda calls: len(calls) == 2, timeout=10)
        wait_states(dip, [tid], "delivered")
    assert 1.0 - CLOCK <= second.at - first.at <= 1.0 + SLACK, second.at - first.at


def test_retry_after_as_an_http_date_is_honoured(dip_factory: DipFactory) -> None:
    from email.utils import format_datetime

    dip, cast = start(dip_factory, retry_initial_seconds=0.1, retry_max_seconds=0.2)
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        when = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # 1 to 2 s from now
        hook.respond(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
        (tid,) = send(dip, cast, 1)
        first, second = hook.wait_for(lambda calls: len(calls) == 2, timeout=10)
        wall_now, mono_now = time.time(), time.monotonic()
        wait_states(dip, [tid], "delivered")
    second_at = wall_now - (mono_now - second.at)  # the second call's arrival on the wall clock
    assert second_at >= when.timestamp() - CLOCK, (second_at, when.timestamp())
    assert second.at - first.at <= 2.0 + SLACK


# -- 3. circuit breaker ----------------------------------------------------------------------

# cool-off = min(30, retry_max_seconds) = 1 s, while the backoff before the 5th retry is at most
# 0.32 s: a pause of the cool-off's length after the 5th failure is the breaker's doing.
COOL_OFF = 1.0
BREAKER = {"retry_initial_seconds": 0.02, "retry_max_seconds": COOL_OFF}


def test_the_breaker_opens_after_the_threshold_and_lets_a_recovered_endpoint_have_the_backlog(
    dip_factory: DipFactory,
) -> None:
    assert backoff_bounds(THRESHOLD, BREAKER["retry_initial_seconds"], COOL_OFF)[1] < COOL_OFF / 2
    dip, cast = start(dip_factory, **BREAKER)
    with WebhookReceiver() as hook:
        hook.always(503)
        register(dip, cast["MDS"], hook.url)
        tids = send(dip, cast, 3)
        failed = hook.wait_for(lambda calls: len(calls) >= THRESHOLD, timeout=10)
        hook.always(201)  # the endpoint recovers at once; the breaker must still hold for its cool-off
        assert len(failed) == THRESHOLD
        calls = hook.wait_for(lambda calls: len(calls) >= THRESHOLD + 1, timeout=10)
        wait_states(dip, tids, "delivered")
        assert len(hook.calls) == THRESHOLD + 1  # the whole backlog went in the one call after the cool-off
    assert calls[:THRESHOLD] == failed
    # the breaker did not open before the threshold: the failed calls came at the backoff's pace
    assert all(b.at - a.at < COOL_OFF / 2 for a, b in itertools.pairwise(failed)), [c.at for c in failed]
    probe_gap = calls[THRESHOLD].at - calls[THRESHOLD - 1].at
    assert COOL_OFF - CLOCK <= probe_gap <= COOL_OFF + SLACK, probe_gap
    assert carried(calls[THRESHOLD]) == tids


def test_the_breaker_spares_an_endpoint_nobody_listens_on_until_it_comes_back(dip_factory: DipFactory) -> None:
    dip, cast = start(dip_factory, **BREAKER)
    hook = WebhookReceiver()  # its port is chosen, but nothing listens there yet: connections are refused
    register(dip, cast["MDS"], hook.url)
    sent = time.monotonic()
    tids = send(dip, cast, 2)
    queue = f"{MDS}|IF-021"
    while True:
        polled = time.monotonic()
        counts = attempts(dip, queue)  # every refused call counts for both messages
        if counts == [THRESHOLD] * 2:
            break  # the 5th refused call was made (and settled) before ``polled``
        assert max(counts, default=0) <= THRESHOLD, counts
        # the breaker does not open before the threshold: the refused calls come at the backoff's
        # pace (~0.3 s for five; were it to open after three, two cool-offs would pass first)
        assert polled - sent < 1.5 * COOL_OFF, f"attempts {counts} did not reach {THRESHOLD} in time"
        time.sleep(0.01)
    with hook:  # the endpoint is back
        (call,) = hook.wait_for(lambda calls: len(calls) == 1, timeout=10)
        wait_states(dip, tids, "delivered")
        assert len(hook.calls) == 1
    # the 6th call waits for the cool-off; without the breaker it would come at most 0.32 s after
    # the 5th (0.4 s of the cool-off are left for the time between the 5th call and ``polled``)
    assert call.at - polled >= COOL_OFF - 0.4, call.at - polled
    assert carried(call) == tids


def test_the_breaker_is_per_endpoint_and_lets_one_probe_through_after_the_cool_off(dip_factory: DipFactory) -> None:
    """MDS and SUP register the same failing URL: their failures add up in one breaker, which
    then holds both queues; after the cool-off one call is tried (CircuitBreakers' docstring),
    not one per queue."""
    dip, cast = start(dip_factory, **BREAKER)
    with WebhookReceiver() as hook:
        hook.always(503)
        register(dip, cast["MDS"], hook.url)
        register(dip, cast["SUP"], hook.url)
        tids = send(dip, cast, 1)
        hook.wait_for(lambda calls: len(calls) >= THRESHOLD, timeout=10)
        hook.always(503, delay=0.3)  # from now on a call takes 0.3 s to fail: the probe is in flight that long

        def paused(calls: list[RecordedCall]) -> bool:
            return any(b.at - a.at >= COOL_OFF / 2 for a, b in itertools.pairwise(calls))

        calls = hook.wait_for(paused, timeout=10)
        probe = next(i for i, (a, b) in enumerate(itertools.pairwise(calls), start=1) if b.at - a.at >= COOL_OFF / 2)
        # before the breaker opened: the threshold, plus at most the other queue's call already in flight
        assert THRESHOLD <= probe <= THRESHOLD + 1, [round(c.at - calls[0].at, 3) for c in calls]
        assert calls[probe].at - calls[probe - 1].at >= COOL_OFF - CLOCK
        time.sleep(0.3)  # negative check: the other queue's call, were it let through too, comes now
        after = [round(c.at - calls[probe].at, 3) for c in hook.calls[probe + 1:]]
        assert not [gap for gap in after if gap < 0.3], f"more than one call after the cool-off: {after}"
        hook.always(201)
        wait_states(dip, tids, "delivered", recipient=MDS)
        wait_states(dip, tids, "delivered", recipient=SUP)


# -- 4. the egress table -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One way a recipient's webhook can answer the first call, and what must come of it."""

    status: int
    calls: int  # calls the two messages take (1: settled at once; 2: retried, then 201)
    state: str  # where both messages end up for MDS
    told: str | None = None  # the sender gets a status message per message whose help contains this
    body: Any = None
    delay: float = 0.0
    reset: bool = False

    def __str__(self) -> str:
        extra = " hanging" if self.delay else " reset" if self.reset else f" {self.body!r}" if self.body else ""
        return f"{self.status}{extra}"


TIMEOUT = 0.5  # webhook_timeout_seconds in the egress-table tests

# E2E 4.6.6.1, row by row, as dip.egress.outcomes.classify and dip.egress.sender.interpret document it
EGRESS_TABLE = [
    pytest.param([Row(201, 1, "delivered")], id="201-delivered"),
    pytest.param([Row(200, 1, "delivered"), Row(202, 1, "delivered")],  # recorded with a note, not repeated
                 id="other-2xx-delivered-not-repeated"),
    pytest.param([  # nothing known to be rejected: delivered, nobody told
        Row(207, 1, "delivered", body={"messageArray": [
            {"transactionID": "T-never-sent", "message": "RCP1022 Msg Contains Invalid Value", "help": "?"}],
            "timestamp": "2026-11-23T10:00:00+00:00"}),
        Row(207, 1, "delivered", body=b"<html>oops</html>"),
        Row(207, 1, "delivered", body={"messageArray": "nope"}),
        Row(207, 1, "delivered", body=[1, "x", None]),
    ], id="207-unknown-transactions-or-garbage"),
    pytest.param([Row(400, 1, "rejected", told="", body=b"bad request"),
                  Row(400, 1, "rejected", told="")], id="400-whole-call-rejected-sender-told"),
    pytest.param([Row(s, 1, "failed") for s in (401, 403, 404, 413, 505)], id="401-403-404-413-505-failed"),
    pytest.param([Row(s, 1, "failed", told=f"answered HTTP {s}") for s in (405, 406)],
                 id="405-406-failed-sender-told"),
    pytest.param([Row(s, 2, "delivered") for s in (408, 429, 500, 502, 503, 504)],
                 id="408-429-500-502-503-504-retried"),
    pytest.param([Row(201, 2, "delivered", delay=TIMEOUT + 0.5), Row(201, 2, "delivered", reset=True)],
                 id="no-answer-hanging-or-reset-retried"),
]


@pytest.mark.parametrize("rows", EGRESS_TABLE)
def test_each_row_of_the_egress_table(dip_factory: DipFactory, rows: list[Row]) -> None:
    """Each answer in turn (one DIP, the queue idle between them): two messages get it; they
    end up as the table says, the recipient is called as often as it says, the sender is told
    exactly when it says, and the worker carries on with a later message."""
    dip, cast = start(dip_factory, retry_initial_seconds=0.1, retry_max_seconds=0.5,
                      webhook_timeout_seconds=TIMEOUT)
    with WebhookReceiver() as hook, WebhookReceiver() as status_hook:
        register(dip, cast["MDS"], hook.url)
        register(dip, cast["SDS"], status_hook.url, None)
        for row in rows:
            before, told_before = len(hook.calls), len(entries(status_hook.calls))
            hook.respond(row.status, body=row.body, delay=row.delay, reset=row.reset)
            tids = send(dip, cast, 2)
            calls = hook.wait_for(lambda calls, n=before + row.calls: len(calls) >= n, timeout=10)[before:]
            wait_states(dip, tids, row.state)
            assert [carried(call) for call in calls] == [tids] * row.calls, row

            # The worker carries on: a later message is delivered, and is the only thing called
            # after the two settled (the queue goes in order: nothing of theirs can come after it).
            (later,) = send(dip, cast, 1)
            wait_states(dip, [later], "delivered")
            calls = hook.wait_for(lambda calls, n=before + row.calls + 1: len(calls) >= n, timeout=5)[before:]
            assert [carried(call) for call in calls] == [tids] * row.calls + [[later]], row

            # What the sender was told: whatever it received before MDS's own report about the
            # later message (its status queue goes in order too).
            report_level_4(dip, cast, later, f"sentinel after {row}")
            relayed = entries(status_hook.wait_for(lambda calls, t=later: any(
                e["transactionID"] == t for e in entries(calls)), timeout=10))[told_before:]
            assert relayed[-1]["transactionID"] == later and relayed[-1]["help"] == f"{MDS} says: sentinel after {row}"
            told = relayed[:-1]
            if row.told is None:
                assert told == [], row
                continue
            assert [e["transactionID"] for e in told] == tids, row
            assert all(e["recipientID"] == SDS and e["message"].startswith("MSG1000") for e in told), told
            if row.status == 400:  # MDS refused them: relayed as from MDS
                assert all(e["senderID"] == MDS for e in told), told
            else:  # the DIP says what happened
                assert all(e["senderID"] == dip.settings.dip_id and row.told in e["help"] and MDS in e["help"]
                           for e in told), told


# -- 5. isolation --------------------------------------------------------------------------


@pytest.mark.parametrize("trouble", ["hangs", "fails"])
def test_one_recipients_trouble_does_not_delay_another(dip_factory: DipFactory, trouble: str) -> None:
    """MDS's webhook hangs (longer than SUP may wait) or fails until its breaker opens (for
    longer than SUP may wait); SUP's copies of the same messages, and of later ones, go at once."""
    timeout, prompt = 2.5, 2.0
    # a 5 s cool-off once 5 failures have come within ~0.3 s
    dip, cast = start(dip_factory, retry_initial_seconds=0.02, retry_max_seconds=5.0,
                      webhook_timeout_seconds=timeout)
    with WebhookReceiver() as mds_hook, WebhookReceiver() as sup_hook:
        if trouble == "hangs":
            mds_hook.always(201, delay=timeout + 0.1)
        else:
            mds_hook.always(503)
        register(dip, cast["MDS"], mds_hook.url)
        register(dip, cast["SUP"], sup_hook.url)
        for batch in range(2):
            sent = time.monotonic()
            tids = send(dip, cast, 3)
            calls = sup_hook.wait_for(lambda calls, t=tids: t[-1] in [x for c in calls for x in carried(c)],
                                      timeout=5)
            assert calls[-1].at - sent <= prompt, f"batch {batch}: SUP waited {calls[-1].at - sent:.2f} s"
            assert [t for call in calls for t in carried(call)][-3:] == tids
            wait_states(dip, tids, "delivered", recipient=SUP, timeout=prompt)
            assert states(dip, tids, MDS) == ["pending"] * 3  # MDS's copies wait for MDS
            # before the second batch: MDS is hanging on its first call / its breaker is open
            mds_hook.wait_for(lambda calls: len(calls) >= (1 if trouble == "hangs" else THRESHOLD), timeout=5)
        assert len(sup_hook.calls) == 2


# -- 6. batching by size -------------------------------------------------------------------


def big_consumption(client: DipClient, days: int, mpan_seed: int) -> dict[str, Any]:
    """An IF-021 message carrying ``days`` settlement days (about 4 KB each)."""
    rng = random.Random(days)
    first = datetime.now(UTC) - timedelta(days=days)
    blocks = [consumption_block(SDS, first + timedelta(days=d), rng) for d in range(days)]
    block = blocks[0]
    block["B900"]["settlementDayConsumptionPeriods"] = [
        b["B900"]["settlementDayConsumptionPeriods"][0] for b in blocks
    ]
    return client.message("IF-021", "[ActivePower]", "011", block, mpan=mpan_core(mpan_seed))


def test_calls_are_cut_to_the_registered_payload_size(dip_factory: DipFactory) -> None:
    limit_kb = 10
    dip, cast = start(dip_factory)
    client = DipClient(dip.url, cast["SDS"])
    normal = consumption(client, 7)
    sizes = [len(orjson.dumps(p)) for p in normal]
    assert all(4000 <= s <= 5000 for s in sizes), sizes  # ~4.5 KB each: two fit in 10 KB, three do not
    big = big_consumption(client, 4, 3)
    assert len(orjson.dumps(big)) > limit_kb * 1024
    payloads = [*normal[:3], big, *normal[3:]]
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url, max_payload_kb=limit_kb)
        tids = send(dip, cast, payloads)
        calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= len(tids), timeout=10)
        wait_states(dip, tids, "delivered")
        assert len(hook.calls) == len(calls)
    assert [t for call in calls for t in carried(call)] == tids  # each once, in order
    big_tid = tids[3]
    (alone,) = [call for call in calls if big_tid in carried(call)]
    assert carried(alone) == [big_tid] and len(alone.body) > limit_kb * 1024
    others = [call for call in calls if call is not alone]
    assert all(len(call.body) <= limit_kb * 1024 for call in others), [len(c.body) for c in others]
    assert max(len(call.json) for call in others) >= 2, [len(c.json) for c in others]  # batched, not one by one
    assert len(calls) < len(tids)


def test_the_size_limit_holds_when_d0_repeats_a_long_correlation_id(dip_factory: DipFactory) -> None:
    """The egress body is larger than what was stored: D0 repeats the correlation ID (up to 60
    characters) and adds the transaction ID, service ticket URL, and A0 the recipients. The limit
    is put just below the size of n such messages: no call of several messages may exceed it."""
    dip, cast = start(dip_factory)
    client = DipClient(dip.url, cast["SDS"])
    correlation = "CI-20261123-" + "c" * 48  # the longest correlation ID the DIP accepts (60)

    def batch(count: int) -> list[dict[str, Any]]:
        return consumption(client, count, correlation_id=correlation)

    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        (probe,) = send(dip, cast, batch(1))  # calibration: how large one such message is on the way out
        (call,) = hook.wait_for(lambda calls: len(calls) == 1)
        element = len(call.body) - 2  # [element]; n of them: n * (element + 1) + 1 bytes
        size = {k: k * (element + 1) + 1 for k in range(2, 12)}
        n = min(size, key=lambda k: (size[k] - 1) % 1024)  # n messages overshoot a whole number of KB the least
        limit_kb = (size[n] - 1) // 1024
        assert (n - 1) * (element + 1) + 1 <= limit_kb * 1024 < size[n]  # n - 1 fit, n do not
        update = DipClient(dip.url, cast["MDS"]).register_webhook("IF-021", hook.url, max_payload_kb=limit_kb)
        assert update.status_code == 200, update.text
        tids = send(dip, cast, batch(2 * n))
        calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= 1 + len(tids), timeout=10)[1:]
        wait_states(dip, [probe, *tids], "delivered")
    assert [t for call in calls for t in carried(call)] == tids
    sizes = [(len(c.json), len(c.body)) for c in calls]
    assert all(length <= limit_kb * 1024 for _, length in sizes), f"limit {limit_kb * 1024} B; calls: {sizes}"


def test_more_hanging_recipients_than_delivery_slots_do_not_hold_up_a_healthy_one(dip_factory: DipFactory) -> None:
    """Seven MDS webhooks answer after 8 s; the node works 2 queues at once in its fast lane. SUP's
    copy of a message sent while they hang still goes within a couple of seconds (a call leaves
    the fast lane after 0.5 s, and a recipient found slow starts in the slow lane)."""
    dip, cast = start(dip_factory, delivery_concurrency=2, delivery_slow_after_seconds=0.5,
                      webhook_timeout_seconds=10)
    hanging = [WebhookReceiver() for _ in range(7)]
    try:
        with AdminClient(dip.url, dip.admin_key) as admin:
            data_services = [cast["MDS"]] + [admin.onboard(f"14000000{n:02d}", ["MDS"]) for n in range(2, 8)]
        for hook, who in zip(hanging, data_services, strict=True):
            hook.__enter__()
            hook.always(201, delay=8)
            register(dip, who, hook.url)
        with WebhookReceiver() as sup_hook:
            register(dip, cast["SUP"], sup_hook.url)
            send(dip, cast, 1)
            deadline = time.monotonic() + 5  # until the fast lane is full of hanging calls
            while sum(len(h.calls) for h in hanging) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            sent = time.monotonic()
            (tid,) = send(dip, cast, 1)
            calls = sup_hook.wait_for(lambda calls: tid in [x for c in calls for x in carried(c)], timeout=8)
            waited = calls[-1].at - sent
            assert waited <= 3.0, f"SUP waited {waited:.2f} s behind hanging recipients"
    finally:
        for hook in hanging:
            hook.__exit__(None, None, None)
