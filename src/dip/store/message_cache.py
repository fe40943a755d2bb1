"""Stored messages a delivery node has read recently, so each is read from the store once.

A message routed to several recipients sits in several queues (an IF-021 reading goes to the
supplier, the distributor, MDS and LSS), and each queue's call needs its stored payload. The
queues are served at about the same pace, so the first queue to reach a message reads it and the
others find it here. Stored messages never change after they are accepted, so an entry is never
stale; the cache is bounded by the bytes of the payloads it holds and forgets the least recently
used first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from dip.store.base import PendingDelivery

# the queries of both stores: a queue's delivery rows, then the stored messages they need
PENDING_SQL = ("SELECT d.id, d.transaction_id, d.recipient_id, d.role, d.kind, d.accepted_at, d.attempts, d.body"
               " FROM deliveries d")
STORED_SQL = ("SELECT transaction_id, payload, correlation_id, received_at, a0_secondary, a0_always, common_start,"
              " common_end FROM messages")
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
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, StoredMessage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, transaction_id: str) -> StoredMessage | None:
        found = self._entries.get(transaction_id)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(transaction_id)
        return found

    def put(self, transaction_id: str, message: StoredMessage) -> None:
        cost = len(message.payload) + _OVERHEAD
        if cost > self.max_bytes:
            return  # a message larger than the whole cache is read again when needed
        old = self._entries.pop(transaction_id, None)
        if old is not None:
            self.size -= len(old.payload) + _OVERHEAD
        self._entries[transaction_id] = message
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted.payload) + _OVERHEAD


_NO_MESSAGE = (None,) * len(StoredMessage._fields)


async def pending_from(rows: Sequence[Sequence[Any]], fetch: Callable[[list[str]], Awaitable[dict[str, StoredMessage]]],
                       cache: MessageCache | None) -> list[PendingDelivery]:
    """PendingDelivery values for a queue's delivery rows (id, transaction ID, recipient, role,
    kind, accepted at, attempts, body), their messages from ``cache`` or else from ``fetch``
    (which reads them from the store); status messages carry no stored message."""
    messages: dict[str, StoredMessage] = {}
    missing: list[str] = []
    for tid in {r[1] for r in rows if r[4] != "status"}:
        found = cache.get(tid) if cache is not None else None
        if found is None:
            missing.append(tid)
        else:
            messages[tid] = found
    if missing:
        fetched = await fetch(sorted(missing))
        messages.update(fetched)
        if cache is not None:
            for tid, message in fetched.items():
                cache.put(tid, message)
    return [PendingDelivery(*r, *(_NO_MESSAGE if r[4] == "status" else messages.get(r[1], _NO_MESSAGE)))
            for r in rows]
