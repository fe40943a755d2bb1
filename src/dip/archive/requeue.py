"""Requeue (E2E 4.9): a replay selection put at the end of the recipient's webhook queue, marked
as replays, and its progress (the official ``RequeueStatus``).

The request only counts the selection and records it; ``RequeueAppender`` (on every node, one
at a time per requeue by lease) appends it a chunk at a time, each chunk in one transaction with
the requeue's cursor, so a node that stops mid-way leaves the rest to another. Each element's
new transaction ID is fixed when it is queued: a retried call sends the same body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dip import ids
from dip.archive.selection import MessageRequest
from dip.catalogue import Channel
from dip.directory import Directory, WebhookKind
from dip.queue import publication_queue
from dip.store.archive import ArchiveStore, QueuedCopy, RequeueClaim

log = logging.getLogger("dip.requeue")

CHUNK = 5_000  # deliveries appended per transaction


def _now() -> int:
    return int(time.time() * 1_000_000)


class Lookups(Protocol):
    @property
    def directory(self) -> Directory: ...


class NoWebhook(Exception):
    """The recipient has no webhook for the channel: nothing to requeue to (409)."""


@dataclass(frozen=True, slots=True)
class Started:
    requeue_id: str
    total: int


class Requeue:
    def __init__(self, store: ArchiveStore, lookups: Lookups, wake: Callable[[], None]) -> None:
        self.store = store
        self.lookups = lookups
        self.wake = wake  # the appender looks at once

    async def start(self, caller_id: str, recipient_id: str, channel: Channel, request: MessageRequest,
                    now: int) -> Started:
        if self.lookups.directory.webhook(recipient_id, WebhookKind.PUBLICATION, channel.interface_id) is None:
            raise NoWebhook(f"{recipient_id} has no webhook for {channel.publication_id}: register one with "
                            f"POST /dip-channel/{channel.interface_id}/pubconfig/{recipient_id}, or use replay")
        # the selection is fixed now: what is accepted later is not part of it
        fixed = MessageRequest(request.transaction_ids, request.start, request.end if request.end is not None else now,
                               request.event_code, request.mpan, request.version)
        selection = fixed.selection(publication_queue(recipient_id, channel.interface_id), now)
        total = await self.store.count_selected(selection)
        moment = datetime.fromtimestamp(now / 1_000_000, UTC)
        requeue_id = f"{recipient_id}-{moment:%Y%m%d}-{ids.sequences(moment, 1)[0]}"
        await self.store.create_requeue(requeue_id, selection, recipient_id, channel.interface_id, caller_id,
                                        fixed.canonical(), total, now)
        self.wake()
        return Started(requeue_id, total)

    async def status(self, recipient_id: str, channel: Channel, requeue_id: str) -> dict[str, Any] | None:
        """The official RequeueStatus, or None when there is no such requeue of this recipient's channel."""
        state = await self.store.requeue_state(requeue_id)
        if state is None or state.queue != publication_queue(recipient_id, channel.interface_id):
            return None
        processed = state.settled if state.done else min(state.settled, state.appended)
        finished = state.done and state.settled >= state.queued
        percent = 100.0 if state.total == 0 else round(100.0 * processed / state.total, 1)
        return {
            "percentComplete": percent if not finished else 100.0,
            "totalTransactions": state.total,
            "processedTransactions": processed,
            "status": "Processing" if not finished else "Failed" if state.given_up else "Completed",
        }


class RequeueAppender:
    """Appends requeued selections to their queues, a chunk at a time (runs on every node)."""

    def __init__(self, store: ArchiveStore, owner: str, wake_delivery: Callable[[], None],
                 lease_seconds: float = 60.0, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.owner = owner
        self.wake_delivery = wake_delivery
        self.lease = int(lease_seconds * 1_000_000)
        self.poll_seconds = poll_seconds
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._event.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="requeue-appender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the store was unreachable: the lease lapses, this or another node goes on
                log.exception("appending a requeue failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), self.poll_seconds)
            self._event.clear()

    async def run_once(self) -> bool:
        """Append the oldest open requeue that no live node holds; False when there was none."""
        claim: RequeueClaim | None = await self.store.claim_requeue(self.owner, _now(), self.lease)
        if claim is None:
            return False
        while claim is not None:
            claim = await self._append_chunk(claim)
        return True

    async def _append_chunk(self, claim: RequeueClaim) -> RequeueClaim | None:
        """Append the next chunk; the claim moved past it, or None when done or the lease was lost."""
        request = MessageRequest.from_canonical(claim.selection)
        now = _now()
        found = await self.store.select(request.selection(claim.queue, now), (claim.after_at, claim.after_id), CHUNK)
        moment = datetime.fromtimestamp(now / 1_000_000, UTC)
        new_ids = ids.replay_transaction_ids([f.transaction_id for f in found], moment)
        copies = [QueuedCopy(claim.queue, f.transaction_id, claim.recipient_id, f.role, f.kind, now, None, new_id,
                             claim.id, None, f.retention_days) for f, new_id in zip(found, new_ids, strict=True)]
        done = len(found) < CHUNK
        after = (found[-1].accepted_at, found[-1].id) if found else (claim.after_at, claim.after_id)
        if not await self.store.append_requeue(claim, self.owner, copies, after, done, now + self.lease, now):
            log.warning("lost the lease on requeue %s; another node goes on", claim.id)
            return None
        if copies:
            self.wake_delivery()
        return None if done else claim._replace(after_at=after[0], after_id=after[1])
