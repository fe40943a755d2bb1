"""The delivery node's cache of stored messages: bounded by bytes, least recently used out first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dip.store.message_cache import MessageCache, StoredMessage, pending_from


def message(size: int) -> StoredMessage:
    return StoredMessage(b"x" * size, None, 0, "", "", None, None)


def test_the_least_recently_used_message_goes_first_when_the_bytes_run_out() -> None:
    cache = MessageCache(3 * (1000 + 200))
    for tid in "abc":
        cache.put(tid, message(1000))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", message(1000))
    assert cache.get("b") is None and all(cache.get(t) is not None for t in "acd")
    assert len(cache) == 3 and cache.size <= cache.max_bytes


def test_a_message_larger_than_the_cache_is_not_kept_and_evicts_nothing() -> None:
    cache = MessageCache(5000)
    cache.put("small", message(100))
    cache.put("huge", message(10_000))
    assert cache.get("huge") is None and cache.get("small") is not None


def test_putting_a_message_again_does_not_count_it_twice() -> None:
    cache = MessageCache(10_000)
    cache.put("a", message(1000))
    cache.put("a", message(1000))
    assert len(cache) == 1 and cache.size == 1200
    assert (cache.hits, cache.misses) == (0, 0)
    cache.get("a")
    cache.get("b")
    assert (cache.hits, cache.misses) == (1, 1)


def rows(*tids: str) -> list[tuple[object, ...]]:
    """Delivery rows as a store returns them (id, transaction ID, recipient, role, kind, ...)."""
    return [(i, tid, "R", "SUP", "secondary", 0, 0, None, None) for i, tid in enumerate(tids)]


class Reader:
    """The store's read of stored messages, held at a gate so reads overlap as queues' reads do."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = asyncio.Event()
        self.calls: list[list[str]] = []
        self.fail = fail

    async def __call__(self, tids: list[str]) -> dict[str, StoredMessage]:
        self.calls.append(tids)
        await self.gate.wait()
        if self.fail:
            self.fail = False
            raise OSError("connection reset")
        return {t: message(10) for t in tids}


async def until(condition: Callable[[], object]) -> None:
    """Let the other tasks run until ``condition`` holds (they need a few turns of the loop)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition did not come about")


async def test_a_queue_needing_messages_another_queue_is_reading_waits_for_that_read() -> None:
    cache, read = MessageCache(1_000_000), Reader()
    first = asyncio.create_task(pending_from(rows("a", "b"), read, cache))
    await until(lambda: read.calls)
    second = asyncio.create_task(pending_from(rows("b", "c"), read, cache))
    await until(lambda: len(read.calls) == 2)
    read.gate.set()
    one, two = await first, await second
    assert sorted(read.calls) == [["a", "b"], ["c"]]  # b was read once, by the first queue
    assert [p.transaction_id for p in one] == ["a", "b"] and [p.transaction_id for p in two] == ["b", "c"]
    assert all(p.payload == b"x" * 10 for p in one + two)
    assert (cache.reads, cache.shared) == (3, 1)


async def test_when_the_shared_read_fails_the_waiting_queue_reads_for_itself() -> None:
    cache, read = MessageCache(1_000_000), Reader(fail=True)
    first = asyncio.create_task(pending_from(rows("a"), read, cache))
    await until(lambda: read.calls)
    second = asyncio.create_task(pending_from(rows("a"), read, cache))
    await until(lambda: cache.misses == 2)  # the second queue is waiting on the first one's read
    read.gate.set()
    with pytest.raises(OSError, match="connection reset"):
        await first
    (got,) = await second
    assert got.payload == b"x" * 10 and read.calls == [["a"], ["a"]] and cache.shared == 0


async def test_a_cancelled_waiter_does_not_cancel_the_read_it_waits_for() -> None:
    cache, read = MessageCache(1_000_000), Reader()
    first = asyncio.create_task(pending_from(rows("a"), read, cache))
    await until(lambda: read.calls)
    waiter = asyncio.create_task(pending_from(rows("a"), read, cache))
    await until(lambda: cache.misses == 2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    read.gate.set()
    (got,) = await first
    assert got.payload == b"x" * 10 and cache.get("a") is not None


def test_cached_messages_are_left_out_of_the_cyclic_collectors_walks() -> None:
    # a full collection walks every tracked object; a named tuple is never untracked, a plain
    # tuple of bytes, strings and numbers is, so the cache keeps plain tuples
    import gc

    cache = MessageCache(1_000_000)
    cache.put("a", StoredMessage(b"{}", "CI-1", 1, "x", "y", 1, 2))
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in cache._entries.values())
    assert cache.get("a") == StoredMessage(b"{}", "CI-1", 1, "x", "y", 1, 2)
