"""Redrive (the operator's): undelivered deliveries back on their queues, as they were.

A dead-lettered, failed or refused delivery goes back to the end of its queue with the same
transaction ID and wrapper (``replayIndicator`` false: the recipient never had it) and a fresh
dead-letter clock; the old row keeps its history and is marked ``redriven``. Done in chunks, each
in one transaction, so a large redrive never holds a queue for long.
"""

from __future__ import annotations

from collections.abc import Callable

from dip.queue import UNDELIVERED
from dip.store.archive import ArchiveStore, Redrive

__all__ = ["Redrive", "Redriving"]

CHUNK = 5_000


class Redriving:
    def __init__(self, store: ArchiveStore, wake_delivery: Callable[[], None]) -> None:
        self.store = store
        self.wake_delivery = wake_delivery

    async def __call__(self, redrive: Redrive, now: int) -> int:
        """How many deliveries went back on their queues."""
        if not redrive.states or not set(redrive.states) <= set(UNDELIVERED):
            raise ValueError(f"states must be some of {', '.join(UNDELIVERED)}")
        total = 0
        while count := await self.store.redrive(redrive, CHUNK, now):
            total += count
            self.wake_delivery()
        return total
