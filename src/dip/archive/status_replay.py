"""Status-message replay: a sender fetches again the status messages meant for it (the official
``StatusMessageRequest``: a time range, optionally a transaction ID, sender unique reference or
correlation ID), oldest first, as its status webhook received them. docs/archive.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from dip import ids
from dip.archive import pages
from dip.archive.selection import RequestProblem, parse_moment, parse_object, text_field
from dip.queue import status_queue
from dip.store.archive import ArchiveStore, Narrowing

PAGE_SIZE = 50_000
_READ_CHUNK = 5_000
_WORKFLOW_MOST = 10_000  # messages of one workflow looked at (a workflow is a handful)
_FIELDS = ("datetimeFrom", "datetimeTo", "transactionID", "senderUniqueReference", "correlationID")


@dataclass(frozen=True, slots=True)
class StatusMessageRequest:
    start: int
    end: int
    transaction_id: str | None = None
    sur: str | None = None
    correlation_id: str | None = None

    def digest(self) -> str:
        import hashlib

        return hashlib.sha256(orjson.dumps([self.start, self.end, self.transaction_id, self.sur,
                                            self.correlation_id])).hexdigest()




def parse_status_message_request(body: bytes) -> StatusMessageRequest:
    fields = parse_object(body, _FIELDS, "StatusMessageRequest")
    start = parse_moment(fields.get("datetimeFrom"), "datetimeFrom")
    end = parse_moment(fields.get("datetimeTo"), "datetimeTo")
    if start is None or end is None:
        raise RequestProblem("datetimeFrom and datetimeTo are both required")
    if end < start:
        raise RequestProblem("datetimeTo is before datetimeFrom")
    return StatusMessageRequest(start, end + 999_999, text_field(fields.get("transactionID"), "transactionID", 65),
                                text_field(fields.get("senderUniqueReference"), "senderUniqueReference", 200),
                                text_field(fields.get("correlationID"), "correlationID", 60))


class StatusReplay:
    def __init__(self, store: ArchiveStore, page_size: int = PAGE_SIZE) -> None:
        self.store = store
        self.page_size = page_size

    async def page(self, caller_id: str, participant_id: str, request: StatusMessageRequest, token: str | None,
                   now: int) -> pages.Page:
        queue = status_queue(participant_id)
        digest = request.digest()
        after = await pages.resume(self.store, token, caller_id, queue, digest, now)
        wanted = await self._transactions(participant_id, request)
        kept: list[bytes] = []
        last = after
        more = False
        while True:
            found = await self.store.status_messages_for(queue, request.start, request.end, last,
                                                         request.transaction_id, _READ_CHUNK)
            for record in found:
                if wanted is not None and record.transaction_id not in wanted:
                    last = (record.accepted_at, record.id)
                    continue
                if len(kept) == self.page_size:
                    more = True
                    break
                kept.append(record.body)
                last = (record.accepted_at, record.id)
            if more or len(found) < _READ_CHUNK:
                break
        if not kept:
            return pages.NOTHING
        next_token = await pages.next_page(self.store, caller_id, queue, digest, last, now) if more else None
        return pages.Page(206 if more else 200, next_token, _array(kept))


    async def _transactions(self, participant_id: str, request: StatusMessageRequest) -> set[str] | None:
        """The messages of the participant's that its reference or correlation ID names (status
        messages carry the transaction ID, not always the reference); None: any."""
        if request.sur is None and request.correlation_id is None:
            return None
        found: set[str] | None = None
        everything = Narrowing(0, 2**62, viewer=participant_id)
        if request.sur is not None:
            reference = ids.parse_sender_reference(request.sur)
            rows = [] if reference is None else await self.store.search(
                "reference", reference.participant_id,
                everything._replace(sur=request.sur, sur_sender=reference.participant_id), (-1, ""), 1)
            found = {r.transaction_id for r in rows}
        if request.correlation_id is not None:
            rows = await self.store.search("correlation", request.correlation_id,
                                           everything._replace(correlation_id=request.correlation_id), (-1, ""),
                                           _WORKFLOW_MOST)
            workflow = {r.transaction_id for r in rows}
            found = workflow if found is None else found & workflow
        return found


async def _array(bodies: list[bytes]) -> AsyncIterator[bytes]:
    yield b"[" + b",".join(bodies) + b"]"
