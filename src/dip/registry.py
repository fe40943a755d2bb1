"""The MPAN address registry in memory: who holds which role for an MPAN on a given day.

Appointments have effective dates, and history is kept, so a late message (consumption for an
old settlement day) is routed to the parties responsible on that day (FS 5.5.14). Dates are
ISO strings ``YYYY-MM-DD``, which compare correctly as strings; ``effective_to`` is inclusive and
None means open-ended.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Appointment:
    mpan: str
    role: str
    participant_id: str
    effective_from: str
    effective_to: str | None = None

    def covers(self, day: str) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


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

    def knows(self, mpan: str) -> bool:
        return any(key[0] == mpan for key in self._by_key)
