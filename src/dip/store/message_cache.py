"""Stored messages a delivery node has read recently, so each is read from the store once.

A message routed to several recipients sits in several queues (an IF-021 reading goes to the
supplier, the distributor, MDS and LSS), and each queue's call needs its stored payload. The
queues are served at about the same pace, so the first queue to reach a message reads it and the
others find it here. Stored messages never change after they are accepted, so an entry is never
stale; the cache is bounded by the bytes of the payloads it holds and forgets the least recently
used first.

Queues are served concurrently, so two queues often reach the same messages at the same moment:
a read in flight is shared, and a queue that needs a message another queue is reading waits for
that read rather than reading it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from dip.lru import SizedLRU
from dip.queue import DeliveryKind
from dip.store.base import PendingDelivery

_OVERHEAD = 200  # bytes per entry besides the payload: the key, the tuple, the small fields


class StoredMessage(NamedTuple):
    """What delivery needs of a stored message (see PendingDelivery)."""

    payload: bytes
    correlation_id: str | None
    received_at: int
    a0_secondary: str | None
    a0_always: str | None
    common_start: int | None
    common_end: int | None


class MessageCache:
    """Recently read messages by transaction ID, at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int) -> None:
        # plain tuples, not StoredMessages: the cyclic GC stops tracking a tuple of bytes, strings
        # and numbers (it never untracks a named tuple), so a full collection skips the entries
        self._entries: SizedLRU[str, tuple[Any, ...]] = SizedLRU(max_bytes, lambda m: len(m[0]) + _OVERHEAD)
        self._reading: dict[str, asyncio.Future[StoredMessage | None]] = {}
        self.reads = 0  # messages read from the store for this cache
        self.shared = 0  # messages a queue took from another queue's read in flight

    @property
    def max_bytes(self) -> int:
        return self._entries.max_bytes

    @property
    def size(self) -> int:
        return self._entries.size

    @property
    def hits(self) -> int:
        return self._entries.hits

    @property
    def misses(self) -> int:
        return self._entries.misses

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, transaction_id: str) -> StoredMessage | None:
        found = self._entries.get(transaction_id)
        return None if found is None else StoredMessage._make(found)

    def put(self, transaction_id: str, message: StoredMessage) -> None:
        self._entries.put(transaction_id, tuple(message))

    def reading(self, transaction_id: str) -> asyncio.Future[StoredMessage | None] | None:
        """The read in flight that will bring this message, if any."""
        return self._reading.get(transaction_id)

    def start_reading(self, transaction_ids: list[str]) -> None:
        loop = asyncio.get_running_loop()
        self.reads += len(transaction_ids)
        for tid in transaction_ids:
            self._reading[tid] = loop.create_future()

    def finish_reading(self, transaction_ids: list[str], fetched: dict[str, StoredMessage]) -> None:
        """Keep what was read and hand it to the waiting queues; a message the read did not
        bring (or every message, when the read failed) is None to them, and they read it again."""
        for tid in transaction_ids:
            message = fetched.get(tid)
            if message is not None:
                self.put(tid, message)
            future = self._reading.pop(tid, None)
            if future is not None and not future.done():
                future.set_result(message)


_NO_MESSAGE = (None,) * len(StoredMessage._fields)


async def pending_from(rows: Sequence[Sequence[Any]], fetch: Callable[[list[str]], Awaitable[dict[str, StoredMessage]]],
                       cache: MessageCache | None) -> list[PendingDelivery]:
    """PendingDelivery values for a queue's delivery rows (id, transaction ID, recipient, role,
    kind, accepted at, attempts, body, replay ID), their messages from ``cache`` or else from ``fetch``
    (which reads them from the store); status messages carry no stored message."""
    messages: dict[str, StoredMessage] = {}
    missing: list[str] = []
    waiting: dict[str, asyncio.Future[StoredMessage | None]] = {}
    for tid in {r[1] for r in rows if r[4] != DeliveryKind.STATUS}:
        found = cache.get(tid) if cache is not None else None
        if found is not None:
            messages[tid] = found
        elif cache is not None and (future := cache.reading(tid)) is not None:
            waiting[tid] = future
        else:
            missing.append(tid)
    if missing:
        messages.update(await _read(sorted(missing), fetch, cache))
    if waiting:
        assert cache is not None
        # asyncio.wait, not await: if this queue's task is cancelled, the read it waits for is not
        await asyncio.wait(waiting.values())
        again = []
        for tid, future in waiting.items():
            message = future.result()
            if message is None:
                again.append(tid)
            else:
                messages[tid] = message
        cache.shared += len(waiting) - len(again)
        if again:
            messages.update(await _read(sorted(again), fetch, cache))
    return [PendingDelivery._make((*r[:8], *(_NO_MESSAGE if r[4] == DeliveryKind.STATUS
                                              else messages.get(r[1], _NO_MESSAGE)), r[8]))
            for r in rows]


async def _read(transaction_ids: list[str], fetch: Callable[[list[str]], Awaitable[dict[str, StoredMessage]]],
                cache: MessageCache | None) -> dict[str, StoredMessage]:
    if cache is None:
        return await fetch(transaction_ids)
    cache.start_reading(transaction_ids)
    fetched: dict[str, StoredMessage] = {}
    try:
        fetched = await fetch(transaction_ids)
    finally:  # on failure (or cancellation) too: the waiting queues must not wait for ever
        cache.finish_reading(transaction_ids, fetched)
    return fetched
