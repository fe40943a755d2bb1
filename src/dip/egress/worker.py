"""The delivery worker: claims due recipient queues and has their head batches delivered.

One worker runs in every ``dip serve`` that delivers; several nodes share the queues through
leases (the store's ``claim``), so a queue is served by one node at a time and a dead node's
queues are taken over when its lease runs out. Per queue, messages go in acceptance order; a
retryable failure holds the queue's head (and only that queue) until ``next_attempt_at``;
anything else is settled and the queue moves on (dip.egress.dispatch, one call). Workers never
sleep through a backoff: the store keeps the time.

A slow recipient never holds up another (docs/reliability.md, "Isolation"). The worker serves
``concurrency`` queues at once in its fast lane; a call still running after ``slow_after``
seconds leaves the fast lane for the slow lane, freeing its slot, and its recipient is counted
slow until one of its calls ends in time again: its queues start in the slow lane. The slow lane
holds up to ``slow_capacity`` queues (a bound on memory, not on fairness), and each recipient's
calls share at most ``per_recipient`` connections (WebhookSender). A healthy recipient's message
thus waits at most ``slow_after`` for a fast slot however many recipients hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

from dip.egress.dispatch import Dispatcher, WorkerContext
from dip.exceptions import StoreError
from dip.store.base import Claim

log = logging.getLogger("dip.delivery")


def new_owner() -> str:
    """A name for this worker's leases, unique across nodes and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class DeliveryWorker:
    def __init__(self, ctx: WorkerContext, lease_seconds: float, concurrency: int = 64,
                 poll_seconds: float = 0.2, owner: str | None = None, slow_after: float = 2.0,
                 slow_capacity: int = 2048) -> None:
        self.ctx = ctx
        self.owner = owner or new_owner()
        self.lease_seconds = lease_seconds
        self.dispatcher = Dispatcher(ctx, self.owner, self.wake)
        self._concurrency = concurrency
        self._slow_after = slow_after
        self._slow_capacity = slow_capacity
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._fast = 0  # queues in the fast lane
        self._slow_recipients: set[str] = set()

    # -- life cycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the claim loop is alive (readiness)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dip-delivery")

    async def listen(self) -> None:
        """Wake on other nodes' commits too; polling covers a lost listener."""
        if await self.ctx.queues.listen_deliveries(self.wake):
            log.info("delivery worker %s listens for new deliveries", self.owner)

    async def stop(self, grace: float = 0.0) -> None:
        """Take no more work; let the calls in flight finish for ``grace`` seconds, cut the rest
        short; then hand back every queue this node holds, so another node takes them at once
        instead of when the leases lapse (a call cut short is made again there: at least once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # (a cancellation of the caller itself still propagates)
        if self._running and grace > 0:
            await asyncio.wait(set(self._running), timeout=grace)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        try:
            released = await self.ctx.queues.release_leases(self.owner)
            if released:
                log.info("handed back %d queue(s) on stopping", released)
        except Exception:  # stopping goes on: the leases lapse instead
            log.exception("could not hand back this node's queues")
        await self.ctx.sender.close()

    def wake(self) -> None:
        """New deliveries were committed: look for due queues now rather than at the next poll."""
        self._wake.set()

    # -- the claim loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            # cleared before the claim: a wake-up during the claim query (a commit it may not have
            # seen) makes the next wait return at once instead of after a poll interval
            self._wake.clear()
            free = min(self._concurrency - self._fast,
                       self._concurrency + self._slow_capacity - len(self._running))
            claims: list[Claim] = []
            if free > 0:
                try:
                    now = time.time()
                    claims = await self.ctx.queues.claim(self.owner, int(now * 1e6), int(self.lease_seconds * 1e6),
                                                         free)
                except StoreError as exc:  # the database is away (restart, failover): keep polling
                    log.warning("could not claim delivery queues: %s", exc)
                except Exception:
                    log.exception("could not claim delivery queues")
            for claim in claims:
                task = asyncio.create_task(self._serve(claim), name=f"deliver {claim.queue}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if not claims:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                # that comes as the wake-up does, and the node would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()

    def _leave_fast_lane(self, recipient_id: str, lane: list[bool]) -> None:
        if lane[0]:
            lane[0] = False
            self._fast -= 1
            self._slow_recipients.add(recipient_id)
            self._wake.set()  # a fast slot is free again

    async def _serve(self, claim: Claim) -> None:
        recipient = claim.recipient_id
        lane = [recipient not in self._slow_recipients]  # [in the fast lane]
        timer = None
        if lane[0]:
            self._fast += 1
            timer = asyncio.get_running_loop().call_later(self._slow_after, self._leave_fast_lane, recipient, lane)
        started = time.monotonic()
        try:
            await self.dispatcher.deliver(claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery to %s failed; the queue is retried after its lease", claim.queue)
        finally:
            if timer is not None:
                timer.cancel()
            if lane[0]:
                self._fast -= 1
            if time.monotonic() - started < self._slow_after:
                self._slow_recipients.discard(recipient)  # in time again: back to the fast lane
            self._wake.set()  # a slot is free again
