"""Per-participant throttling of messages (E2E 6.1 "hard limits"): a token bucket per caller."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class MessageRateLimiter:
    """Allows ``rate`` messages per second per key, with bursts up to ``burst``; rate 0 disables it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, count: int, now: float | None = None) -> float:
        """Take ``count`` tokens; return 0 when allowed, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if count > self.burst:
            count = self.burst  # a batch bigger than the burst waits for a full bucket, not for ever
        if bucket.tokens >= count:
            bucket.tokens -= count
            return 0.0
        return max(1.0, math.ceil((count - bucket.tokens) / self.rate))
