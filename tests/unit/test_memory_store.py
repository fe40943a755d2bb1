"""The in-memory queue store keeps the real store's queue rules (the same scenarios as
tests/integration/test_store_contract.py, without a database)."""

from __future__ import annotations

from dip.queue import DeliveryKind, DeliveryState
from dip.store.base import DeliveryRow, Settlement
from dip.store.memory import InMemoryQueues

NOW = 1_790_000_000_000_000
QUEUE = "1400000001|IF-021"


def delivery(n: int, queue: str = QUEUE) -> DeliveryRow:
    return DeliveryRow(queue, f"T-{n}", queue.split("|")[0], "MDS", DeliveryKind.ALWAYS, NOW + n)


def fake(n: int) -> InMemoryQueues:
    queues = InMemoryQueues()
    for i in range(1, n + 1):
        queues.add_message(f"T-{i}", b'{"n": %d}' % i, NOW + i)
    return queues


async def test_queues_are_served_in_order_with_their_messages_and_leased_once() -> None:
    queues = fake(3)
    await queues.enqueue([delivery(1), delivery(2)], NOW)
    await queues.enqueue([delivery(3), delivery(3, queue="1000000001|IF-021")], NOW)
    claims = await queues.claim("node-a", NOW, 30_000_000, 10)
    assert sorted(c.queue for c in claims) == ["1000000001|IF-021", QUEUE]
    pending = await queues.pending(QUEUE, 10)
    assert [p.transaction_id for p in pending] == ["T-1", "T-2", "T-3"]
    assert pending[0].payload == b'{"n": 1}' and pending[0].received_at == NOW + 1
    assert await queues.claim("node-b", NOW, 30_000_000, 10) == []


async def test_a_backing_off_head_holds_its_queue_and_new_messages_wait() -> None:
    queues = fake(2)
    await queues.enqueue([delivery(1)], NOW)
    (claim,) = await queues.claim("node-a", NOW, 30_000_000, 10)
    (head,) = await queues.pending(claim.queue, 10)
    later = NOW + 60_000_000
    assert await queues.settle(QUEUE, "node-a", [Settlement(head.id, DeliveryState.PENDING, 503, "busy")], later, 1,
                               [], NOW)
    await queues.enqueue([delivery(2)], NOW + 1)  # must not pull the retry forward
    assert await queues.claim("node-a", NOW + 1_000_000, 30_000_000, 10) == []
    (claim,) = await queues.claim("node-a", later, 30_000_000, 10)
    assert claim.retries == 1
    assert [(p.transaction_id, p.attempts) for p in await queues.pending(QUEUE, 10)] == [("T-1", 1), ("T-2", 0)]


async def test_settling_needs_the_lease_and_a_delivered_run_moves_the_watermark() -> None:
    queues = fake(3)
    await queues.enqueue([delivery(1), delivery(2), delivery(3)], NOW)
    assert not await queues.settle(QUEUE, "node-a", [], NOW, 0, [], NOW)  # not claimed by node-a
    await queues.claim("node-a", NOW, 1_000_000, 10)
    one, two, three = await queues.pending(QUEUE, 10)
    status = DeliveryRow("1300000001|status", "T-3", "1300000001", "", DeliveryKind.STATUS, NOW, b"{}")
    assert await queues.settle(QUEUE, "node-a", [Settlement(one.id, DeliveryState.DELIVERED, 207, None),
                                                 Settlement(two.id, DeliveryState.DELIVERED, 207, None),
                                                 Settlement(three.id, DeliveryState.REJECTED, 207, "bad")],
                               NOW, 0, [status], NOW + 7)
    assert [queues.state_of(d) for d in (one.id, two.id, three.id)] == [
        DeliveryState.DELIVERED, DeliveryState.DELIVERED, DeliveryState.REJECTED]
    assert queues.queues[QUEUE].delivered_through == two.id
    assert await queues.pending(QUEUE, 10) == []
    (relayed,) = await queues.pending("1300000001|status", 10)
    assert relayed.body == b"{}" and relayed.payload is None


async def test_an_expired_lease_can_be_taken_over() -> None:
    queues = fake(1)
    await queues.enqueue([delivery(1)], NOW)
    assert len(await queues.claim("node-a", NOW, 1_000_000, 10)) == 1
    assert await queues.claim("node-b", NOW + 500_000, 1_000_000, 10) == []
    (taken,) = await queues.claim("node-b", NOW + 2_000_000, 1_000_000, 10)
    assert not await queues.settle(taken.queue, "node-a", [], NOW, 0, [], NOW)


async def test_a_drained_queue_is_idle_until_an_arrival_even_one_during_the_call() -> None:
    queues = fake(3)
    await queues.enqueue([delivery(1)], NOW)
    (claim,) = await queues.claim("node-a", NOW, 30_000_000, 10)
    (one,) = await queues.pending(QUEUE, 10)
    assert await queues.settle(QUEUE, "node-a", [Settlement(one.id, DeliveryState.DELIVERED, 201, None)], NOW, 0,
                               [], NOW, drained=claim.arrivals)
    assert await queues.claim("node-a", NOW + 10**12, 30_000_000, 10) == []  # idle
    await queues.enqueue([delivery(2)], NOW + 1)
    (claim,) = await queues.claim("node-a", NOW + 1, 30_000_000, 10)
    await queues.enqueue([delivery(3)], NOW + 2)  # arrives while the call is out
    assert await queues.settle(QUEUE, "node-a", [], NOW + 3, 0, [], NOW + 3, drained=claim.arrivals)
    assert [c.queue for c in await queues.claim("node-a", NOW + 3, 30_000_000, 10)] == [QUEUE]


async def test_the_pending_floor_is_the_oldest_the_last_read_saw_and_never_moves_back() -> None:
    queues = fake(2)
    await queues.enqueue([delivery(1), delivery(2)], NOW)
    (claim,) = await queues.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == 0
    one, _ = await queues.pending(QUEUE, 10)
    assert await queues.settle(QUEUE, "node-a", [Settlement(one.id, DeliveryState.DELIVERED, 201, None)], NOW, 0,
                               [], NOW, since=one.accepted_at)
    (claim,) = await queues.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == NOW + 1
    assert await queues.settle(QUEUE, "node-a", [], NOW, 0, [], NOW, since=NOW - 5)
    (claim,) = await queues.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == NOW + 1
    assert [p.transaction_id for p in await queues.pending(QUEUE, 10, since=claim.pending_floor)] == ["T-2"]
