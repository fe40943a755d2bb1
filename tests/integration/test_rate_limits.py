"""Rate limits held across API nodes (dip.accept.rate_limits): the token bucket in the shared
database, on both stores, with the time given (so refills are exact); and the limits of the API
(a channel's own, the archive's, the status relay's) holding across two nodes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dip.store import Store
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import consumption, onboard_all

S = 1_000_000  # a second, in the store's microseconds


async def test_a_burst_is_allowed_then_refused_with_the_wait(store: Store) -> None:
    assert await store.take_tokens("k", 20, 10, 20, 0) == 0
    assert await store.take_tokens("k", 1, 10, 20, 0) == 0.1  # a tenth of a second for one more token
    assert await store.take_tokens("k", 10, 2, 20, 0) == 5.0  # the shortfall at 2 a second


async def test_refills_never_pass_the_burst_and_a_refusal_takes_nothing(store: Store) -> None:
    assert await store.take_tokens("k", 15, 10, 20, 0) == 0
    assert await store.take_tokens("k", 10, 10, 20, 0) > 0  # 5 left: refused, and ...
    assert await store.take_tokens("k", 5, 10, 20, 0) == 0  # ... the 5 are still there
    assert await store.take_tokens("k", 20, 10, 20, 100 * S) == 0  # refilled to the burst, not beyond
    assert await store.take_tokens("k", 1, 10, 20, 100 * S) > 0


async def test_keys_have_separate_buckets(store: Store) -> None:
    assert await store.take_tokens("a", 5, 1, 5, 0) == 0
    assert await store.take_tokens("a", 1, 1, 5, 0) > 0
    assert await store.take_tokens("b", 5, 1, 5, 0) == 0


def test_a_channels_own_limit_holds_across_two_api_nodes(dip_factory: Callable[..., RunningDip],
                                                         tmp_path: Path) -> None:
    first = dip_factory()
    shared = first.settings.database_url or f"sqlite:{first.settings.data_dir / 'dip.sqlite3'}"
    second = dip_factory(database_url=shared, data_dir=tmp_path / "second")
    with AdminClient(first.url, first.admin_key) as admin:
        cast = onboard_all(admin)
        definition = admin.get_channel("IF-021")
        definition["rateLimit"] = {"messagesPerSecond": 0.01, "burst": 3}
        assert admin.put_channel("IF-021", definition).status_code == 200
        definition["rateLimit"] = {"messagesPerSecond": -1, "burst": 3}
        assert admin.put_channel("IF-021", definition).status_code == 400
    with DipClient(first.url, cast["SDS"]) as a, DipClient(second.url, cast["SDS"]) as b:
        assert a.send("IF-021", consumption(a, 2)).status_code == 201
        refused = None
        deadline = time.monotonic() + 10  # the second node sees the channel's limit within its state poll
        while refused is None and time.monotonic() < deadline:
            answer = b.send("IF-021", consumption(b, 2))
            refused = answer if answer.status_code == 429 else None
        assert refused is not None and int(refused.headers["retry-after"]) >= 1
        assert "IF-021" in refused.text
        with DipClient(first.url, cast["SUP"]) as other:  # another channel is not limited
            assert other.send("IF-005", []).status_code != 429
