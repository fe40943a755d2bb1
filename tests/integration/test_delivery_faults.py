"""Recipients that misbehave, end to end, on SQLite and PostgreSQL.

Every test goes through the whole DIP: messages are sent through the API, routed at ingest
(IF-021 from SDS: MDS always, SUP by MPAN), and pushed by the DIP's delivery worker to real
webhook servers (dip.testing.WebhookReceiver) that answer as scripted: errors, Retry-After,
hanging, dropped connections, nobody listening, odd 2xx answers. What is checked is what a
participant can observe: the calls a webhook receives (and when), the delivery states the store
records, and the status messages the sender's status webhook receives.

Timing assertions compare the receivers' arrival times (``time.monotonic()``) with the bounds
dip.retry documents, with a little slack for scheduling.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dip.client import DipClient, Identity
from dip.samples import consumption_block, mpan_core
from dip.store import Store
from dip.testing import AdminClient, RecordedCall, RunningDip, WebhookReceiver
from tests.helpers import MDS, SDS, SUP, consumption, in_store, items, onboard_all

Cast = dict[str, Identity]
DipFactory = Callable[..., RunningDip]

THRESHOLD = 5  # dip.delivery.worker.CircuitBreakers: failed calls in a row before the breaker opens
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
               "sentTimestamp": "2026-11-23T10:00:00+00:00", "DIPConnectionProviderID": None,
               "serviceTicketURL": None}]
    response = DipClient(dip.url, cast["MDS"]).post("/statusmessage", orjson.dumps(report))
    assert response.status_code == 201, response.text


def backoff_bounds(retry: int, initial: float, most: float) -> tuple[float, float]:
    """The wait before retry number ``retry`` as dip.retry's docstring states it: the base is
    ``min(max_delay, initial * 2 ** (n - 1))``, jitter drawn from ``[max(initial, base / 2), base]``."""
    base = min(most, initial * 2 ** (retry - 1))
    return max(initial, base / 2), base


# -- 1. backoff ----------------------------------------------------------------------------


def test_backoff_between_attempts_grows_within_the_policys_bounds(dip_factory: DipFactory) -> None:
    initial, most = 0.2, 0.8
    dip, cast = start(dip_factory, retry_initial_seconds=initial, retry_max_seconds=most)
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        hook.respond(503, times=THRESHOLD - 1)  # one short of opening the breaker: only the backoff spaces calls
        (tid,) = send(dip, cast, 1)
        calls = hook.wait_for(lambda calls: len(calls) == THRESHOLD, timeout=10)
        wait_states(dip, [tid], "delivered")
    assert all(carried(call) == [tid] for call in calls)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    bounds = [backoff_bounds(retry, initial, most) for retry in range(1, len(gaps) + 1)]
    assert bounds == [(0.2, 0.2), (0.2, 0.4), (0.4, 0.8), (0.4, 0.8)]  # doubling, then capped at max
    for retry, (gap, (low, high)) in enumerate(zip(gaps, bounds, strict=True), start=1):
        assert low - CLOCK <= gap <= high + SLACK, f"retry {retry}: waited {gap:.3f} s, not in [{low}, {high}]"
    # it grows: the third and fourth waits are at least twice the first one's lower bound
    assert min(gaps[2:]) >= 2 * initial - CLOCK, gaps


# -- 2. Retry-After ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(dip_factory: DipFactory, status: int) -> None:
    dip, cast = start(dip_factory, retry_initial_seconds=0.1, retry_max_seconds=0.2)  # backoff alone: <= 0.2 s
    with WebhookReceiver() as hook:
        register(dip, cast["MDS"], hook.url)
        hook.respond(status, headers={"Retry-After": "1"})
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
        hook.respond(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
        (tid,) = send(dip, cast, 1)
        first, second = hook.wait_for(lambda calls: len(calls) == 2, timeout=10)
        wall_now, mono_now = time.time(), time.monotonic()
        wait_states(dip, [tid], "delivered")
    second_at = wall_now - (mono_now - second.at)  # the second call's arrival on the wall clock
    assert second_at >= when.timestamp() - CLOCK, (second_at, when.timestamp())
    assert second.at - first.at <= 2.0 + SLACK


# -- 3. circuit breaker ----------------------------------------------------------------------


def test_the_breaker_opens_after_the_threshold_and_lets_a_recovered_endpoint_have_the_backlog(
    dip_factory: DipFactory,
) -> None:
    # cool-off = min(30, retry_max) = 1.5 s, while the backoff before the 5th retry is at most 0.8 s
    cool_off = 1.5
    dip, cast = start(dip_factory, retry_initial_seconds=0.05, retry_max_seconds=cool_off)
    assert backoff_bounds(THRESHOLD, 0.05, cool_off)[1] < cool_off - 0.5
    with WebhookReceiver() as hook:
        hook.always(503)
        register(dip, cast["MDS"], hook.url)
        tids = send(dip, cast, 3)
        failed = hook.wait_for(lambda calls: len(calls) == THRESHOLD, timeout=10)
        hook.always(201)  # the endpoint recovers at once; the breaker must still hold for its cool-off
        calls = hook.wait_for(lambda calls: len(calls) == THRESHOLD + 1, timeout=10)
        wait_states(dip, tids, "delivered")
        assert len(hook.calls) == THRESHOLD + 1  # the backlog went in the one call after the cool-off
    assert calls[:THRESHOLD] == failed
    probe_gap = calls[THRESHOLD].at - calls[THRESHOLD - 1].at
    assert cool_off - CLOCK <= probe_gap <= cool_off + SLACK, probe_gap
    assert carried(calls[THRESHOLD]) == tids


def test_the_breaker_spares_an_endpoint_nobody_listens_on_until_it_comes_back(dip_factory: DipFactory) -> None:
    cool_off = 1.5
    dip, cast = start(dip_factory, retry_initial_seconds=0.05, retry_max_seconds=cool_off)
    hook = WebhookReceiver()  # its port is chosen, but nothing listens there yet: connections are refused
    register(dip, cast["MDS"], hook.url)
    tids = send(dip, cast, 2)
    queue = f"{MDS}|IF-021"
    deadline = time.monotonic() + 10
    while attempts(dip, queue) != [THRESHOLD] * 2:
        assert time.monotonic() < deadline, f"attempts {attempts(dip, queue)} never reached {THRESHOLD}"
        assert max(attempts(dip, queue), default=0) <= THRESHOLD
        time.sleep(0.02)
    opened = time.monotonic()  # at most ~50 ms after the 5th refused call
    with hook:  # the endpoint is back
        (call,) = hook.wait_for(lambda calls: len(calls) == 1, timeout=10)
        wait_states(dip, tids, "delivered")
        assert len(hook.calls) == 1
    # without the breaker the 6th attempt would come 0.4 to 0.8 s after the 5th
    assert call.at - opened >= cool_off - 0.3, call.at - opened
    assert carried(call) == tids


def test_the_breaker_is_per_endpoint_and_shared_by_the_queues_that_use_it(dip_factory: DipFactory) -> None:
    """MDS and SUP register the same failing URL: their failures add up to one breaker, which
    then holds both queues; after the cool-off, one call probes the endpoint."""
    cool_off = 1.5
    dip, cast = start(dip_factory, retry_initial_seconds=0.05, retry_max_seconds=cool_off)
    with WebhookReceiver() as hook:
        hook.always(503)
        register(dip, cast["MDS"], hook.url)
        register(dip, cast["SUP"], hook.url)
        tids = send(dip, cast, 1)
        hook.wait_for(lambda calls: len(calls) >= THRESHOLD, timeout=10)
        # negative check: the breaker is open; nothing may arrive until the cool-off ends
        time.sleep(cool_off - 0.3)
        failed = list(hook.calls)
        # both queues were in flight when the breaker opened at most once each
        assert THRESHOLD <= len(failed) <= THRESHOLD + 1, [c.at - failed[0].at for c in failed]
        probe = hook.wait_for(lambda calls: len(calls) > len(failed), timeout=5)[len(failed)]
        assert probe.at - failed[-1].at >= cool_off - 0.3
        # the probe failed too: the breaker opens again; one probe only, not one per queue
        time.sleep(0.5)  # negative check: a second queue's call would come at the same moment
        probes = hook.calls[len(failed):]
        assert len(probes) == 1, [round(c.at - failed[-1].at, 3) for c in probes]
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
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False


TIMEOUT = 0.5  # webhook_timeout_seconds in the egress-table tests

ROWS = [
    pytest.param(Row(201, 1, "delivered"), id="201-delivered"),
    pytest.param(Row(200, 1, "delivered"), id="200-recorded-as-delivered-not-repeated"),
    pytest.param(Row(202, 1, "delivered"), id="202-recorded-as-delivered-not-repeated"),
    pytest.param(Row(207, 1, "delivered", body={"messageArray": [
        {"transactionID": "T-never-sent", "message": "RCP1022 Msg Contains Invalid Value", "help": "?"},
    ], "timestamp": "2026-11-23T10:00:00+00:00"}), id="207-naming-unknown-transactions"),
    pytest.param(Row(207, 1, "delivered", body=b"<html>oops</html>"), id="207-garbage"),
    pytest.param(Row(207, 1, "delivered", body={"messageArray": "nope"}), id="207-json-but-not-a-response"),
    pytest.param(Row(400, 1, "rejected", told="", body=b"bad request"), id="400-whole-call-rejected"),
    *[pytest.param(Row(s, 1, "failed"), id=f"{s}-failed-not-retried") for s in (401, 403, 404, 413, 505)],
    *[pytest.param(Row(s, 1, "failed", told=f"answered HTTP {s}"), id=f"{s}-failed-sender-told")
      for s in (405, 406)],
    *[pytest.param(Row(s, 2, "delivered"), id=f"{s}-retried") for s in (408, 429, 500, 502, 503, 504)],
    pytest.param(Row(201, 2, "delivered", delay=TIMEOUT + 0.5), id="hanging-recipient-retried"),
    pytest.param(Row(201, 2, "delivered", reset=True), id="connection-reset-retried"),
]


@pytest.mark.parametrize("row", ROWS)
def test_each_row_of_the_egress_table(dip_factory: DipFactory, row: Row) -> None:
    dip, cast = start(dip_factory, retry_initial_seconds=0.1, retry_max_seconds=0.5,
                      webhook_timeout_seconds=TIMEOUT)
    with WebhookReceiver() as hook, WebhookReceiver() as status_hook:
        register(dip, cast["MDS"], hook.url)
        register(dip, cast["SDS"], status_hook.url, None)
        hook.respond(row.status, body=row.body, headers=row.headers, delay=row.delay, reset=row.reset)
        tids = send(dip, cast, 2)
        calls = hook.wait_for(lambda calls: len(calls) >= row.calls, timeout=10)
        wait_states(dip, tids, row.state)
        assert all(carried(call) == tids for call in calls[:row.calls])

        # The worker carries on: a later message is delivered, and is the only thing called after
        # the two messages settled (the queue is served in order, so nothing of theirs can follow).
        (later,) = send(dip, cast, 1)
        wait_states(dip, [later], "delivered")
        calls = hook.wait_for(lambda calls: len(calls) >= row.calls + 1, timeout=5)
        assert len(calls) == row.calls + 1 and carried(calls[-1]) == [later], [carried(c) for c in calls]

        # What the sender was told: everything relayed before MDS's own report about the later
        # message (the sender's status queue is served in order too).
        report_level_4(dip, cast, later, "sentinel")
        relayed = entries(status_hook.wait_for(lambda calls: any(
            e["transactionID"] == later for e in entries(calls)), timeout=10))
    assert relayed[-1]["transactionID"] == later and relayed[-1]["help"] == "sentinel"
    told = relayed[:-1]
    if row.told is None:
        assert told == []
    else:
        assert [e["transactionID"] for e in told] == tids
        assert all(e["recipientID"] == SDS and e["message"].startswith("MSG1000") for e in told), told
        if row.status == 400:  # MDS refused them: relayed as from MDS
            assert all(e["senderID"] == MDS for e in told), told
        else:  # the DIP says why
            assert all(e["senderID"] == dip.settings.dip_id and row.told in e["help"] and MDS in e["help"]
                       for e in told), told


# -- 5. isolation --------------------------------------------------------------------------


@pytest.mark.parametrize("trouble", ["hangs", "fails", "refuses"])
def test_one_recipients_trouble_does_not_delay_another(dip_factory: DipFactory, trouble: str) -> None:
    dip, cast = start(dip_factory, retry_initial_seconds=0.2, retry_max_seconds=1.0, webhook_timeout_seconds=0.3)
    mds_hook = WebhookReceiver()
    with WebhookReceiver() as sup_hook:
        if trouble == "hangs":
            mds_hook.__enter__()
            mds_hook.always(201, delay=1.0)
        elif trouble == "fails":
            mds_hook.__enter__()
            mds_hook.always(503)
        try:
            register(dip, cast["MDS"], mds_hook.url)
            register(dip, cast["SUP"], sup_hook.url)
            sent = time.monotonic()
            tids = send(dip, cast, 3)
            calls = sup_hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 3, timeout=5)
            assert calls[-1].at - sent <= 2.0, calls[-1].at - sent
            assert [t for call in calls for t in carried(call)] == tids
            wait_states(dip, tids, "delivered", recipient=SUP)
            assert states(dip, tids, MDS) == ["pending"] * 3
            if trouble != "refuses":
                assert mds_hook.calls, "MDS's webhook was never tried"
        finally:
            if trouble != "refuses":
                mds_hook.__exit__(None, None, None)


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
