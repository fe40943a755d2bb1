"""The state every node keeps in memory: participants, credentials, webhooks and channels.

Loaded from the store at start and rebuilt whenever the store's state version moves (every
change bumps it in the same transaction); each node looks at the version every
``poll_seconds``, and a node that made a change reloads at once, so all nodes agree within a
poll interval. Lookups on the request path are dictionary reads of an immutable snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from dip.catalogue import Catalogue, Channel, parse_definition
from dip.directory import Directory, Operator, OperatorRole, Participant, Webhook
from dip.exceptions import CatalogueError
from dip.store.base import DirectoryRows

log = logging.getLogger("dip")


class StateSource(Protocol):
    async def state_version(self) -> int: ...

    async def load_directory(self) -> DirectoryRows: ...

    async def load_channels(self) -> list[tuple[str, bytes]]: ...


class SharedState:
    def __init__(self, store: StateSource, poll_seconds: float = 1.0) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self.directory = Directory()
        self.catalogue = Catalogue({})
        self._version = -1
        self._channel_bytes: dict[str, bytes] = {}
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.on_change: list[Callable[[], Awaitable[None]]] = []  # called after a reload that changed something

    async def reload(self, force: bool = False) -> None:
        """Rebuild the snapshot if the store's state version moved (or ``force``); then tell those
        that follow the shared state (``on_change``)."""
        if await self._rebuild(force):
            for follower in self.on_change:
                await follower()

    async def _rebuild(self, force: bool) -> bool:
        async with self._lock:
            version = await self._store.state_version()
            if version == self._version and not force:
                return False
            rows = await self._store.load_directory()
            channel_rows = await self._store.load_channels()
            self.directory = Directory(
                participants={r.id: Participant(r.id, r.name, frozenset(r.roles), r.active) for r in rows.participants},
                api_keys=dict(rows.api_keys),
                certificates=dict(rows.certificates),
                retiring=dict(rows.retiring),
                providers={(p, d): frozenset(roles) for p, d, roles in rows.providers},
                admin_keys=frozenset(rows.admin_keys),
                operator_keys={key: Operator(oid, name, OperatorRole(role)) for key, oid, name, role in rows.operators},
                webhooks={(w.participant_id, w.kind, w.interface_id): Webhook(*w) for w in rows.webhooks},
            )
            channels: dict[str, Channel] = {}
            for interface_id, body in channel_rows:
                known = self.catalogue.get(interface_id)
                if known is not None and self._channel_bytes.get(interface_id) == body:
                    channels[interface_id] = known  # unchanged: keep the parsed, checked channel
                    continue
                try:
                    channels[interface_id] = parse_definition(interface_id, body)
                    self._channel_bytes[interface_id] = body
                except CatalogueError:
                    log.exception("stored channel %s is not valid; it is unavailable", interface_id)
            self.catalogue = Catalogue(channels)
            self._version = version
            return True

    def start_polling(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name="dip-state-poller")

    async def stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait({self._poller})
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.reload()
            except Exception:  # keep polling through a database outage
                log.exception("could not refresh the catalogue and participants")
