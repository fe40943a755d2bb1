"""The egress table (E2E 4.6.6.1) applied by one call, against the in-memory queue store.

Each test sets up a queue, lets the dispatcher make one call whose answer a scripted sender
gives (through the real ``interpret``), and looks at what the queue store then holds: the state
of each delivery, the queue's backoff, and the status messages for the senders. The same rules
are exercised with real webhook servers and real databases in tests/integration.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from dip.catalogue import Catalogue, default_catalogue
from dip.directory import Directory, Participant, Webhook, WebhookKind
from dip.egress.breaker import CircuitBreakers
from dip.egress.dispatch import Dispatcher, WorkerContext
from dip.egress.outcomes import EGRESS, NAMED, Notice, Outcome, classify
from dip.egress.retry import RetryPolicy
from dip.egress.sender import CallResult, interpret
from dip.egress.status import StatusNotices
from dip.queue import DeliveryKind, DeliveryState, publication_queue, status_queue
from dip.store.base import DeliveryRow
from dip.store.memory import InMemoryQueues

SENDER, RECIPIENT = "1300000001", "1400000001"
QUEUE = publication_queue(RECIPIENT, "IF-021")
URL = "https://mds.example/hook"
THRESHOLD = 5


@dataclass
class ScriptedSender:
    """Answers each call with the next (status, body); None is no answer at all."""

    answers: list[tuple[int | None, Any]]
    calls: list[set[str]] = field(default_factory=list)
    delay: float = 0.0  # how long each answer takes

    async def post(self, url: str, body: bytes, transactions: set[str], mpo: str | None = None) -> CallResult:
        self.calls.append(transactions)
        await asyncio.sleep(self.delay)
        status, answer = self.answers.pop(0)
        if status is None:
            return CallResult(None, Outcome.RETRY, error="no answer within 30 s")
        return interpret(status, orjson.dumps(answer), {}, transactions, time.time())

    async def close(self) -> None:
        pass


@dataclass
class Lookups:
    directory: Directory
    catalogue: Catalogue


def _payload(n: int) -> bytes:
    return orjson.dumps({"CommonBlock": {"S1": {"senderDIPID": SENDER}, "A0": {"primaryRecipients": []}},
                         "CustomBlock": {"n": n}})


def setup(answers: list[tuple[int | None, Any]], messages: int = 3, age_seconds: float = 0.0,
          dead_letter_after: float = 3600.0, queue: str = QUEUE,
          ) -> tuple[Dispatcher, InMemoryQueues, ScriptedSender]:
    queues = InMemoryQueues()
    accepted = int((time.time() - age_seconds) * 1e6)
    rows = []
    for n in range(1, messages + 1):
        tid = f"T-IF-021-{SENDER}-SDS-20261205-{n:04d}"
        queues.add_message(tid, _payload(n), accepted)
        kind = DeliveryKind.STATUS if queue.endswith("|status") else DeliveryKind.ALWAYS
        rows.append(DeliveryRow(queue, tid, RECIPIENT, "MDS" if kind != DeliveryKind.STATUS else "", kind, accepted,
                                b'{"message": "MSG0000"}' if kind == DeliveryKind.STATUS else None))
    queues._enqueue(rows, accepted)
    hooks = {(RECIPIENT, kind, iid): Webhook(RECIPIENT, kind, iid, URL, 100, 100_000, RECIPIENT)
             for kind, iid in ((WebhookKind.PUBLICATION, "IF-021"), (WebhookKind.STATUS, ""))}
    directory = Directory(participants={p: Participant(p, p, frozenset({r})) for p, r in
                                        ((SENDER, "SDS"), (RECIPIENT, "MDS"))}, webhooks=hooks)
    sender = ScriptedSender(list(answers))
    ctx = WorkerContext(
        queues=queues, lookups=Lookups(directory, Catalogue.from_rows(
            [(i, b) for i, b in default_catalogue() if i == "IF-021"])),
        sender=sender, policy=RetryPolicy(1.0, 60.0, dead_letter_after),
        notices=StatusNotices("0000000000", lambda tid: f"https://desk/{tid}"),
        breakers=CircuitBreakers(threshold=THRESHOLD, cool_off=30.0), max_batch=5_000)
    return Dispatcher(ctx, "node-a", lambda: None), queues, sender


async def call(dispatcher: Dispatcher, queues: InMemoryQueues, at: float | None = None) -> bool:
    """Claim the queue and make one call; False when the queue was not due."""
    claims = await queues.claim("node-a", int((at or time.time()) * 1e6), 60_000_000, 10)
    for claim in claims:
        await dispatcher.deliver(claim)
    return bool(claims)


def states(queues: InMemoryQueues, queue: str = QUEUE) -> list[DeliveryState]:
    return [queues.state_of(d.id) for d in queues.rows(queue)]


def told(queues: InMemoryQueues) -> list[dict[str, Any]]:
    """The status messages waiting for the messages' sender."""
    return [orjson.loads(d.row.body or b"") for d in queues.rows(status_queue(SENDER))]


# -- the table itself ------------------------------------------------------------------------------


def test_every_outcome_has_one_consequence_and_only_retries_hold_the_queue() -> None:
    assert set(EGRESS) == set(Outcome)
    assert [o for o, c in EGRESS.items() if c.retry] == [Outcome.RETRY]
    assert [o for o, c in EGRESS.items() if c.endpoint_failed] == [Outcome.RETRY]
    assert {o for o, c in EGRESS.items() if c.notice is Notice.DIP} == {Outcome.FAILED_NOTIFY, Outcome.DEAD_LETTER}
    assert NAMED.state == DeliveryState.REJECTED and NAMED.notice is Notice.RELAY


@pytest.mark.parametrize(("status", "outcome"), [
    (201, Outcome.DELIVERED), (200, Outcome.DELIVERED), (207, Outcome.PARTIAL), (400, Outcome.REJECTED),
    (401, Outcome.FAILED), (403, Outcome.FAILED), (404, Outcome.FAILED), (413, Outcome.FAILED),
    (505, Outcome.FAILED), (418, Outcome.FAILED), (405, Outcome.FAILED_NOTIFY), (406, Outcome.FAILED_NOTIFY),
    (408, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY), (503, Outcome.RETRY), (None, Outcome.RETRY),
])
def test_each_answer_is_classified_as_the_egress_table_says(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


# -- one call, each row of the table ------------------------------------------------------------------


async def test_201_delivers_the_call_and_tells_nobody() -> None:
    dispatcher, queues, sender = setup([(201, {})])
    assert await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.DELIVERED] * 3 and told(queues) == []
    assert queues.queues[QUEUE].retries == 0 and queues.queues[QUEUE].lease_owner is None
    assert len(sender.calls) == 1 and len(sender.calls[0]) == 3


async def test_a_copy_whose_message_was_purged_fails_and_is_not_sent() -> None:
    # a requeued or redriven copy is kept from when it was queued, its message from when it was
    # received: the retention purge may take the message first (docs/archive.md, "Retention")
    dispatcher, queues, sender = setup([(201, {})])
    purged = queues.rows(QUEUE)[1]
    del queues.messages[purged.row.transaction_id]
    assert await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DELIVERED]
    assert purged.last_error == "its message was purged from the archive"
    assert len(sender.calls) == 1 and purged.row.transaction_id not in sender.calls[0] and len(sender.calls[0]) == 2


async def test_207_rejects_the_named_message_relays_the_recipients_item_and_delivers_the_rest() -> None:
    dispatcher, queues, _ = setup([(207, None)])
    second = queues.rows(QUEUE)[1].row.transaction_id
    dispatcher.ctx.sender.answers[0] = (207, [  # type: ignore[attr-defined]
        {"transactionID": second, "message": "RCP1022 - bad reading", "help": "period 3"}])
    await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.DELIVERED, DeliveryState.REJECTED, DeliveryState.DELIVERED]
    assert queues.rows(QUEUE)[1].last_error == "RCP1022 - bad reading"
    (relayed,) = told(queues)
    assert (relayed["transactionID"], relayed["senderID"], relayed["recipientID"]) == (second, RECIPIENT, SENDER)
    assert relayed["message"] == "RCP1022 - bad reading" and relayed["help"] == "period 3"


async def test_400_naming_nothing_rejects_the_whole_call_and_tells_the_sender_of_each() -> None:
    dispatcher, queues, _ = setup([(400, {"error": "unreadable"})])
    await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.REJECTED] * 3
    assert len(told(queues)) == 3


async def test_405_fails_for_good_and_the_dip_tells_the_sender() -> None:
    dispatcher, queues, _ = setup([(405, {})], messages=1)
    await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.FAILED]
    (notice,) = told(queues)
    assert notice["senderID"] == "0000000000" and "answered HTTP 405" in notice["help"]
    assert notice["message"].startswith("MSG1000")


async def test_404_fails_for_good_and_tells_nobody() -> None:
    dispatcher, queues, _ = setup([(404, {})], messages=2)
    await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.FAILED] * 2 and told(queues) == []
    assert queues.queues[QUEUE].retries == 0


async def test_503_holds_the_queue_head_and_backs_off() -> None:
    dispatcher, queues, sender = setup([(503, {}), (201, {})])
    before = time.time()
    await call(dispatcher, queues)
    q = queues.queues[QUEUE]
    assert states(queues) == [DeliveryState.PENDING] * 3 and told(queues) == []
    assert q.retries == 1 and q.next_attempt_at >= (before + 1.0) * 1e6  # at least the initial delay
    assert not await call(dispatcher, queues)  # not due yet
    assert await call(dispatcher, queues, at=q.next_attempt_at / 1e6)
    assert states(queues) == [DeliveryState.DELIVERED] * 3 and queues.queues[QUEUE].retries == 0
    assert [len(c) for c in sender.calls] == [3, 3]  # the same head again, in order


async def test_a_retried_message_past_its_deadline_is_dead_lettered_and_its_sender_told() -> None:
    # the deadline passes while the call is in flight: the answer finds the message out of time
    dispatcher, queues, sender = setup([(503, {})], messages=1, age_seconds=59.8, dead_letter_after=60.0)
    sender.delay = 0.4
    await call(dispatcher, queues)
    assert states(queues) == [DeliveryState.DEAD]
    (notice,) = told(queues)
    assert "dead-lettered after HTTP 503" in notice["help"]


async def test_messages_past_their_deadline_are_dead_lettered_without_a_call() -> None:
    dispatcher, queues, sender = setup([], messages=2, age_seconds=120, dead_letter_after=60.0)
    await call(dispatcher, queues)
    assert sender.calls == [] and states(queues) == [DeliveryState.DEAD] * 2
    assert all("not delivered to 1400000001 within 60 s" in n["help"] for n in told(queues))
    assert queues.rows(QUEUE)[0].last_error == "not delivered in time: dead-lettered"


async def test_status_messages_are_never_reported_on_in_turn() -> None:
    dispatcher, queues, _ = setup([(405, {})], messages=1, queue=status_queue(RECIPIENT))
    await call(dispatcher, queues)
    assert states(queues, status_queue(RECIPIENT)) == [DeliveryState.FAILED]
    assert told(queues) == []


# -- the breaker -------------------------------------------------------------------------------------------


async def test_failed_calls_open_the_breaker_then_one_probe_goes_and_a_success_closes_it() -> None:
    dispatcher, queues, sender = setup([(503, {})] * THRESHOLD + [(201, {})], messages=1)
    breakers = dispatcher.ctx.breakers
    now = time.time()
    for attempt in range(THRESHOLD):
        assert await call(dispatcher, queues, at=now + 3600 * (attempt + 1))
    assert len(sender.calls) == THRESHOLD
    later = now + 3600 * (THRESHOLD + 1)
    assert breakers.is_open(URL, time.time())
    # the queue is due, but its URL is held: no call, and not a failed attempt either
    retries = queues.queues[QUEUE].retries
    assert await call(dispatcher, queues, at=later)
    assert len(sender.calls) == THRESHOLD and queues.queues[QUEUE].retries == retries
    # after the cool-off one call (the probe) goes; its success closes the breaker
    breakers._by_url[URL].open_until = time.time() - 1  # the cool-off has passed
    assert await call(dispatcher, queues, at=later + 3600)
    assert len(sender.calls) == THRESHOLD + 1 and not breakers.is_open(URL, time.time())
    assert states(queues) == [DeliveryState.DELIVERED]


def test_answers_that_are_not_retried_do_not_count_against_the_endpoint() -> None:
    breakers = CircuitBreakers(threshold=2, cool_off=30.0)
    for status in (404, 405, 400, 201):
        breakers.record(URL, EGRESS[classify(status)].endpoint_failed, 0.0)
    assert breakers.hold(URL, 0.0) is None
    breakers.record(URL, EGRESS[classify(503)].endpoint_failed, 0.0)
    breakers.record(URL, EGRESS[classify(None)].endpoint_failed, 0.0)
    assert breakers.hold(URL, 1.0) == 30.0  # open: wait until the cool-off ends
    assert breakers.hold(URL, 31.0) is None  # the probe goes ...
    assert breakers.hold(URL, 31.5) == 61.0  # ... and everyone else waits another cool-off
