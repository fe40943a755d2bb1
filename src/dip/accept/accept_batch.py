"""Accepting a batch on a channel (``POST /dip-channel/{id}``), the DIP's hot path.

400 when any message fails its schema or names another interface (nothing is stored);
otherwise the Level 1 rules (dip.accept.level1) decide per message, the accepted messages are committed
with their deliveries and registry changes in one transaction, and the answer is 201 (all
accepted) or 207.

The schema stage yields its results a chunk at a time; each chunk is judged and handed to the
store's open batch at once (on PostgreSQL, COPYed inside the open transaction), so storing
overlaps checking. A schema failure anywhere discards the whole batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from dip import ids
from dip.accept.level1 import Caller, Judge, Verdict, judge
from dip.accept.registry import RegistryCache, RegistryView
from dip.accept.schema import Checked, SchemaChecker, paused_gc, spec_for
from dip.catalogue import Channel
from dip.codes import Code
from dip.config import Settings
from dip.directory import Directory
from dip.exceptions import UniqueViolation
from dip.metrics import Metrics
from dip.responses import ResponseItem, item, standard_response
from dip.store.base import MessageStore

log = logging.getLogger("dip")


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class DirectoryView(Protocol):
    @property
    def directory(self) -> Directory: ...


def needs_registry(channel: Channel) -> bool:
    """Whether a channel's messages are routed by MPAN or change the registry."""
    return bool(channel.definition.routing.secondary or channel.definition.registryUpdates)


async def registry_view(registry: RegistryCache, channel: Channel, checked: list[Checked]) -> RegistryView | None:
    """The registry as routing sees it for these messages (None when the channel needs none)."""
    if not needs_registry(channel):
        return None
    await registry.refresh()
    return await registry.view(c.header.mpan for c in checked if c.header)


class AcceptBatch:
    def __init__(self, store: MessageStore, state: DirectoryView, checker: SchemaChecker, registry: RegistryCache,
                 settings: Settings, wake: Callable[[], None], metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._store = store
        self._state = state
        self._checker = checker
        self._registry = registry
        self._settings = settings
        self._wake = wake  # deliveries were committed

    async def __call__(self, channel: Channel, caller: Caller, raws: Sequence[bytes | msgspec.Raw],
                       now: datetime, body: bytes | None = None) -> tuple[int, bytes]:
        """The HTTP status and the StandardResponse body."""
        stamp = ids.timestamp(now)
        started = time.perf_counter()
        spec = spec_for(channel, self._settings.environment)
        directory = self._state.directory
        checked: list[Checked] = []
        failed: list[Checked] = []
        verdicts: list[Verdict] = []
        judge_time = store_time = 0.0
        judging = Judge(channel, directory, caller, now, micros(now), dip_id=self._settings.dip_id)
        by_mpan = needs_registry(channel)
        if by_mpan:
            await self._registry.refresh()
        try:
            async with self._store.message_batch() as batch, \
                    contextlib.aclosing(self._checker.chunks(spec, raws, body)) as chunks:
                async for chunk in chunks:
                    checked.extend(chunk)
                    failed.extend(c for c in chunk if c.code is not None)
                    if failed:
                        continue  # keep checking, to report every failing message; store nothing
                    t = time.perf_counter()
                    if by_mpan:
                        judging.registry = await self._registry.view(c.header.mpan for c in chunk if c.header)
                    with paused_gc():
                        chunk_verdicts = judging(chunk, raws)
                    accepted = [v for v in chunk_verdicts if v.row is not None]
                    judge_time += time.perf_counter() - t
                    t = time.perf_counter()
                    skipped = await batch.add([v.row for v in accepted if v.row is not None],
                                              [v.deliveries for v in accepted],
                                              [v.appointments for v in accepted] if channel.definition.registryUpdates
                                              else ())
                    store_time += time.perf_counter() - t
                    verdicts.extend(_mark_duplicates(chunk_verdicts, [accepted[i].index for i in skipped]))
                if failed:
                    raise _BatchRejected
                t = time.perf_counter()
            store_time += time.perf_counter() - t  # the commit
        except _BatchRejected:
            if self._metrics is not None:
                self._metrics.batch(channel.interface_id, 0, [c.code or Code.SCHEMA_FAILURE.value for c in failed],
                                    time.perf_counter() - started)
            return 400, standard_response([self._schema_item(c, caller, stamp) for c in failed], stamp)
        except UniqueViolation:
            # One of these references is taken: by a message stored before (PostgreSQL writes a
            # batch without looking its references up first: MessageBatch.add) or by a concurrent
            # batch. The transaction was rolled back: judge again and store in one go (that path
            # looks the references up inside its own transaction and leaves the taken ones out).
            registry = await registry_view(self._registry, channel, checked)
            verdicts = judge(channel, directory, caller, checked, raws, now, micros(now), registry,
                             self._settings.dip_id)
            accepted = [v for v in verdicts if v.row is not None]
            skipped = await self._store.insert_messages([v.row for v in accepted if v.row is not None],
                                                        [v.deliveries for v in accepted],
                                                        [v.appointments for v in accepted])
            verdicts = _mark_duplicates(verdicts, [accepted[i].index for i in skipped])
        if any(v.deliveries for v in verdicts):
            self._wake()
        t = time.perf_counter()
        with paused_gc():
            items = [self._verdict_item(v, caller, stamp) for v in verdicts]
            response = standard_response(items, stamp)
        status = 201 if all(v.accepted for v in verdicts) else 207
        if self._metrics is not None:  # per batch: one counter for the accepted, one per refusal code
            refused = [v.code.value for v in verdicts if not v.accepted]
            self._metrics.batch(channel.interface_id, len(verdicts) - len(refused), refused,
                                time.perf_counter() - started)
        log.debug(
            "%s: %d messages, %d accepted in %.3f s; of which checks %.3f s, store %.3f s, response %.3f s",
            channel.interface_id, len(raws), sum(v.accepted for v in verdicts), time.perf_counter() - started,
            judge_time, store_time, time.perf_counter() - t,
        )
        return status, response

    def _schema_item(self, c: Checked, caller: Caller, stamp: str) -> ResponseItem:
        return item(
            code=Code(c.code or Code.SCHEMA_FAILURE.value),
            sent_timestamp=stamp,
            sender_id=self._settings.dip_id,
            recipient_id=caller.principal.id,
            sur=c.sur,
            help_text=f"message {c.index}: {c.help}",
        )

    def _verdict_item(self, v: Verdict, caller: Caller, stamp: str) -> ResponseItem:
        row = v.row
        return item(
            code=v.code,
            sent_timestamp=stamp,
            sender_id=self._settings.dip_id,
            recipient_id=v.sender_id or caller.principal.id,
            transaction_id=row.transaction_id if row else None,
            sur=v.sur,
            correlation_id=row.correlation_id if row else None,
            dcp_id=v.dcp_id,
            help_text=None if row else f"message {v.index}: {v.help}",
            service_ticket_url=self._settings.ticket_url(row.transaction_id) if row else None,
        )


class _BatchRejected(Exception):
    """A message failed its schema: the open batch is discarded."""


def _mark_duplicates(verdicts: list[Verdict], indexes: list[int]) -> list[Verdict]:
    """Turn the accepted verdicts whose reference the store already had into MSG1006."""
    if not indexes:
        return verdicts
    duplicate = set(indexes)
    return [
        Verdict(v.index, Code.SUR_DUPLICATED,
                "senderUniqueReference was already used by an earlier message from this sender",
                v.sur, v.sender_id, v.dcp_id)
        if v.index in duplicate else v
        for v in verdicts
    ]
