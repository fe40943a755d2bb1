"""Retention (FS 5.5.7, E2E 4.9): each message is kept for its channel's ``retentionDays`` (as
they were when it was accepted), then purged, and each delivery of it likewise from when it was
queued; sender references for the longest retention of any channel; the bookkeeping of calls,
requeues and replay pages after that too. The purge runs as a job (dip.jobs): on every node,
done once at a time.

On PostgreSQL the archive is partitioned by retention class and day (dip.store.partitions): the
job makes the days ahead and drops the expired ones, deleting no rows. On SQLite each step
deletes a bounded batch in one short transaction, so ingest goes on beside a purge (its one
writer takes the batches between ingest's). docs/archive.md, "Retention".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from dip.catalogue import Catalogue
from dip.egress.retry import RetryPolicy
from dip.store.archive import RetentionStore
from dip.store.partitions import AHEAD_DAYS

DAY = 86_400_000_000  # microseconds
BATCH = 5_000
REQUEUE_DAYS = 30  # how long a finished requeue's status can still be read
SWEPT_DAYS = 7  # how far behind the queue reads' floor the job looks for pending deliveries


class Lookups(Protocol):
    @property
    def catalogue(self) -> Catalogue: ...


@dataclass
class Purged:
    messages: dict[int, int] = field(default_factory=dict)  # by retention class (days)
    references: int = 0
    calls: int = 0
    deliveries: int = 0
    swept: int = 0  # pending deliveries past the dead-letter deadline no worker had dead-lettered
    partitions: int = 0  # partitions made ahead
    requeues: int = 0
    replay_pages: int = 0
    signatures: int = 0  # signed requests forgotten once their window ended
    finished: bool = True  # False: stopped at the time budget, more to do
    seconds: dict[str, float] = field(default_factory=dict)  # by step: where a run's time went

    def summary(self) -> str:
        per_class = ", ".join(f"{n} of {days} days" for days, n in sorted(self.messages.items()) if n)
        steps = ", ".join(f"{step} {s:.2f}" for step, s in self.seconds.items())
        return (f"messages {sum(self.messages.values())}{f' ({per_class})' if per_class else ''}, "
                f"deliveries {self.deliveries}, dead-lettered {self.swept}, partitions made {self.partitions}, "
                f"references {self.references}, calls {self.calls}, requeues {self.requeues}, "
                f"replay pages {self.replay_pages}, signatures {self.signatures}"
                f"{'' if self.finished else '; more to do'}"
                f"{f' [seconds: {steps}]' if steps else ''}")

    def timed(self, step: str, since: float) -> float:
        """Add the time since ``since`` (time.monotonic) to ``step``; the time now."""
        now = time.monotonic()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - since
        return now


class Retention:
    def __init__(self, store: RetentionStore, lookups: Lookups, batch: int = BATCH,
                 policy: RetryPolicy | None = None) -> None:
        self.store = store
        self.lookups = lookups
        self.batch = batch
        self.policy = policy or RetryPolicy()

    async def purge(self, now: int, budget_seconds: float = 60.0) -> Purged:
        """Purge what is older than its retention at ``now`` (microseconds; a test may move it),
        stopping after ``budget_seconds`` (the next run goes on)."""
        t = time.monotonic()
        stop_at = t + budget_seconds
        done = Purged()
        done.partitions = await self.store.prepare_archive(now - DAY, now + AHEAD_DAYS * DAY)
        t = done.timed("prepare", t)
        oldest = self.policy.oldest_pending(now / 1_000_000)
        done.swept = await self.store.sweep_stale(oldest - SWEPT_DAYS * DAY, oldest, now)
        t = done.timed("sweep", t)
        classes = set(await self.store.retention_classes())
        classes.update(c.definition.retentionDays for c in self.lookups.catalogue.channels.values())
        for days in sorted(classes):
            before = now - days * DAY
            total = 0
            while True:
                messages, deliveries = await self.store.purge_expired(days, before, self.batch)
                total += messages
                done.deliveries += deliveries
                if not messages and not deliveries:
                    break
                if time.monotonic() > stop_at:
                    done.finished = False
                    break
            done.messages[days] = total
            t = done.timed("purge", t)
            if not done.finished:
                return done
        longest = now - max(classes) * DAY
        while (n := await self.store.purge_references(longest, self.batch)) > 0:
            done.references += n
            if time.monotonic() > stop_at:
                done.finished = False
                return done
        while (n := await self.store.purge_calls(longest, self.batch)) > 0:
            done.calls += n
        done.requeues = await self.store.purge_requeues(now - REQUEUE_DAYS * DAY)
        done.replay_pages = await self.store.drop_expired_replay_pages(now)
        done.signatures = await self.store.forget_sights(now)
        done.timed("bookkeeping", t)
        return done
