"""Message elements a delivery node has built recently, for a message's other recipients.

An element is what one recipient gets of one message (``{"payload": ...}`` with A0 and D0 added,
masked for its role). Every recipient of a message gets the same A0 and D0, so recipients whose
roles the channel masks alike get the same bytes: an IF-021 reading, routed to four recipients,
is built once instead of four times. The key holds everything the bytes depend on besides the
stored message, which never changes: the transaction, the channel's publication ID and the
fields masked. Bounded by the bytes it holds; the least recently used go first.
"""

from __future__ import annotations

from collections.abc import Sequence

from dip.lru import SizedLRU

_OVERHEAD = 150  # bytes per entry besides the element: the key and the dictionary's share

ElementKey = tuple[str, str, tuple[str, ...]]  # transaction ID, publication ID, masked pointers


def element_key(transaction_id: str, publication_id: str, masked: Sequence[str]) -> ElementKey:
    return transaction_id, publication_id, tuple(masked)


class ElementCache(SizedLRU[ElementKey, bytes]):
    """Built elements by key, at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, lambda element: len(element) + _OVERHEAD)
