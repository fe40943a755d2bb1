"""The operator's read-side views: what became of a message, the queues, the dead letters, an MPAN.

Queries only: each returns what the store holds, and the routes (dip.ingress.views,
dip.ingress.registry) present it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dip.accept.registry import Appointment, Registry
from dip.queue import UNDELIVERED, DeliveryState
from dip.store.archive import JobState
from dip.store.base import AppointmentRow, MessageRow
from dip.store.reports import DeliveryHistory, QueueState, Undelivered


class _Store(Protocol):
    async def get_message(self, transaction_id: str) -> MessageRow | None: ...

    async def delivery_history(self, transaction_id: str) -> list[DeliveryHistory]: ...

    async def queue_overview(self, recipient_id: str | None = None) -> list[QueueState]: ...

    async def undelivered(self, state: str, after: int = 0, limit: int = 100, recipient_id: str | None = None,
                          interface_id: str | None = None) -> list[Undelivered]: ...

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]: ...

    async def job_states(self) -> list[JobState]: ...

    async def make_job_due(self, name: str, now: int) -> bool: ...


@dataclass(frozen=True)
class MpanView:
    appointments: list[AppointmentRow]  # by role, then effective-from date
    holders: dict[str, list[str]] | None  # role -> who held it on the day asked for (roles held by someone)


class OperatorViews:
    def __init__(self, store: _Store) -> None:
        self._store = store

    async def transaction(self, transaction_id: str) -> tuple[MessageRow, list[DeliveryHistory]] | None:
        """The message as archived and, per recipient, what became of it (None: no such message)."""
        row = await self._store.get_message(transaction_id)
        if row is None:
            return None
        return row, await self._store.delivery_history(transaction_id)

    async def queues(self, recipient_id: str | None = None) -> list[QueueState]:
        return await self._store.queue_overview(recipient_id)

    async def undelivered(self, state: DeliveryState, after: int, limit: int, recipient_id: str | None,
                          interface_id: str | None) -> list[Undelivered]:
        if state not in UNDELIVERED:
            raise ValueError(f"not an undelivered state: {state!r}")
        return await self._store.undelivered(state, after, limit, recipient_id, interface_id)

    async def mpan(self, mpan: str, day: str | None = None) -> MpanView:
        """One MPAN's appointments; with ``day``, who held each role then, by routing's own rule."""
        rows = sorted(await self._store.appointments([mpan]), key=lambda r: (r.role, r.effective_from))
        if day is None:
            return MpanView(rows, None)
        registry = Registry(Appointment(r.mpan, r.role, r.participant_id, r.effective_from, r.effective_to)
                            for r in rows)
        holders = {role: registry.lookup(mpan, role, day) for role in sorted({r.role for r in rows})}
        return MpanView(rows, {role: found for role, found in holders.items() if found})

    async def jobs(self) -> list[JobState]:
        """The scheduled jobs (the purge, ...): when each ran, what it did, when it runs next."""
        return await self._store.job_states()

    async def run_job(self, name: str, now: int) -> bool:
        """Run a scheduled job now (at the next poll of whichever node takes it); False: no such job."""
        return await self._store.make_job_due(name, now)
