"""The official ``MessageRequest`` (replay and requeue): its rules, and the selection it makes (pure).

A missing key counts as null (no filter). ``transactionIDs`` (1 to 100) or ``datetimeFrom`` (with
an optional ``datetimeTo``; no end: up to now) choose; ``eventCode``, ``MPAN`` and ``version``
narrow. Field names are accepted case-insensitively, as on every ingress path. docs/archive.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from dip.store.archive import Selection

MAX_TRANSACTION_IDS = 100
_FIELDS = ("transactionIDs", "datetimeFrom", "datetimeTo", "eventCode", "MPAN", "version")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
_MPAN = re.compile(r"\d{13}")


class RequestProblem(ValueError):
    """The request cannot be served, and why, in words a participant can act on (400)."""


@dataclass(frozen=True, slots=True)
class MessageRequest:
    transaction_ids: tuple[str, ...] = ()
    start: int | None = None  # microseconds since the epoch, inclusive
    end: int | None = None
    event_code: str | None = None
    mpan: str | None = None
    version: str | None = None

    def selection(self, queue: str, now: int) -> Selection:
        """The deliveries this request selects on ``queue``: with no start, from the beginning; with
        no end, up to ``now``."""
        return Selection(queue, self.start if self.start is not None else 0, self.end if self.end is not None else now,
                         self.transaction_ids, self.event_code, self.mpan, self.version)

    def canonical(self) -> str:
        """The request as JSON, one spelling per meaning (stored with a requeue, hashed for pages)."""
        return orjson.dumps({"transactionIDs": sorted(self.transaction_ids), "datetimeFrom": self.start,
                             "datetimeTo": self.end, "eventCode": self.event_code, "MPAN": self.mpan,
                             "version": self.version}).decode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    @classmethod
    def from_canonical(cls, text: str) -> MessageRequest:
        d = orjson.loads(text)
        return cls(tuple(d["transactionIDs"]), d["datetimeFrom"], d["datetimeTo"], d["eventCode"], d["MPAN"],
                   d["version"])


def parse_moment(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise RequestProblem(f"{name} must be an ISO 8601 date-time with its offset, 25 characters, "
                             f"e.g. 2026-11-23T10:15:00+00:00 (got {value!r})")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RequestProblem(f"{name} is not a valid date-time: {value!r}") from exc
    return int(moment.timestamp()) * 1_000_000


def text_field(value: Any, name: str, longest: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise RequestProblem(f"{name} must be a string of 1 to {longest} characters")
    return value


def parse_object(body: bytes, names: Sequence[str], what: str) -> dict[str, Any]:
    """A JSON object's fields by their official names (keys matched case-insensitively), or RequestProblem."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestProblem(f"the body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RequestProblem(f"the body must be a {what} object")
    known = {name.lower(): name for name in names}
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = known.get(str(key).lower())
        if name is None:
            raise RequestProblem(f"unknown field '{key}': a {what} has {', '.join(names)}")
        fields[name] = value
    return fields


def parse_message_request(body: bytes) -> MessageRequest:
    """The request in ``body``, or RequestProblem."""
    fields = parse_object(body, _FIELDS, "MessageRequest")
    ids = fields.get("transactionIDs")
    if ids is not None:
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_TRANSACTION_IDS:
            raise RequestProblem(f"transactionIDs must be a list of 1 to {MAX_TRANSACTION_IDS} transaction IDs")
        if not all(isinstance(t, str) and 1 <= len(t) <= 65 for t in ids):
            raise RequestProblem("transactionIDs must hold transaction IDs (strings of at most 65 characters)")
    start = parse_moment(fields.get("datetimeFrom"), "datetimeFrom")
    end = parse_moment(fields.get("datetimeTo"), "datetimeTo")
    if ids is None and start is None:
        raise RequestProblem("give transactionIDs, or datetimeFrom (with datetimeTo, or up to now)")
    if start is not None and end is not None and end < start:
        raise RequestProblem("datetimeTo is before datetimeFrom")
    mpan = text_field(fields.get("MPAN"), "MPAN", 13)
    if mpan is not None and not _MPAN.fullmatch(mpan):
        raise RequestProblem("MPAN must be an MPAN core: 13 digits")
    return MessageRequest(tuple(sorted(set(ids or ()))), start, end if end is None else end + 999_999,
                          text_field(fields.get("eventCode"), "eventCode", 50), mpan,
                          text_field(fields.get("version"), "version", 10))
