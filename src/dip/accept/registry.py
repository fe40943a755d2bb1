"""The MPAN address registry in memory: who holds which role for an MPAN on a given day.

Appointments have effective dates, and history is kept, so a late message (consumption for an
old settlement day) is routed to the parties responsible on that day (FS 5.5.14). Dates are
ISO strings ``YYYY-MM-DD``, which compare correctly as strings; ``effective_to`` is inclusive and
None means open-ended.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from dip.store.base import AppointmentRow


class Appointment(NamedTuple):
    """A tuple: millions are built while routing (a frozen dataclass costs several times more)."""

    mpan: str
    role: str
    participant_id: str
    effective_from: str
    effective_to: str | None = None

    def covers(self, day: str) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


_Plain = tuple[str, str, str, str, str | None]  # an Appointment's fields, as a plain tuple


class RegistrySource(Protocol):
    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]: ...

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]: ...


class RegistryView(Protocol):
    """What routing and registry maintenance read: a Registry, or a RegistryCache after prefetch."""

    def lookup(self, mpan: str, role: str, day: str) -> list[str]: ...

    def appointments(self, mpan: str) -> tuple[Appointment, ...]: ...


class Registry:
    """Appointments indexed by (MPAN, role), each list sorted by effective-from date."""

    def __init__(self, appointments: Iterable[Appointment] = ()) -> None:
        self._by_key: dict[tuple[str, str], list[Appointment]] = {}
        for appointment in appointments:
            self.add(appointment)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_key.values())

    def add(self, appointment: Appointment) -> None:
        entries = self._by_key.setdefault((appointment.mpan, appointment.role), [])
        keys = [a.effective_from for a in entries]
        entries.insert(bisect.bisect_right(keys, appointment.effective_from), appointment)

    def lookup(self, mpan: str, role: str, day: str) -> list[str]:
        """Participants holding ``role`` for ``mpan`` on ``day`` (usually one)."""
        entries = self._by_key.get((mpan, role))
        if not entries:
            return []
        # only appointments starting on or before the day can cover it
        end = bisect.bisect_right([a.effective_from for a in entries], day)
        return sorted({a.participant_id for a in entries[:end] if a.covers(day)})

    def appointments(self, mpan: str) -> tuple[Appointment, ...]:
        return tuple(a for (m, _), entries in self._by_key.items() if m == mpan for a in entries)

    def knows(self, mpan: str) -> bool:
        return any(key[0] == mpan for key in self._by_key)


class RegistryCache:
    """The registry as the hot path sees it: the appointments of recently used MPANs, in memory.

    Filled on demand (``view`` before a chunk of messages is judged, one query for the MPANs it
    does not hold), bounded (the oldest entries go first), and kept coherent across nodes by the
    store's registry version: ``refresh`` asks which MPANs changed since the version it holds and
    forgets them (everything, when too many changed, e.g. after a bulk load).
    """

    def __init__(self, store: RegistrySource, capacity: int = 2_000_000, max_changes: int = 10_000) -> None:
        self.store = store
        self.capacity = capacity
        self.max_changes = max_changes
        self.version = -1
        # plain tuples, not Appointments: the cyclic GC stops tracking a tuple of strings (it
        # never untracks a named tuple), so a full collection need not walk every cached entry
        self._by_mpan: dict[str, tuple[_Plain, ...]] = {}
        self._refreshing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._by_mpan)

    async def refresh(self) -> None:
        async with self._refreshing:  # concurrent batches share one look at the store
            await self._refresh()

    async def _refresh(self) -> None:
        version, changed = await self.store.registry_changes(self.version, self.max_changes)
        if version == self.version:
            return
        if changed is None or self.version < 0:
            self._by_mpan.clear()
        else:
            for mpan in changed:
                self._by_mpan.pop(mpan, None)
        self.version = version

    async def view(self, mpans: Iterable[str | None]) -> RegistrySnapshot:
        """The appointments of these MPANs, from memory, fetching the ones not held in one query.

        The snapshot stays valid whatever other requests do to the cache meanwhile.
        """
        wanted = {m for m in mpans if m}
        by_mpan = self._by_mpan
        make = Appointment._make
        held = {m: tuple(map(make, by_mpan[m])) for m in wanted if m in by_mpan}
        missing = wanted - held.keys()
        if missing:
            found: dict[str, list[Appointment]] = {m: [] for m in missing}
            for row in await self.store.appointments(sorted(missing)):
                found[row.mpan].append(Appointment(row.mpan, row.role, row.participant_id, row.effective_from,
                                                   row.effective_to))
            fetched = {mpan: tuple(appointments) for mpan, appointments in found.items()}
            held.update(fetched)
            # the snapshot has them all; memory keeps the newest
            kept = [(m, tuple((a[0], a[1], a[2], a[3], a[4]) for a in entries))
                    for m, entries in list(fetched.items())[-self.capacity:]]
            overflow = len(self._by_mpan) + len(kept) - self.capacity
            if overflow > 0:
                for mpan in list(itertools.islice(self._by_mpan, overflow)):
                    del self._by_mpan[mpan]
            self._by_mpan.update(kept)
        return RegistrySnapshot(held)


class RegistrySnapshot:
    """Appointments of a known set of MPANs (a RegistryView)."""

    def __init__(self, by_mpan: dict[str, tuple[Appointment, ...]]) -> None:
        self._by_mpan = by_mpan

    def appointments(self, mpan: str) -> tuple[Appointment, ...]:
        return self._by_mpan.get(mpan, ())

    def lookup(self, mpan: str, role: str, day: str) -> list[str]:
        """Participants holding ``role`` for ``mpan`` on ``day``."""
        found = [a.participant_id for a in self._by_mpan.get(mpan, ()) if a.role == role and a.covers(day)]
        return found if len(found) < 2 else sorted(set(found))
