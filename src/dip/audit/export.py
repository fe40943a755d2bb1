"""Reading the activity log back: a time range a page at a time (``GET /admin/audit``, ``dip
audit export``), and checking it (``dip audit verify``)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509

from dip import ids
from dip.audit.chain import Report, unpack, verify
from dip.exceptions import DipError
from dip.signing import load_certificate_pem
from dip.store.activity import ActivityRow
from dip.store.base import Store

MAX_PAGE = 1_000


class BadCursor(DipError):
    """A cursor this DIP did not hand out."""


class BadInstant(DipError):
    """A bound of a time range that is not a date-time with its offset."""


def instant(value: str | None, name: str, default: int) -> int:
    """A time range's bound (``2026-11-23T10:15:00+00:00``) in microseconds; ``default`` if none."""
    if value is None:
        return default
    moment = ids.parse_timestamp(value)
    if moment is None:
        raise BadInstant(f"{name} must be a date-time with its offset, e.g. 2026-11-23T10:15:00+00:00")
    return int(moment.timestamp() * 1_000_000)


def encode_cursor(row: ActivityRow) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([row.at, row.chain, row.seq])).decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str, int]:
    try:
        at, chain, seq = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        return int(at), str(chain), int(seq)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        raise BadCursor("the cursor is not one this DIP handed out") from exc


def as_json(row: ActivityRow) -> dict[str, Any]:
    """An entry as exported: its JSON, with the hash that chains it."""
    entry: dict[str, Any] = orjson.loads(unpack(row.entry))
    entry["dip.audit.hash"] = row.hash.hex()
    return entry


class ActivityReader:
    def __init__(self, store: Store, folders: list[Path]) -> None:
        self.store = store
        self.folders = folders  # the audit directories of every node (their checkpoints)

    async def page(self, start: int, end: int, cursor: str | None, limit: int) -> tuple[list[ActivityRow], str | None]:
        """Entries with ``start <= at < end`` in time order (then chain, seq), from ``cursor``."""
        after = decode_cursor(cursor) if cursor else (start - 1, "", 0)
        rows = await self.store.activity_page(start, end, after, min(limit, MAX_PAGE))
        more = len(rows) == min(limit, MAX_PAGE)
        return rows, encode_cursor(rows[-1]) if more and rows else None

    async def verify(self, certificates: list[x509.Certificate] | None = None) -> Report:
        """Check the log; checkpoints must be signed with one of ``certificates`` (default: the
        DIP's signing certificates the database recorded)."""
        if certificates is None:
            certificates = [load_certificate_pem(pem) for pem in await self.store.dip_certificates()]
        return await verify(self.store, self.folders, certificates)
