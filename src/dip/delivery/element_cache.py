"""Message elements a delivery node has built recently, for a message's other recipients.

An element is what one recipient gets of one message (``{"payload": ...}`` with A0 and D0 added,
masked for its role). Every recipient of a message gets the same A0 and D0, so recipients whose
roles the channel masks alike get the same bytes: an IF-021 reading, routed to four recipients,
is built once instead of four times. The key holds everything the bytes depend on besides the
stored message, which never changes: the transaction, the channel's publication ID and the
fields masked. Bounded by the bytes it holds; the least recently used go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

_OVERHEAD = 150  # bytes per entry besides the element: the key and the dictionary's share

ElementKey = tuple[str, str, tuple[str, ...]]  # transaction ID, publication ID, masked pointers


def element_key(transaction_id: str, publication_id: str, masked: Sequence[str]) -> ElementKey:
    return transaction_id, publication_id, tuple(masked)


class ElementCache:
    """Built elements by key, at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[ElementKey, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ElementKey) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, key: ElementKey, element: bytes) -> None:
        cost = len(element) + _OVERHEAD
        if cost > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old) + _OVERHEAD
        self._entries[key] = element
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted) + _OVERHEAD
