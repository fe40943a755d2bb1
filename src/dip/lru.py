"""A least-recently-used map bounded by the bytes of what it holds (the delivery node's caches)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, ValuesView
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """At most ``max_bytes`` of values, as ``cost`` counts them; the least recently used go first.
    A value costing more than the whole budget is not kept (and evicts nothing)."""

    def __init__(self, max_bytes: int, cost: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._cost = cost
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> ValuesView[V]:
        return self._entries.values()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        cost = self._cost(value)
        if cost > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= self._cost(old)
        self._entries[key] = value
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= self._cost(evicted)
