"""An in-memory fake of the queue part of the store (``QueueStore``), for fast unit tests of
delivery: the egress table, the breaker, dead letters, status messages.

It keeps the rules the real store keeps (a queue is served in id order above its watermark; a
claim leases due queues with pending deliveries; a settlement needs the lease, releases it and
enqueues the status messages atomically; a delivered run moves the watermark) in plain Python,
so a test needs no database. The real dialects run the contract tests
(tests/integration/test_store_contract.py), and tests/unit/test_memory_store.py runs the queue
scenarios of those tests against this fake, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dip.queue import IDLE, DeliveryKind, DeliveryState, queue_interface
from dip.store.base import Claim, DeliveryRow, PendingDelivery, Settlement, by_outcome
from dip.store.message_cache import MessageCache, StoredMessage


@dataclass
class _Queue:
    recipient_id: str
    interface_id: str
    next_attempt_at: int
    retries: int = 0
    lease_owner: str | None = None
    lease_until: int | None = None
    delivered_through: int = 0
    arrivals: int = 0
    pending_floor: int = 0


@dataclass
class _Delivery:
    id: int
    row: DeliveryRow
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    done_at: int | None = None


@dataclass
class InMemoryQueues:
    messages: dict[str, StoredMessage] = field(default_factory=dict)  # transaction ID -> stored message
    queues: dict[str, _Queue] = field(default_factory=dict)
    deliveries: list[_Delivery] = field(default_factory=list)

    # -- what a test sets up and looks at ----------------------------------------------------------

    def add_message(self, transaction_id: str, payload: bytes, received_at: int, correlation_id: str | None = None,
                    ) -> None:
        self.messages[transaction_id] = StoredMessage(payload, correlation_id, received_at, "", "", None, None)

    def state_of(self, delivery_id: int) -> DeliveryState:
        """As the ``delivery_status`` view says: a pending row at or below its queue's watermark
        was delivered."""
        d = self.deliveries[delivery_id - 1]
        if d.state == DeliveryState.PENDING and d.id <= self.queues[d.row.queue].delivered_through:
            return DeliveryState.DELIVERED
        return d.state

    def rows(self, queue: str) -> list[_Delivery]:
        return [d for d in self.deliveries if d.row.queue == queue]

    # -- QueueStore ---------------------------------------------------------------------------------

    async def enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        self._enqueue(rows, now)

    def _enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        for name in dict.fromkeys(r.queue for r in rows):  # as upsert_queue: one arrival a queue
            q = self.queues.get(name)
            if q is None:
                recipient = next(r.recipient_id for r in rows if r.queue == name)
                self.queues[name] = _Queue(recipient, queue_interface(name), now)
                continue
            q.arrivals += 1
            if q.retries == 0 and now < q.next_attempt_at:
                q.next_attempt_at = now
        first = len(self.deliveries) + 1
        self.deliveries.extend([_Delivery(first + i, r) for i, r in enumerate(rows)])

    async def listen_deliveries(self, wake: Callable[[], None]) -> bool:
        return False

    async def make_due(self, recipient_id: str, now: int) -> None:
        for q in self.queues.values():
            if q.recipient_id == recipient_id and q.retries == 0 and q.next_attempt_at > now:
                q.next_attempt_at = now
                q.arrivals += 1

    def _pending(self, queue: str, since: int | None = None) -> list[_Delivery]:
        mark = self.queues[queue].delivered_through
        return [d for d in self.deliveries
                if d.row.queue == queue and d.state == DeliveryState.PENDING and d.id > mark
                and (since is None or d.row.accepted_at >= since)]

    async def claim(self, owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        due = sorted((q.next_attempt_at, name) for name, q in self.queues.items()
                     if q.next_attempt_at <= now and (q.lease_until is None or q.lease_until < now))
        claims = []
        for _, name in due[:limit]:
            q = self.queues[name]
            q.lease_owner, q.lease_until = owner, now + lease
            claims.append(Claim(name, q.recipient_id, q.interface_id, q.retries, q.arrivals, q.pending_floor))
        return claims

    async def pending(self, queue: str, limit: int, cache: MessageCache | None = None,
                      since: int | None = None) -> list[PendingDelivery]:
        out = []
        for d in self._pending(queue, since)[:limit]:
            r = d.row
            m = self.messages.get(r.transaction_id) if r.kind != DeliveryKind.STATUS else None
            out.append(PendingDelivery._make((
                d.id, r.transaction_id, r.recipient_id, r.role, r.kind, r.accepted_at, d.attempts, r.body,
                *(m if m is not None else (None, None, None, None, None, None, None)), None)))
        return out

    async def release_leases(self, owner: str) -> int:
        held = [q for q in self.queues.values() if q.lease_owner == owner]
        for q in held:
            q.lease_owner, q.lease_until = None, None
        return len(held)

    async def settle(self, queue: str, owner: str, settlements: list[Settlement], next_attempt_at: int,
                     retries: int, relay: list[DeliveryRow], now: int, since: int | None = None,
                     drained: int | None = None) -> bool:
        q = self.queues[queue]
        if q.lease_owner != owner:
            return False
        written, runs = by_outcome(settlements)
        for (state, status, error), ids in written.items():
            for i in ids:
                d = self.deliveries[i - 1]
                d.state, d.last_status, d.last_error = DeliveryState(state), status, error
                d.attempts += 1
                d.done_at = None if state == DeliveryState.PENDING else now
        for run in runs:
            for d in self.deliveries[run.first_id - 1:run.last_id]:
                if d.row.queue == queue and d.state == DeliveryState.PENDING:
                    d.last_status, d.last_error, d.done_at = run.status, run.note, now
        idle = drained is not None and drained == q.arrivals
        q.next_attempt_at, q.retries, q.lease_owner, q.lease_until = (IDLE if idle else next_attempt_at, retries,
                                                                      None, None)
        q.delivered_through = max(q.delivered_through, max((r.last_id for r in runs), default=0))
        q.pending_floor = max(q.pending_floor, since or 0)
        self._enqueue(relay, now)
        return True
