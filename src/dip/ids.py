"""Identifier formats: the only place they live.

Formats (E2E Solution Architecture 4.2.3; API contract):
- transaction ID  ``T-{interfaceID}-{senderDIPID}-{senderRoleID}-{YYYYMMDD}-{hex}`` (<= 65 chars)
- correlation ID  ``CI-{YYYYMMDD}-{hex}`` (<= 60 chars)
- a replay's correlation ID ``R-{original}`` cut to 60 chars, or ``R-{YYYYMMDD}-{hex}`` of its new
  transaction ID when the original had none (docs/archive.md)
- sender unique reference ``S-[IF-|REP-]{nnn}-{participant}-{role}-{YYYYMMDD}-{ref}`` (<= 200 chars)
- timestamps      ``YYYY-MM-DDTHH:MM:SS+00:00`` (25 chars, UTC)

The hex part of DIP-made IDs is 24 hex digits: 12 of the millisecond clock (so IDs sort by
time and index well) followed by 12 of a per-process counter that starts at a random value,
so two processes or two restarts never repeat each other in practice.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

SUR_PATTERN = r"^S-((IF|REP)-)?\d{3,4}-[0-9a-fA-F]{10}-[A-Z]{3,5}-\d{8}-[a-zA-Z0-9]+$"
SUR_MAX_LENGTH = 200
TRANSACTION_ID_MAX_LENGTH = 65
CORRELATION_ID_MAX_LENGTH = 60
CORRELATION_ID_PATTERN = r"^CI-\d{8}-[0-9a-fA-F]+$"
PARTICIPANT_ID_PATTERN = r"^[0-9A-Za-z]{10}$"
ROLE_PATTERN = r"^[A-Z]{3,5}$"
INTERFACE_ID_PATTERN = r"^(IF|REP)-\d{3}[A-Z]?$"

# The patterns above are JSON Schema (ECMA-262) patterns, where "$" means the very end. In
# Python "$" also matches before a final newline, so the compiled forms use fullmatch instead.
_SUR_RE = re.compile(r"S-(?:(IF|REP)-)?(\d{3,4})-([0-9a-fA-F]{10})-([A-Z]{3,5})-(\d{8})-([a-zA-Z0-9]+)")
_CORRELATION_RE = re.compile(CORRELATION_ID_PATTERN.strip("^$"))
_INTERFACE_RE = re.compile(INTERFACE_ID_PATTERN.strip("^$"))
_PARTICIPANT_RE = re.compile(PARTICIPANT_ID_PATTERN.strip("^$"))
_ROLE_RE = re.compile(ROLE_PATTERN.strip("^$"))

_next = secrets.randbits(46)
_lock = threading.Lock()


def _reserve(count: int) -> int:
    global _next
    with _lock:
        first = _next
        _next += count
    return first


def _sequence(now: datetime) -> str:
    return sequences(now, 1)[0]


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """The 25-character ISO 8601 form the API uses: ``2026-11-23T10:15:00+00:00``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def precise_timestamp(micros: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC with microseconds (the operator's views)."""
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat(timespec="microseconds")


def sequences(moment: datetime, count: int) -> list[str]:
    """``count`` unique hex sequence parts at once (one lock, one clock read)."""
    first = _reserve(count)
    millis = f"{int(moment.timestamp() * 1000) & 0xFFFFFFFFFFFF:012x}"
    return [f"{millis}{(first + i) & 0xFFFFFFFFFFFF:012x}" for i in range(count)]


def transaction_id(interface_id: str, sender_id: str, role: str, moment: datetime) -> str:
    tid = f"T-{interface_id}-{sender_id}-{role}-{moment.astimezone(UTC):%Y%m%d}-{_sequence(moment)}"
    if len(tid) > TRANSACTION_ID_MAX_LENGTH:  # a 5-letter role on REP-002A still fits; guard anyway
        raise ValueError(f"transaction ID longer than {TRANSACTION_ID_MAX_LENGTH}: {tid}")
    return tid


_TRANSACTION_DAY = re.compile(r"-(\d{8})-[0-9a-f]+$")


def transaction_day(transaction_id: str) -> date | None:
    """The UTC day a transaction ID names (the day the DIP received the message), or None for an
    ID not of the DIP's making. A hint for finding the message, never a proof."""
    match = _TRANSACTION_DAY.search(transaction_id)
    if match is None:
        return None
    try:
        return datetime.strptime(match[1], "%Y%m%d").date()
    except ValueError:
        return None


def replay_transaction_ids(originals: Sequence[str], moment: datetime) -> list[str]:
    """New transaction IDs for replays of ``originals``: each keeps its original's interface,
    sender and role, with the replay's date and a new sequence."""
    day = f"{moment.astimezone(UTC):%Y%m%d}"
    return [f"{tid.rsplit('-', 2)[0]}-{day}-{seq}" for tid, seq in zip(originals, sequences(moment, len(originals)),
                                                                        strict=True)]


REPLY_PREFIX = "R-"


def reply_correlation_id(original: str | None, replay_transaction_id: str) -> str:
    """The correlation ID of a replayed message's new wrapper (E2E 4.9: "with a reply prefix")."""
    if original:
        return (REPLY_PREFIX + original)[:CORRELATION_ID_MAX_LENGTH]
    _, day, seq = replay_transaction_id.rsplit("-", 2)
    return f"{REPLY_PREFIX}{day}-{seq}"


def correlation_id(moment: datetime) -> str:
    return f"CI-{moment.astimezone(UTC):%Y%m%d}-{_sequence(moment)}"


def is_correlation_id(value: str) -> bool:
    return len(value) <= CORRELATION_ID_MAX_LENGTH and _CORRELATION_RE.fullmatch(value) is not None


def is_interface_id(value: str) -> bool:
    return _INTERFACE_RE.fullmatch(value) is not None


def is_participant_id(value: str) -> bool:
    return _PARTICIPANT_RE.fullmatch(value) is not None


def is_role(value: str) -> bool:
    return _ROLE_RE.fullmatch(value) is not None


def publication_id(interface_id: str) -> str:
    """PUB-005 for IF-005; reports (REP-xxx) publish under their own ID."""
    return "PUB-" + interface_id[3:] if interface_id.startswith("IF-") else interface_id


@dataclass(frozen=True, slots=True)
class SenderReference:
    """The parts of a sender unique reference the DIP checks (E2E 4.2.3.1)."""

    prefix: str | None  # "IF", "REP" or None
    number: str  # "005"
    participant_id: str
    role: str
    date: str
    reference: str


def parse_sender_reference(value: str) -> SenderReference | None:
    if len(value) > SUR_MAX_LENGTH:
        return None
    m = _SUR_RE.fullmatch(value)
    if m is None:
        return None
    return SenderReference(m[1], m[2], m[3], m[4], m[5], m[6])


_SUR_TAIL_RE = re.compile(r"\d{8}-[a-zA-Z0-9]+")


@functools.lru_cache(maxsize=4096)
def _sur_prefixes(interface_id: str, sender_id: str, role: str) -> tuple[str, ...]:
    """The beginnings an acceptable SUR of this interface, participant and role has (with and
    without the IF/REP part); none when they could not make a valid SUR anyway."""
    kind, _, number = interface_id.partition("-")
    number = number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    prefixes = (f"S-{kind}-{number}-{sender_id}-{role}-", f"S-{number}-{sender_id}-{role}-")
    return tuple(p for p in prefixes if _SUR_RE.fullmatch(p + "20000101-a"))


def sender_reference_problem(value: str, interface_id: str, sender_id: str, role: str) -> str | None:
    """Why ``value`` is not an acceptable SUR for this message, or None when it is.

    The DIP checks the format and that the interface, participant and role parts agree
    with the message; it does not check the date or the free reference (E2E 4.2.3.1).
    """
    if len(value) <= SUR_MAX_LENGTH:  # the usual case first: the expected beginning, then date and reference
        for prefix in _sur_prefixes(interface_id, sender_id, role):
            if value.startswith(prefix) and _SUR_TAIL_RE.fullmatch(value, len(prefix)):
                return None
    m = _SUR_RE.fullmatch(value) if len(value) <= SUR_MAX_LENGTH else None
    if m is None:
        return (
            f"senderUniqueReference '{value[:60]}' does not match S-IF-nnn-<participant>-<role>-"
            "<YYYYMMDD>-<alphanumeric ref> (at most 200 characters)"
        )
    prefix, number, participant, sur_role = m.group(1, 2, 3, 4)
    kind, _, channel_number = interface_id.partition("-")
    if number != channel_number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") or prefix not in (None, kind):
        return f"senderUniqueReference interface part '{number}' does not match channel {interface_id}"
    if participant != sender_id:
        return f"senderUniqueReference participant part '{participant}' does not match senderDIPID '{sender_id}'"
    if sur_role != role:
        return f"senderUniqueReference role part '{sur_role}' does not match senderRoleID '{role}'"
    return None


def make_sender_reference(interface_id: str, sender_id: str, role: str, moment: datetime, ref: str) -> str:
    """Build a SUR in the recommended form (used by the participant client)."""
    return f"S-{interface_id}-{sender_id}-{role}-{moment.astimezone(UTC):%Y%m%d}-{ref}"


_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")


def parse_timestamp(value: str) -> datetime | None:
    """Parse an API timestamp (``2026-11-23T10:15:00+00:00``); None when it is not one."""
    if _TIMESTAMP_RE.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
