"""Rate limits held across API nodes (E2E 6.1 "hard limits"; docs/security.md "Rate limits").

A token bucket per (kind, key), kept in the database every API node shares (``rate_buckets``):
with N nodes behind a load balancer a participant gets the configured rate, not N times it.
One statement a call takes the tokens or leaves the bucket as it was (PostgreSQL's row lock, or
SQLite's single writer, orders concurrent takes). Off (rate 0) it costs nothing.

Kinds: ``messages`` (a participant's messages, every channel), ``channel`` (a participant's
messages on one channel, when the channel's definition sets ``rateLimit``), ``archive`` (a
participant's replay, requeue and search requests) and ``status`` (status-message items a
reporter relays).
"""

from __future__ import annotations

import math
import time
from typing import Protocol


class _Store(Protocol):
    async def take_tokens(self, key: str, count: float, rate: float, burst: float, now: int) -> float: ...


class SharedRateLimiter:
    """Allows ``rate`` a second per key, in bursts up to ``burst``; rate 0: no limit."""

    def __init__(self, store: _Store, rate: float, burst: int, kind: str = "messages") -> None:
        self._store = store
        self.rate = rate
        self.burst = max(burst, 1)
        self.kind = kind

    async def take(self, key: str, count: int, rate: float | None = None, burst: int | None = None) -> float:
        """0 when allowed, else the whole seconds to wait before retrying (at least 1); ``rate``
        and ``burst`` for this key instead of the limiter's (a channel's own limit)."""
        rate = self.rate if rate is None else rate
        burst = self.burst if burst is None else max(burst, 1)
        if rate <= 0:
            return 0.0
        count = min(count, burst)  # a batch bigger than the burst waits for a full bucket, not for ever
        wait = await self._store.take_tokens(f"{self.kind}:{key}", count, rate, burst, int(time.time() * 1_000_000))
        return 0.0 if wait == 0 else max(1.0, math.ceil(wait))
