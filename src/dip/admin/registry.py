"""Loading MPAN appointments into the registry (the operator's bulk loads)."""

from __future__ import annotations

from dip.store.base import AppointmentRow, RegistryStore


class RegistryLoads:
    def __init__(self, store: RegistryStore) -> None:
        self._store = store

    async def load(self, rows: list[AppointmentRow]) -> int:
        """Store appointments in one transaction (the last of several with one key wins); the
        registry version they were written under (the current one when there are none)."""
        if not rows:
            return await self._store.registry_version()
        unique = {(r.mpan, r.role, r.effective_from): r for r in rows}
        return await self._store.put_appointments(list(unique.values()))
