"""Channel definitions, changed live: every node picks a change up within a poll interval."""

from __future__ import annotations

import time
from typing import Protocol

from dip.catalogue import Channel, parse_definition
from dip.state import SharedState
from dip.store.archive import RetentionStore
from dip.store.base import DirectoryStore


class ChannelStore(DirectoryStore, RetentionStore, Protocol):
    pass


class Channels:
    def __init__(self, store: ChannelStore, state: SharedState) -> None:
        self._store = store
        self._state = state

    async def put(self, interface_id: str, body: bytes) -> tuple[bool, Channel]:
        """Create or replace a channel (CatalogueError when the definition is not acceptable)."""
        channel = parse_definition(interface_id, body)
        # first: the purge looks at every retention a message may have been accepted with
        await self._store.add_retention_class(channel.definition.retentionDays)
        created = await self._store.put_channel(interface_id, channel.to_json(), int(time.time() * 1_000_000))
        await self._state.reload()
        return created, channel

    async def delete(self, interface_id: str) -> bool:
        deleted = await self._store.delete_channel(interface_id)
        await self._state.reload()
        return deleted
