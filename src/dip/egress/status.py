"""Status messages to a message's sender (E2E 4.7): what the DIP tells it, and what its
recipients report, relayed.

A status message is a delivery like any other, on the sender's status queue
(``{sender}|status``), with its StandardResponseBodyType item as the body. Three ways in:

- the DIP's own notices (dead-lettered, or the webhook answered 405/406: dip.egress.outcomes
  says when): ``StatusNotices.from_dip``;
- a recipient's 207 or 400 that names a message it refused: ``StatusNotices.relayed``;
- a recipient's ``POST /statusmessage`` (its Level 4 findings): ``RelayStatusMessages``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import orjson

from dip import ids
from dip.accept.level1 import Caller
from dip.codes import Code
from dip.directory import Directory
from dip.queue import DeliveryKind, status_queue
from dip.responses import ResponseItem, item
from dip.store.base import DeliveryRow, PendingDelivery


def _now() -> int:
    return int(time.time() * 1_000_000)


def _sender_of(p: PendingDelivery) -> str | None:
    """The stored message's sender (who gets the status message), from its common block."""
    try:
        sender = orjson.loads(p.payload or b"{}")["CommonBlock"]["S1"]["senderDIPID"]
    except (KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return sender if isinstance(sender, str) else None


def _row(sender: str, transaction_id: str, body: bytes) -> DeliveryRow:
    return DeliveryRow(status_queue(sender), transaction_id, sender, "", DeliveryKind.STATUS, _now(), body)


class StatusNotices:
    """Builds the status messages delivery sends to a message's sender."""

    def __init__(self, dip_id: str, ticket_url: Callable[[str], str]) -> None:
        self.dip_id = dip_id
        self.ticket_url = ticket_url

    def from_dip(self, p: PendingDelivery, recipient_id: str, why: str) -> DeliveryRow | None:
        """A status message the DIP itself sends to the message's sender."""
        sender = _sender_of(p)
        if sender is None:
            return None
        stamp = ids.timestamp(datetime.now(UTC))
        status = item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=self.dip_id,
                      recipient_id=sender, transaction_id=p.transaction_id, correlation_id=p.correlation_id,
                      help_text=f"{recipient_id} ({p.role}): {why}",
                      service_ticket_url=self.ticket_url(p.transaction_id))
        return _row(sender, p.transaction_id, orjson.dumps(msgspec.to_builtins(status)))

    def relayed(self, p: PendingDelivery, recipient_id: str, entry: dict[str, Any]) -> DeliveryRow | None:
        """A recipient's refusal of a message (its answer's item), on its way to the sender."""
        sender = _sender_of(p)
        if sender is None:
            return None
        stamp = ids.timestamp(datetime.now(UTC))
        message = entry.get("message") if isinstance(entry.get("message"), str) else None
        relayed = item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=recipient_id,
                       recipient_id=sender, transaction_id=p.transaction_id, correlation_id=p.correlation_id,
                       help_text=entry.get("help") if isinstance(entry.get("help"), str) else None)
        body = orjson.loads(orjson.dumps(msgspec.to_builtins(relayed)))
        if message:
            body["message"] = message[:200]
        return _row(sender, p.transaction_id, orjson.dumps(body))


# -- POST /statusmessage -------------------------------------------------------------------------


class StatusIn(msgspec.Struct):
    """One item of a recipient's status-message call (a StandardResponseBodyType)."""

    transactionID: str
    message: str
    senderID: str
    sentTimestamp: str | None = None
    senderUniqueReference: str | None = None
    correlationID: str | None = None
    recipientID: str | None = None
    DIPConnectionProviderID: str | None = None
    help: str | None = None
    serviceTicketURL: str | None = None


class _Store(Protocol):
    async def senders(self, transaction_ids: list[str]) -> dict[str, tuple[str, str | None]]: ...

    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]: ...

    async def enqueue_once(self, rows: list[tuple[bytes, DeliveryRow]], expires_at: int, now: int) -> int: ...


class _Directory(Protocol):
    @property
    def directory(self) -> Directory: ...


_encoder = msgspec.json.Encoder()
_HELP_MOST = 500  # characters of a reporter's help text passed on
SAME_REPORT_WINDOW = 86_400 * 1_000_000  # an identical report within a day is relayed once


def _digest(said: tuple[str, str, str, str | None]) -> bytes:
    """What names a report (transaction, reporter, code, help) among the requests seen."""
    return hashlib.sha256(b"status\0" + "\0".join(p or "" for p in said).encode("utf-8")).digest()


class RelayStatusMessages:
    """A recipient's status messages, each to the original sender of the message it is about.

    All items are checked first: one bad item refuses the call (nothing relayed), so a sender
    never gets half of a report. Accepted items go to each sender's status queue.
    """

    def __init__(self, store: _Store, state: _Directory, dip_id: str, wake: Callable[[], None]) -> None:
        self._store = store
        self._state = state
        self._dip_id = dip_id
        self._wake = wake

    async def __call__(self, caller: Caller, entries: list[StatusIn]) -> tuple[bool, list[ResponseItem]]:
        """(True, an item per entry) when relayed; (False, an item per refused entry) otherwise."""
        tids = [e.transactionID for e in entries]
        senders = await self._store.senders(tids)
        received = {(tid, recipient) for tid, recipient, _, kind, _ in await self._store.delivery_states(tids)
                    if kind != DeliveryKind.STATUS}
        stamp = ids.timestamp(datetime.now(UTC))
        directory = self._state.directory
        problems: list[ResponseItem] = []
        rows: list[tuple[bytes, DeliveryRow]] = []
        seen: set[tuple[str, str, str, str | None]] = set()
        now = _now()
        for index, entry in enumerate(entries):
            why = _problem(entry, caller, directory, senders, received)
            if why is not None:
                problems.append(item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=self._dip_id,
                                     recipient_id=caller.principal.id, transaction_id=entry.transactionID[:65] or None,
                                     help_text=f"status message {index}: {why}"))
                continue
            said = (entry.transactionID, entry.senderID, entry.message, entry.help)
            if said in seen:
                continue  # an identical item is relayed once
            seen.add(said)
            original_sender, correlation = senders[entry.transactionID]
            rows.append((_digest(said), DeliveryRow(status_queue(original_sender), entry.transactionID, original_sender,
                                                   "", DeliveryKind.STATUS, now,
                                                   _encoder.encode(_vouched(entry, caller, original_sender,
                                                                            correlation, stamp)))))
        if problems:
            return False, problems
        # relayed once across calls too, for a day (a reporter's retry, or a report repeated in a loop)
        await self._store.enqueue_once(rows, now + SAME_REPORT_WINDOW, now)
        self._wake()
        return True, [item(code=Code.SUCCESS, sent_timestamp=stamp, sender_id=self._dip_id,
                           recipient_id=caller.principal.id, transaction_id=e.transactionID) for e in entries]


def _vouched(entry: StatusIn, caller: Caller, original_sender: str, correlation: str | None, stamp: str) -> StatusIn:
    """The item as the DIP relays it, and signs: what the DIP vouches for is the DIP's (who
    reported, for whom, through which connection provider, when, the workflow, the service desk);
    the reporter's words (its MSG code and help) are marked as the reporter's. A reporter's own
    DIPConnectionProviderID, serviceTicketURL, correlationID or senderUniqueReference are not
    passed on: signed by the DIP, a false provider or a phishing link would look like the DIP's."""
    words = f"{entry.senderID} says: {entry.help}"[:_HELP_MOST] if entry.help else None
    return StatusIn(transactionID=entry.transactionID, message=entry.message, senderID=entry.senderID,
                    sentTimestamp=stamp, recipientID=original_sender, correlationID=correlation,
                    DIPConnectionProviderID=caller.physical.id if caller.physical.id != entry.senderID else None,
                    help=words)


def _problem(entry: StatusIn, caller: Caller, directory: Directory, senders: dict[str, tuple[str, str | None]],
             received: set[tuple[str, str]]) -> str | None:
    if entry.transactionID not in senders:
        return f"transactionID '{entry.transactionID[:65]}' is not a transaction the DIP holds"
    if not entry.message or len(entry.message) > 200:
        return "message must be 1 to 200 characters"
    if any(not text.isprintable() for text in (entry.message, entry.help or "")):
        return "message and help must not hold control characters"
    reporter = entry.senderID
    acting = caller.physical.id
    if reporter not in (caller.principal.id, acting) and not directory.provider_roles(reporter, acting):
        return f"senderID '{reporter}' is not the caller or a participant it acts for"
    if (entry.transactionID, reporter) not in received:
        return f"'{reporter}' did not receive transaction {entry.transactionID}"
    return None
