"""Participants' webhooks: where a recipient's publications and status messages are pushed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from dip.directory import Webhook
from dip.state import SharedState
from dip.store.base import DirectoryStore, WebhookRow


class _Store(DirectoryStore, Protocol):
    async def make_due(self, recipient_id: str, now: int) -> None: ...


def _now() -> int:
    return int(time.time() * 1_000_000)


class Webhooks:
    def __init__(self, store: _Store, state: SharedState, wake: Callable[[], None]) -> None:
        self._store = store
        self._state = state
        self._wake = wake

    async def put(self, hook: Webhook) -> bool:
        """Register (or replace) a webhook; True when created. What waits for it goes now."""
        created = await self._store.put_webhook(WebhookRow(
            hook.participant_id, hook.kind, hook.interface_id, hook.url, hook.max_message_count, hook.max_payload_kb,
            hook.registered_by), _now())
        await self._state.reload()
        # messages waiting for this webhook go now, on whichever node serves their queue
        await self._store.make_due(hook.participant_id, _now())
        self._wake()
        return created

    async def delete(self, participant_id: str, kind: str, interface_id: str = "") -> bool:
        deleted = await self._store.delete_webhook(participant_id, kind, interface_id)
        await self._state.reload()
        return deleted
