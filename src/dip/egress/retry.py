"""When to call a webhook again: data plus pure functions.

dip.egress.outcomes says whether an answer is retried; ``RetryPolicy.next_attempt`` says when,
or that the message has run out of time and goes to the dead-letter queue.
Workers never sleep through a backoff: they store the returned time (``next_attempt_at``).

Backoff (the shape stamina documents): the n-th retry waits
``base = min(max_delay, initial * 2 ** (n - 1))`` with jitter drawn uniformly from
``[max(initial, base / 2), base]``, so delays grow, never exceed ``max_delay``, never fall below
``initial``, and recipients recovering together are not hit in lock-step. A ``Retry-After``
from the recipient is honoured: the wait is at least that long. Nothing is retried past the
dead-letter deadline (accepted time + ``dead_letter_after``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# The jitter's own generator: the process-wide one belongs to the application (and to property
# tests that watch its state), so a library drawing from it in a background thread disturbs them.
_JITTER = random.Random()


PENDING_MARGIN = 2 * 86_400.0  # seconds past the dead-letter deadline a queue read still looks
# A delivery queued after another on the same queue (a higher ID: ingest locks the queue's row
# until it commits) was accepted at most this long before it: the time a request takes from its
# stamp to its commit, and the nodes' clocks, differ by far less
ENQUEUE_SKEW = 3_600.0


@dataclass(frozen=True)
class RetryPolicy:
    initial_delay: float = 1.0
    max_delay: float = 300.0
    dead_letter_after: float = 1_209_600.0  # 14 days (FS 5.4 "durable subscriptions")

    def __post_init__(self) -> None:
        values = (self.initial_delay, self.max_delay, self.dead_letter_after)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("retry delays must be finite numbers")
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay or self.dead_letter_after <= 0:
            raise ValueError("need 0 < initial_delay <= max_delay and dead_letter_after > 0")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_delay, self.initial_delay * 2 ** max(0, min(retry - 1, 62)))
        low = max(self.initial_delay, base / 2)
        return (rng or _JITTER).uniform(low, base) if base > low else base

    def next_attempt(self, retry: int, now: float, accepted_at: float, retry_after: float | None = None,
                     rng: random.Random | None = None) -> float | None:
        """When to try again (epoch seconds), or None: the message goes to the dead-letter queue."""
        deadline = accepted_at + self.dead_letter_after
        if now >= deadline:
            return None
        wait = self.backoff(retry, rng)
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        return min(now + wait, deadline)

    def dead_lettered(self, now: float, accepted_at: float) -> bool:
        return now >= accepted_at + self.dead_letter_after

    def oldest_pending(self, now: float) -> int:
        """The oldest a pending delivery can be (microseconds): the dead-letter deadline and a
        margin, as delivery dead-letters what passed it whenever it reads a queue. Queue reads look
        no further back (on PostgreSQL: no older day partitions); the retention job dead-letters
        what a long outage left behind it."""
        return int((now - self.dead_letter_after - PENDING_MARGIN) * 1_000_000)

    def read_from(self, now: float, pending_floor: int) -> int:
        """Where a queue's read starts (microseconds): at its ``pending_floor`` (the oldest
        acceptance its last read saw) less the skew, and never before ``oldest_pending``. On
        PostgreSQL a read plans over the day partitions since: a day or two, not sixteen."""
        return max(self.oldest_pending(now), pending_floor - int(ENQUEUE_SKEW * 1_000_000))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from ``now``; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not str.isdigit alone: "²" is a digit to Python
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
