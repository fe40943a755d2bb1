"""Search the archive (API contract section 4): participants their own messages, the operator all.

A search names at least one of transaction ID, sender unique reference, correlation ID (the whole
workflow: the request and the replies that copy its ID), MPAN or channel; the most selective of
those drives it (an index), the rest and a time range narrow it. A participant sees what it sent
(or sent for another as a connection provider) and what it received, and what it received it
sees as it received it: a field its role is not shown on that channel (obfuscation) is masked in
the hit, and a filter on such a field does not find the message. Pages of at most 1,000, with an
opaque cursor. docs/archive.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from dip import ids
from dip.catalogue import Catalogue
from dip.egress.obfuscation import masked_value
from dip.queue import DeliveryKind
from dip.store.archive import Found, Narrowing

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
_START = (-1, "")
# the hit's fields a channel's obfuscation can hide, by where they lie in the message
_MASKABLE = {
    "senderID": "/CommonBlock/S1/senderDIPID",
    "senderUniqueReference": "/CommonBlock/S1/senderUniqueReference",
    "correlationID": "/CommonBlock/S1/senderCorrelationID",
    "MPAN": "/CommonBlock/M0/MPANCore",
}


class SearchProblem(ValueError):
    """A search that cannot be run, and why (400)."""


class Store(Protocol):
    async def search(self, driver: str, value: str, narrowing: Narrowing, after: tuple[int, str],
                     limit: int) -> list[Found]: ...

    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]: ...


class Lookups(Protocol):
    @property
    def catalogue(self) -> Catalogue: ...


@dataclass(frozen=True, slots=True)
class SearchRequest:
    transaction_id: str | None = None
    sur: str | None = None
    correlation_id: str | None = None
    mpan: str | None = None
    channel: str | None = None
    event_code: str | None = None
    start: int | None = None
    end: int | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[int, str] = _START
    participant: str | None = None  # the operator's filter: what this participant sent or received


_PARAMETERS = ("transactionID", "senderUniqueReference", "correlationID", "MPAN", "channel", "eventCode", "from",
               "to", "limit", "cursor")


def _moment(value: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SearchProblem(f"{name} must be an ISO 8601 date-time, e.g. 2026-11-23T10:15:00+00:00") from exc
    if moment.tzinfo is None:
        raise SearchProblem(f"{name} needs its UTC offset, e.g. 2026-11-23T10:15:00+00:00")
    return int(moment.timestamp() * 1_000_000)


def cursor_of(found: Found) -> str:
    raw = f"{found.received_at}:{found.transaction_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[int, str]:
    try:
        at, _, tid = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        return int(at), tid
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SearchProblem("cursor is not one this search gave (use nextCursor as it came)") from exc


def parse_search(params: Mapping[str, str], operator: bool) -> SearchRequest:
    """The search the query parameters ask for (names case-insensitive), or SearchProblem."""
    names = {p.lower(): p for p in (*_PARAMETERS, *(("participant",) if operator else ()))}
    given: dict[str, str] = {}
    for key, value in params.items():
        name = names.get(key.lower())
        if name is None:
            raise SearchProblem(f"unknown parameter '{key}': a search takes {', '.join(names.values())}")
        if not value or len(value) > 200:
            raise SearchProblem(f"{name} must be 1 to 200 characters")
        given[name] = value
    if not given.keys() & {"transactionID", "senderUniqueReference", "correlationID", "MPAN", "channel"}:
        raise SearchProblem("give at least one of transactionID, senderUniqueReference, correlationID, MPAN or "
                            "channel (with from and to to narrow it)")
    limit = DEFAULT_LIMIT
    if "limit" in given:
        if not given["limit"].isdigit() or not 1 <= int(given["limit"]) <= MAX_LIMIT:
            raise SearchProblem(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(given["limit"])
    mpan = given.get("MPAN")
    if mpan is not None and not (len(mpan) == 13 and mpan.isdigit()):
        raise SearchProblem("MPAN must be an MPAN core: 13 digits")
    channel = given.get("channel")
    if channel is not None and not ids.is_interface_id(channel):
        raise SearchProblem("channel must be an interface ID, e.g. IF-021")
    participant = given.get("participant")
    if participant is not None and not ids.is_participant_id(participant):
        raise SearchProblem("participant must be a DIP participant ID (10 characters)")
    start = _moment(given["from"], "from") if "from" in given else None
    end = _moment(given["to"], "to") if "to" in given else None
    if start is not None and end is not None and end < start:
        raise SearchProblem("to is before from")
    return SearchRequest(given.get("transactionID"), given.get("senderUniqueReference"), given.get("correlationID"),
                         mpan, channel, given.get("eventCode"), start, end, limit,
                         _after(given["cursor"]) if "cursor" in given else _START, participant)


class Search:
    def __init__(self, store: Store, lookups: Lookups) -> None:
        self.store = store
        self.lookups = lookups

    async def __call__(self, request: SearchRequest, viewer: str | None, now: int) -> dict[str, Any]:
        """One page of hits: ``{"items": [...], "nextCursor"}``. ``viewer``: the participant asking
        (None: the operator, who sees everything, or ``request.participant``'s)."""
        r = request
        sur_sender = None
        if r.sur is not None:
            reference = ids.parse_sender_reference(r.sur)
            if reference is None:
                raise SearchProblem("senderUniqueReference is not a sender unique reference")
            sur_sender = reference.participant_id
        driver, value = next((d, v) for d, v in (("transaction", r.transaction_id), ("reference", sur_sender),
                                                  ("correlation", r.correlation_id), ("mpan", r.mpan),
                                                  ("channel", r.channel)) if v is not None)
        scope = viewer or r.participant
        narrowing = Narrowing(r.start if r.start is not None else 0, r.end if r.end is not None else now, r.channel,
                              r.event_code, r.mpan, r.correlation_id, r.sur, sur_sender, scope)
        found = await self.store.search(driver, value, narrowing, r.after, r.limit)
        states = await self.store.delivery_states([f.transaction_id for f in found]) if found else []
        recipients: dict[str, dict[tuple[str, str], str]] = {}
        for tid, recipient, role, kind, state in states:  # in id order: a redriven delivery's copy wins
            if kind != DeliveryKind.STATUS:
                recipients.setdefault(tid, {})[(recipient, role)] = state
        items = []
        for f in found:
            item = self._item(f, recipients.get(f.transaction_id, {}), viewer, r)
            if item is not None:
                items.append(item)
        more = len(found) == r.limit
        return {"items": items, "nextCursor": cursor_of(found[-1]) if more else None}

    def _item(self, f: Found, recipients: Mapping[tuple[str, str], str], viewer: str | None,
              r: SearchRequest) -> dict[str, Any] | None:
        item: dict[str, Any] = {
            "transactionID": f.transaction_id,
            "channel": f.interface_id,
            "eventCode": f.event_code,
            "senderID": f.sender_id,
            "senderUniqueReference": f.sur,
            "correlationID": f.correlation_id,
            "MPAN": f.mpan,
            "acceptedAt": ids.precise_timestamp(f.received_at),
            "recipients": [{"participantId": p, "role": role, "state": state}
                           for (p, role), state in recipients.items()],
        }
        if viewer is None or viewer in (f.sender_id, f.dcp_id):
            return item
        hidden = self._hidden(f.interface_id, [role for (p, role) in recipients if p == viewer])
        asked = {"senderUniqueReference": r.sur, "correlationID": r.correlation_id, "MPAN": r.mpan}
        if any(asked[field] is not None for field in hidden if field in asked):
            return None  # found by a field the viewer is not shown: it does not find it
        for field in hidden:
            item[field] = masked_value(item[field])
        return item

    def _hidden(self, interface_id: str, roles: Sequence[str]) -> list[str]:
        """The hit's fields hidden from every role the viewer received the message in."""
        channel = self.lookups.catalogue.get(interface_id)
        if channel is None or not roles:
            return []
        masks = channel.definition.obfuscation
        return [field for field, pointer in _MASKABLE.items()
                if all(pointer in masks.get(role, ()) for role in roles)]
