"""The delivery node's cache of built message elements: keyed by all a copy depends on, bounded by bytes."""

from __future__ import annotations

from dip.egress.element_cache import ElementCache, element_key

PUB = "PUB-021"


def test_a_copy_is_found_only_for_the_same_transaction_publication_and_masking() -> None:
    cache = ElementCache(100_000)
    cache.put(element_key("T-1", PUB, ()), b"plain")
    cache.put(element_key("T-1", PUB, ["/CustomBlock/x"]), b"masked")
    assert cache.get(element_key("T-1", PUB, [])) == b"plain"
    assert cache.get(element_key("T-1", PUB, ("/CustomBlock/x",))) == b"masked"
    assert cache.get(element_key("T-1", PUB, ("/CustomBlock/y",))) is None
    assert cache.get(element_key("T-1", "PUB-022", ())) is None
    assert cache.get(element_key("T-2", PUB, ())) is None
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_least_recently_used_copy_goes_first_when_the_bytes_run_out() -> None:
    cache = ElementCache(3 * (1000 + 150))
    for tid in "abc":
        cache.put(element_key(tid, PUB, ()), b"x" * 1000)
    assert cache.get(element_key("a", PUB, ())) is not None
    cache.put(element_key("d", PUB, ()), b"x" * 1000)
    assert cache.get(element_key("b", PUB, ())) is None
    assert all(cache.get(element_key(t, PUB, ())) is not None for t in "acd")
    assert len(cache) == 3 and cache.size <= cache.max_bytes


def test_a_copy_larger_than_the_cache_is_not_kept_and_a_copy_put_again_counts_once() -> None:
    cache = ElementCache(5000)
    cache.put(element_key("small", PUB, ()), b"x" * 100)
    cache.put(element_key("huge", PUB, ()), b"x" * 10_000)
    cache.put(element_key("small", PUB, ()), b"x" * 100)
    assert cache.get(element_key("huge", PUB, ())) is None
    assert len(cache) == 1 and cache.size == 250
