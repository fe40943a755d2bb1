"""The per-participant message rate limit (E2E 6.1 "hard limits"), held across API nodes.

A token bucket per participant, kept in the database every API node shares (``rate_buckets``):
with N nodes behind a load balancer a participant gets the configured rate, not N times it.
One statement a call takes the tokens or leaves the bucket as it was (PostgreSQL's row lock, or
SQLite's single writer, orders concurrent takes). Off (rate 0) it costs nothing.
"""

from __future__ import annotations

import math
import time
from typing import Protocol


class _Store(Protocol):
    async def take_tokens(self, key: str, count: float, rate: float, burst: float, now: int) -> float: ...


class SharedRateLimiter:
    """Allows ``rate`` messages a second per participant, in bursts up to ``burst``; rate 0: no limit."""

    def __init__(self, store: _Store, rate: float, burst: int) -> None:
        self._store = store
        self.rate = rate
        self.burst = max(burst, 1)

    async def take(self, key: str, count: int) -> float:
        """0 when allowed, else the whole seconds to wait before retrying (at least 1)."""
        if self.rate <= 0:
            return 0.0
        count = min(count, self.burst)  # a batch bigger than the burst waits for a full bucket, not for ever
        wait = await self._store.take_tokens(f"messages:{key}", count, self.rate, self.burst,
                                             int(time.time() * 1_000_000))
        return 0.0 if wait == 0 else max(1.0, math.ceil(wait))
