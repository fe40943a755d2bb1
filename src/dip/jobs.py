"""Jobs on a schedule: every node runs the scheduler, one node at a time does each job.

A job is a row in the store with the time it is next due and a lease. Every ``poll_seconds``
each node tries to take each due job (one UPDATE: due, and no live lease); the one that gets it
runs it and sets when it is next due. A node that dies mid-job leaves a lease that lapses, and
another node runs the job again: a job must be safe to run twice (the purge is). The time is
the scheduler's clock (``clock``), which a test may move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dip.store.archive import JobStore

log = logging.getLogger("dip.jobs")


def wall_clock() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[int], Awaitable[tuple[str, bool]]]  # (now) -> (what it did, finished)
    lease_seconds: float = 300.0


class Scheduler:
    def __init__(self, store: JobStore, owner: str, jobs: list[Job], poll_seconds: float = 5.0,
                 clock: Callable[[], int] = wall_clock) -> None:
        self.store = store
        self.owner = owner
        self.jobs = jobs
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = self.clock()
        for job in self.jobs:
            # a new job first runs one interval after the first node starts (POST
            # /admin/jobs/{name}/run runs it at once); a restart keeps the schedule it has
            await self.store.add_job(job.name, now + int(job.every_seconds * 1_000_000))
        self._task = asyncio.create_task(self._loop(), name="jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:  # a job cut short is handed back, not left leased until its lease lapses
            await self.store.release_jobs(self.owner)
        except Exception:  # stopping goes on: the lease lapses instead
            log.exception("could not hand back this node's jobs")

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is unreachable: try again at the next poll
                log.exception("running the scheduled jobs failed")
            await asyncio.sleep(self.poll_seconds)

    async def run_due(self) -> list[str]:
        """Run each due job this node can take; the names of those it ran."""
        ran = []
        for job in self.jobs:
            now = self.clock()
            if not await self.store.claim_job(job.name, self.owner, now, int(job.lease_seconds * 1_000_000)):
                continue
            started = time.monotonic()
            try:
                result, finished = await job.run(now)
            except Exception as exc:
                log.exception("job %s failed", job.name)
                result, finished = f"failed: {exc!r}"[:500], True
            # unfinished (a time budget ran out): again soon; else at its interval
            delay = self.poll_seconds if not finished else job.every_seconds
            result = f"{result} ({time.monotonic() - started:.1f} s)"
            await self.store.finish_job(job.name, self.owner, self.clock() + int(delay * 1_000_000), self.clock(),
                                        result)
            log.info("job %s: %s", job.name, result)
            ran.append(job.name)
        return ran
