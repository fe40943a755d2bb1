"""Circuit breakers per webhook URL, so a dead endpoint costs nothing.

After ``threshold`` failed calls in a row (the answers dip.egress.outcomes counts against an
endpoint) a URL is left alone for ``cool_off`` seconds; then one call (the probe) is let through
while every other queue using the URL waits another cool-off, and a success closes the breaker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreakers:
    def __init__(self, threshold: int = 5, cool_off: float = 30.0) -> None:
        self.threshold = threshold
        self.cool_off = cool_off
        self._by_url: dict[str, _Breaker] = {}

    def hold(self, url: str, now: float) -> float | None:
        """None when a call may go now (possibly as the probe), else until when to wait."""
        breaker = self._by_url.get(url)
        if breaker is None or breaker.failures < self.threshold:
            return None
        if breaker.open_until > now:
            return breaker.open_until
        breaker.open_until = now + self.cool_off  # this caller probes; the others wait
        return None

    def record(self, url: str, failed: bool, now: float) -> None:
        breaker = self._by_url.setdefault(url, _Breaker())
        if not failed:
            breaker.failures, breaker.open_until = 0, 0.0
            return
        breaker.failures += 1
        if breaker.failures >= self.threshold:
            breaker.open_until = now + self.cool_off

    def is_open(self, url: str, now: float) -> bool:
        breaker = self._by_url.get(url)
        return breaker is not None and breaker.failures >= self.threshold and breaker.open_until > now
