"""Registration flows keep the MPAN address registry current (FS 5.5.14), as the catalogue says.

A channel's ``registryUpdates`` (dip.catalogue.RegistryUpdate) name the fields of a message that
appoint a participant to a role for the message's MPAN from a date, or end its appointment on a
date. Pure: ``extract`` reads the changes a payload carries; ``apply`` turns them, against the
MPAN's appointments so far, into the rows to write. History is kept: nothing is deleted, an
appointment is closed by setting its inclusive ``effective_to``.

Rules, by day (the registry's granularity):
- appoint P to R from D: an appointment of R that covers D and started before D ends on D-1;
  one starting on D is replaced; the new one runs until the day before the next later
  appointment of R, else open-ended;
- de-appoint P from R on D: P's appointments of R covering D end on D (inclusive: data for the
  day of the change still reaches the outgoing party).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import msgspec

from dip import ids
from dip.accept.registry import Appointment
from dip.catalogue import RegistryUpdate
from dip.pointers import parse_pointer
from dip.store.base import AppointmentRow


class Change(msgspec.Struct, frozen=True, array_like=True, gc=False):
    role: str
    participant_id: str
    day: str  # YYYY-MM-DD
    appoint: bool  # False: de-appoint


def field_at(payload: Any, pointer: str) -> Any:
    """The value at a JSON pointer (array elements by index), or None where it does not resolve."""
    node = payload
    for token in parse_pointer(pointer):
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isascii() and token.isdigit() and len(token) <= 18 \
                and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def day_of(value: object) -> str | None:
    """The date part of an ISO date or date-time string, else None."""
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return None
    return None


def extract(rules: Sequence[RegistryUpdate], event_code: str, payload: Any) -> tuple[Change, ...]:
    """The changes a message carries. A rule whose fields are absent (an optional block) or not a
    DIP ID and a date gives nothing: a message only changes what it clearly states."""
    changes: list[Change] = []
    for rule in rules:
        if rule.eventCodes and event_code not in rule.eventCodes:
            continue
        participant = field_at(payload, rule.participant)
        day = day_of(field_at(payload, rule.effectiveFrom or rule.effectiveTo or ""))
        if isinstance(participant, str) and ids.is_participant_id(participant) and day is not None:
            changes.append(Change(rule.role, participant, day, rule.effectiveFrom is not None))
    return tuple(changes)


def _previous_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def apply(mpan: str, existing: Iterable[Appointment], changes: Iterable[Change]) -> list[AppointmentRow]:
    """The appointment rows to upsert (key: MPAN, role, effective-from) for these changes, in order."""
    current = {(a.role, a.effective_from): a for a in existing if a.mpan == mpan}
    written: dict[tuple[str, str], Appointment] = {}

    def put(a: Appointment) -> None:
        current[(a.role, a.effective_from)] = written[(a.role, a.effective_from)] = a

    for change in changes:
        role, day = change.role, change.day
        same_role = sorted((a for a in current.values() if a.role == role), key=lambda a: a.effective_from)
        if change.appoint:
            for a in same_role:
                if a.effective_from < day and (a.effective_to is None or a.effective_to >= day):
                    put(Appointment(mpan, role, a.participant_id, a.effective_from, _previous_day(day)))
            later = [a.effective_from for a in same_role if a.effective_from > day]
            until = _previous_day(later[0]) if later else None
            at_day = current.get((role, day))
            put(Appointment(mpan, role, change.participant_id, day,
                            at_day.effective_to if at_day is not None and at_day.effective_to else until))
        else:
            for a in same_role:
                if a.participant_id == change.participant_id and a.covers(day) and a.effective_to != day:
                    put(Appointment(mpan, role, a.participant_id, a.effective_from, day))
    return [AppointmentRow(a.mpan, a.role, a.effective_from, a.participant_id, a.effective_to)
            for a in written.values()]
