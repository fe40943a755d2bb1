"""The delivery node's cache of stored messages: bounded by bytes, least recently used out first."""

from __future__ import annotations

from dip.store.message_cache import MessageCache, StoredMessage


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
