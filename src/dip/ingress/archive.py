"""Replay and requeue (DIP API v2.1.0 ``replay`` / ``requeue``; docs/archive.md).

The recipient, or a connection provider it appointed for the channel, asks with a signed
``MessageRequest``; anyone else gets 403 and nothing of another participant is returned. Both
are rate limited per participant (``--archive-rate-limit``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dip.accept.level1 import Caller
from dip.archive.requeue import NoWebhook
from dip.archive.selection import MessageRequest, RequestProblem, parse_message_request
from dip.catalogue import Channel
from dip.codes import Code
from dip.ingress.auth import authenticate_for, node
from dip.ingress.bodies import BodyTooLarge, read_body
from dip.ingress.errors import JSON, Refusal
from dip.ingress.openapi_docs import SIGNATURE_PARAMETERS
from dip.ingress.pubconfig import known_channel
from dip.node import Node

router = APIRouter(tags=["DIP Channel Replay/Requeue"])

CONTINUATION = "X-Continuation-Token"
REQUEUE_ID = "X-Requeue-Id"

_MESSAGE_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "datetimeFrom": {"type": "string", "nullable": True, "minLength": 25, "maxLength": 25,
                         "example": "2026-11-23T00:00:00+00:00"},
        "datetimeTo": {"type": "string", "nullable": True, "minLength": 25, "maxLength": 25},
        "eventCode": {"type": "string", "nullable": True, "maxLength": 50},
        "MPAN": {"type": "string", "nullable": True, "pattern": r"^\d{13}$"},
        "transactionIDs": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "string"}},
        "version": {"type": "string", "nullable": True, "maxLength": 10},
    },
}
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": _MESSAGE_REQUEST}}}}
_TOKEN = {"name": CONTINUATION, "in": "header", "required": False, "schema": {"type": "string", "format": "uuid"},
          "description": "the token a 206 answer gave: the next page of the same request"}


def _now() -> int:
    return int(time.time() * 1_000_000)


async def _request(request: Request, interface_id: str, recipient_id: str,
                   ) -> tuple[Node, Caller, Channel, MessageRequest]:
    """Who asks (entitled for the recipient), on which channel, for what; within the rate limit."""
    dip = node(request)
    channel = known_channel(request, interface_id)
    try:
        body = await read_body(request, 64 * 1024)
    except BodyTooLarge as exc:
        raise Refusal(413, Code.PROCESSING_FAILED, "413 Payload Too Large: a MessageRequest") from exc
    caller = authenticate_for(dip, request, recipient_id, channel, body)
    wait = dip.archive_limiter.take(caller.physical.id, 1)
    if wait:
        raise Refusal(429, Code.PROCESSING_FAILED,
                      f"429 Too Many Requests: over {dip.settings.archive_rate_limit:g} replay, requeue or search "
                      f"requests per second; retry after {wait:.0f} s", caller.principal.id,
                      headers={"Retry-After": f"{wait:.0f}"})
    try:
        return dip, caller, channel, parse_message_request(body)
    except RequestProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", caller.principal.id) from exc


@router.post("/dip-channel/{interface_id}/replay/{recipient_id}", response_class=Response,
             summary="Replay messages from a DIP Channel Publication", operation_id="replayPublication",
             openapi_extra={**_BODY, "parameters": [*SIGNATURE_PARAMETERS, _TOKEN]})
async def replay(interface_id: str, recipient_id: str, request: Request) -> Response:
    dip, caller, channel, message_request = await _request(request, interface_id, recipient_id)
    try:
        answer = await dip.replay.page(caller.physical.id, recipient_id, channel, message_request,
                                       request.headers.get(CONTINUATION), _now())
    except RequestProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", caller.principal.id) from exc
    if answer.body is None:
        return Response(status_code=204)
    headers = {CONTINUATION: answer.token} if answer.token else None
    return StreamingResponse(answer.body, status_code=answer.status, media_type=JSON, headers=headers)


@router.post("/dip-channel/{interface_id}/requeue/{recipient_id}", response_class=Response,
             summary="Requeue messages on the recipient's webhook", operation_id="requeuePublication",
             openapi_extra={**_BODY, "parameters": SIGNATURE_PARAMETERS})
async def requeue(interface_id: str, recipient_id: str, request: Request) -> Response:
    dip, caller, channel, message_request = await _request(request, interface_id, recipient_id)
    try:
        started = await dip.requeue.start(caller.physical.id, recipient_id, channel, message_request, _now())
    except NoWebhook as exc:
        raise Refusal(409, Code.PROCESSING_FAILED, f"409 Conflict: {exc}", caller.principal.id) from exc
    body = {"requeueId": started.requeue_id, "totalTransactions": started.total}
    return Response(orjson.dumps(body), media_type=JSON, headers={REQUEUE_ID: started.requeue_id})


@router.get("/dip-channel/{interface_id}/requeue/{recipient_id}", response_class=Response,
            summary="How far a requeue has got (RequeueStatus)", operation_id="requeueStatus",
            openapi_extra={"parameters": [*SIGNATURE_PARAMETERS, {
                "name": "requeue-id", "in": "query", "required": True, "schema": {"type": "string"}}]})
async def requeue_status(interface_id: str, recipient_id: str, request: Request) -> Response:
    dip = node(request)
    channel = known_channel(request, interface_id)
    caller = authenticate_for(dip, request, recipient_id, channel, b"")
    requeue_id = request.query_params.get("requeue-id")
    if not requeue_id:
        raise Refusal(400, Code.SCHEMA_FAILURE, "400 Bad Request: the query parameter requeue-id is required",
                      caller.principal.id)
    status = await dip.requeue.status(recipient_id, channel, requeue_id)
    if status is None:
        raise Refusal(404, Code.PROCESSING_FAILED,
                      f"404 Not Found: no requeue '{requeue_id}' for {recipient_id} on {channel.interface_id}",
                      caller.principal.id)
    return Response(orjson.dumps(status), media_type=JSON)
