"""POST /statusmessage: a recipient's Level 4 findings, relayed to the original senders (E2E 4.7).

The body is a ``StandardResponseArray`` (1 to 50,000 items). Each item must name a transaction
the DIP holds and that the caller (or the participant its connection provider acts for) received
as a recipient; ``senderID`` is the participant reporting. All items are checked first: one bad
item refuses the call (400, nothing relayed), so a sender never gets half of a report. Accepted
items go to each original sender's status webhook through the delivery queues, with the same
retries as publications.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jsonschema_rs
import msgspec
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dip import ids
from dip.api.common import JSON, BodyTooLarge, authenticate, error_response, is_json, read_body, service
from dip.api.openapi_docs import SIGNATURE_PARAMETERS, STANDARD_RESPONSE, STANDARD_RESPONSE_ITEM
from dip.codes import Code
from dip.delivery.worker import STATUS, status_queue
from dip.directory import Directory
from dip.ingest import Caller
from dip.responses import ResponseItem, item, standard_response
from dip.schemas import STATUS_MESSAGE_ITEM
from dip.store import DeliveryRow

router = APIRouter(tags=["Status Messages"])
MAX_ITEMS = 50_000


class _StatusIn(msgspec.Struct):
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


_item_validator = jsonschema_rs.validator_for(STATUS_MESSAGE_ITEM)
_encoder = msgspec.json.Encoder()


@router.post("/statusmessage", response_class=Response, summary="Submit a series of status messages",
             operation_id="submitStatusMessage", openapi_extra={
                 "parameters": SIGNATURE_PARAMETERS,
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": STANDARD_RESPONSE_ITEM}}}},
                 "responses": {"201": {"description": "Relayed", "content": {"application/json": {
                     "schema": STANDARD_RESPONSE}}}},
             })
async def submit_status_messages(request: Request) -> Response:
    dip = service(request)
    try:
        body = await read_body(request, 64 * 1024 * 1024)
    except BodyTooLarge:
        return error_response(dip, 413, Code.PROCESSING_FAILED, "413 Payload Too Large: send fewer status messages")
    caller = authenticate(dip, request, body)
    if not isinstance(caller, Caller):
        return caller
    if not is_json(request):
        return error_response(dip, 400, Code.SCHEMA_FAILURE, "Content-Type must be application/json",
                              caller.principal.id)
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error_response(dip, 400, Code.SCHEMA_FAILURE, f"the body is not JSON: {exc}", caller.principal.id)
    if not isinstance(items, list):
        return error_response(dip, 400, Code.SCHEMA_FAILURE,
                              "the body must be an array of StandardResponseBodyType objects", caller.principal.id)
    for index, entry in enumerate(items):
        for error in _item_validator.iter_errors(entry):
            where = "/" + "/".join(str(p) for p in error.instance_path)
            return error_response(dip, 400, Code.SCHEMA_FAILURE, f"status message {index}: {where}: {error.message}"[
                :500], caller.principal.id)
    entries = msgspec.convert(items, list[_StatusIn])
    if not 1 <= len(entries) <= MAX_ITEMS:
        return error_response(dip, 400 if not entries else 413, Code.SCHEMA_FAILURE,
                              f"send 1 to {MAX_ITEMS} status messages per call", caller.principal.id)
    tids = [e.transactionID for e in entries]
    senders = await dip.store.senders(tids)
    received = {(tid, recipient) for tid, recipient, _, kind, _ in await dip.store.delivery_states(tids)
                if kind != STATUS}
    stamp = ids.timestamp(datetime.now(UTC))
    problems: list[ResponseItem] = []
    rows: list[DeliveryRow] = []
    now = int(time.time() * 1e6)
    for index, entry in enumerate(entries):
        why = _problem(entry, caller, dip.directory, senders, received)
        if why is not None:
            problems.append(item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=dip.settings.dip_id,
                                 recipient_id=caller.principal.id, transaction_id=entry.transactionID[:65] or None,
                                 help_text=f"status message {index}: {why}"))
            continue
        original_sender, correlation = senders[entry.transactionID]
        relayed = msgspec.structs.replace(
            entry, recipientID=original_sender, correlationID=entry.correlationID or correlation,
            sentTimestamp=entry.sentTimestamp or stamp,
            DIPConnectionProviderID=entry.DIPConnectionProviderID
            or (caller.physical.id if caller.physical.id != entry.senderID else None),
        )
        rows.append(DeliveryRow(status_queue(original_sender), entry.transactionID, original_sender, "", STATUS, now,
                                _encoder.encode(relayed)))
    if problems:
        return Response(standard_response(problems, stamp), status_code=400, media_type=JSON)
    await dip.store.enqueue(rows, now)
    if dip.worker is not None:
        dip.worker.wake()
    accepted = [item(code=Code.SUCCESS, sent_timestamp=stamp, sender_id=dip.settings.dip_id,
                     recipient_id=caller.principal.id, transaction_id=e.transactionID) for e in entries]
    return Response(standard_response(accepted, stamp), status_code=201, media_type=JSON)


def _problem(entry: _StatusIn, caller: Caller, directory: Directory, senders: dict[str, tuple[str, str | None]],
             received: set[tuple[str, str]]) -> str | None:
    if entry.transactionID not in senders:
        return f"transactionID '{entry.transactionID[:65]}' is not a transaction the DIP holds"
    if not entry.message or len(entry.message) > 200:
        return "message must be 1 to 200 characters"
    reporter = entry.senderID
    acting = caller.physical.id
    if reporter not in (caller.principal.id, acting) and not directory.provider_roles(reporter, acting):
        return f"senderID '{reporter}' is not the caller or a participant it acts for"
    if (entry.transactionID, reporter) not in received:
        return f"'{reporter}' did not receive transaction {entry.transactionID}"
    return None
