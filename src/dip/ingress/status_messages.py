"""POST /statusmessage: a recipient's Level 4 findings, relayed to the original senders (E2E 4.7).

The body is a ``StandardResponseArray`` (1 to 50,000 items). Each item must name a transaction
the DIP holds and that the caller (or the participant its connection provider acts for) received
as a recipient; ``senderID`` is the participant reporting. The route checks the body's shape;
dip.egress.status.RelayStatusMessages checks each item and relays them, all or none.
"""

from __future__ import annotations

import jsonschema_rs
import msgspec
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dip.codes import Code
from dip.egress.status import StatusIn
from dip.ingress.auth import KeyFirst, authenticate, node, once
from dip.ingress.bodies import BodyTooLarge, is_json, read_body
from dip.ingress.errors import JSON, Refusal
from dip.ingress.openapi_docs import SIGNATURE_PARAMETERS, STANDARD_RESPONSE, STANDARD_RESPONSE_ITEM
from dip.responses import standard_response
from dip.schemas import STATUS_MESSAGE_ITEM

router = APIRouter(tags=["Status Messages"], route_class=KeyFirst)
MAX_ITEMS = 50_000
MAX_BODY = 64 * 1024 * 1024

_item_validator = jsonschema_rs.validator_for(STATUS_MESSAGE_ITEM)


@router.post("/statusmessage", response_class=Response, summary="Submit a series of status messages",
             operation_id="submitStatusMessage", openapi_extra={
                 "parameters": SIGNATURE_PARAMETERS,
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": STANDARD_RESPONSE_ITEM}}}},
                 "responses": {"201": {"description": "Relayed", "content": {"application/json": {
                     "schema": STANDARD_RESPONSE}}}},
             })
async def submit_status_messages(request: Request) -> Response:
    dip = node(request)
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge as exc:
        raise Refusal(413, Code.PROCESSING_FAILED, "413 Payload Too Large: send fewer status messages") from exc
    caller = authenticate(dip, request, body)
    await once(dip, request, caller)
    reporter = caller.principal.id
    if not is_json(request):
        raise Refusal(400, Code.SCHEMA_FAILURE, "Content-Type must be application/json", reporter)
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"the body is not JSON: {exc}", reporter) from exc
    if not isinstance(items, list):
        raise Refusal(400, Code.SCHEMA_FAILURE, "the body must be an array of StandardResponseBodyType objects",
                      reporter)
    for index, entry in enumerate(items):
        for error in _item_validator.iter_errors(entry):
            where = "/" + "/".join(str(p) for p in error.instance_path)
            raise Refusal(400, Code.SCHEMA_FAILURE, f"status message {index}: {where}: {error.message}"[:500],
                          reporter)
    entries = msgspec.convert(items, list[StatusIn])
    if not 1 <= len(entries) <= MAX_ITEMS:
        raise Refusal(400 if not entries else 413, Code.SCHEMA_FAILURE,
                      f"send 1 to {MAX_ITEMS} status messages per call", reporter)
    wait = await dip.status_limiter.take(caller.physical.id, len(entries))
    if wait:
        raise Refusal(429, Code.PROCESSING_FAILED,
                      f"429 Too Many Requests: over {dip.settings.status_rate_limit:g} status messages a second; "
                      f"retry after {wait:.0f} s", reporter, headers={"Retry-After": f"{wait:.0f}"})
    relayed, answer = await dip.relay_status(caller, entries)
    # one item per entry, or per refused entry: never none; they share the answer's timestamp
    return Response(standard_response(answer, answer[0].sentTimestamp), status_code=201 if relayed else 400,
                    media_type=JSON)
