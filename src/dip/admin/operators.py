"""Operators: people with a key of their own and a role (docs/security.md, "Operators")."""

from __future__ import annotations

import secrets
import time

from dip.directory import OperatorRole, hash_api_key, new_api_key
from dip.state import SharedState
from dip.store.base import DirectoryStore


class Operators:
    def __init__(self, store: DirectoryStore, state: SharedState) -> None:
        self._store = store
        self._state = state

    async def add(self, name: str, role: OperatorRole) -> tuple[str, str]:
        """A new operator; (its ID, its API key: shown once, kept as SHA-256)."""
        operator_id = f"op-{secrets.token_hex(6)}"
        key = new_api_key()
        await self._store.add_operator(operator_id, name, role.value, hash_api_key(key), int(time.time() * 1e6))
        await self._state.reload()
        return operator_id, key

    async def revoke(self, operator_id: str) -> bool:
        """The operator's key stops working on every node within a second; False if none in force."""
        done = await self._store.revoke_operator(operator_id, int(time.time() * 1e6))
        await self._state.reload()
        return done

    async def listed(self) -> list[tuple[str, str, str, int, int | None]]:
        return await self._store.operators()
