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
from dip.archive.pages import Page
from dip.archive.requeue import NoWebhook
from dip.archive.selection import MessageRequest, RequestProblem, parse_message_request
from dip.archive.status_replay import parse_status_message_request
from dip.catalogue import Channel
from dip.codes import Code
from dip.ingress.auth import KeyFirst, authenticate_for, node, once
from dip.ingress.bodies import BodyTooLarge, read_body
from dip.ingress.errors import JSON, Refusal
from dip.ingress.openapi_docs import SIGNATURE_PARAMETERS, STANDARD_RESPONSE_ITEM
from dip.ingress.pubconfig import known_channel
from dip.node import Node

router = APIRouter(tags=["DIP Channel Replay/Requeue"], route_class=KeyFirst)

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
_EGRESS_ARRAY = {"type": "array", "items": {"type": "object", "required": ["payload"], "properties": {
    "payload": {"type": "object", "description": "the message under its new wrapper (D0.replayIndicator true)"},
    "originalWrapper": {"type": "object", "description": "the original D0, as first sent"}}}}
_REPLAY_ANSWERS = {
    "200": {"description": "Replayed messages (DIPMessageEgressArray): the whole selection, or its last page",
            "content": {JSON: {"schema": _EGRESS_ARRAY}}},
    "204": {"description": "Nothing matches"},
    "206": {"description": "The first 50,000 of more: X-Continuation-Token reads the next page",
            "headers": {CONTINUATION: {"schema": {"type": "string", "format": "uuid"}}},
            "content": {JSON: {"schema": _EGRESS_ARRAY}}},
}
_STATUS_REQUEST = {"type": "object", "required": ["datetimeFrom", "datetimeTo"], "properties": {
    "datetimeFrom": {"type": "string", "minLength": 25, "maxLength": 25},
    "datetimeTo": {"type": "string", "minLength": 25, "maxLength": 25},
    "transactionID": {"type": "string", "nullable": True, "maxLength": 65},
    "senderUniqueReference": {"type": "string", "nullable": True, "maxLength": 200},
    "correlationID": {"type": "string", "nullable": True, "maxLength": 60}}}
_TOKEN = {"name": CONTINUATION, "in": "header", "required": False, "schema": {"type": "string", "format": "uuid"},
          "description": "the token a 206 answer gave: the next page of the same request"}


def _now() -> int:
    return int(time.time() * 1_000_000)


def _paged(page: Page) -> Response:
    """A replay's page: 204, or the array streamed with its status (and the next page's token)."""
    if page.body is None:
        return Response(status_code=204)
    headers = {CONTINUATION: page.token} if page.token else None
    return StreamingResponse(page.body, status_code=page.status, media_type=JSON, headers=headers)


async def _small_body(request: Request) -> bytes:
    try:
        return await read_body(request, 64 * 1024)
    except BodyTooLarge as exc:
        raise Refusal(413, Code.PROCESSING_FAILED, "413 Payload Too Large: a request of at most 64 KB") from exc


async def within_limit(dip: Node, caller: Caller) -> None:
    """Replay, requeue and search: at most ``--archive-rate-limit`` a second per participant, on
    every API node together (429)."""
    wait = await dip.archive_limiter.take(caller.physical.id, 1)
    if wait:
        raise Refusal(429, Code.PROCESSING_FAILED,
                      f"429 Too Many Requests: over {dip.settings.archive_rate_limit:g} replay, requeue or search "
                      f"requests per second; retry after {wait:.0f} s", caller.principal.id,
                      headers={"Retry-After": f"{wait:.0f}"})


async def _request(request: Request, interface_id: str, recipient_id: str,
                   ) -> tuple[Node, Caller, Channel, MessageRequest]:
    """Who asks (entitled for the recipient), on which channel, for what; within the rate limit."""
    dip = node(request)
    channel = known_channel(request, interface_id)
    body = await _small_body(request)
    caller = authenticate_for(dip, request, recipient_id, channel, body)
    await within_limit(dip, caller)
    try:
        return dip, caller, channel, parse_message_request(body)
    except RequestProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", caller.principal.id) from exc


@router.post("/dip-channel/{interface_id}/replay/{recipient_id}", response_class=Response,
             summary="Replay messages from a DIP Channel Publication", operation_id="replayPublication",
             openapi_extra={**_BODY, "parameters": [*SIGNATURE_PARAMETERS, _TOKEN], "responses": _REPLAY_ANSWERS})
async def replay(interface_id: str, recipient_id: str, request: Request) -> Response:
    dip, caller, channel, message_request = await _request(request, interface_id, recipient_id)
    try:
        answer = await dip.replay.page(caller.physical.id, recipient_id, channel, message_request,
                                       request.headers.get(CONTINUATION), _now())
    except RequestProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", caller.principal.id) from exc
    return _paged(answer)


@router.post("/dip-channel/{interface_id}/requeue/{recipient_id}", response_class=Response,
             summary="Requeue messages on the recipient's webhook", operation_id="requeuePublication",
             openapi_extra={**_BODY, "parameters": SIGNATURE_PARAMETERS, "responses": {"200": {
                 "description": "Requeued: the ID to follow it by (also in X-Requeue-Id)", "content": {JSON: {
                     "schema": {"type": "object", "properties": {"requeueId": {"type": "string"},
                                                                 "totalTransactions": {"type": "integer"}}}}}}}})
async def requeue(interface_id: str, recipient_id: str, request: Request) -> Response:
    dip, caller, channel, message_request = await _request(request, interface_id, recipient_id)
    await once(dip, request, caller)
    try:
        started = await dip.requeue.start(caller.physical.id, recipient_id, channel, message_request, _now())
    except NoWebhook as exc:
        raise Refusal(409, Code.PROCESSING_FAILED, f"409 Conflict: {exc}", caller.principal.id) from exc
    body = {"requeueId": started.requeue_id, "totalTransactions": started.total}
    return Response(orjson.dumps(body), media_type=JSON, headers={REQUEUE_ID: started.requeue_id})


@router.get("/dip-channel/{interface_id}/requeue/{recipient_id}", response_class=Response,
            summary="How far a requeue has got (RequeueStatus)", operation_id="requeueStatus",
            openapi_extra={"parameters": [*SIGNATURE_PARAMETERS, {
                "name": "requeue-id", "in": "query", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "RequeueStatus", "content": {JSON: {"schema": {
                    "type": "object", "properties": {
                        "percentComplete": {"type": "number"}, "totalTransactions": {"type": "number"},
                        "processedTransactions": {"type": "number"},
                        "status": {"type": "string", "enum": ["Processing", "Completed", "Failed"]}}}}}}}})
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


@router.post("/statusmessage/replay/{recipient_id}", response_class=Response, tags=["Status Messages"],
             summary="Fetch again the status messages meant for you (StatusMessageRequest)",
             operation_id="replayStatusMessages",
             openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": _STATUS_REQUEST}}},
                            "parameters": [*SIGNATURE_PARAMETERS, _TOKEN], "responses": {
                                "200": {"description": "StandardResponseArray: the status messages, oldest first",
                                        "content": {JSON: {"schema": {"type": "array",
                                                                      "items": STANDARD_RESPONSE_ITEM}}}},
                                "204": {"description": "None in the range"},
                                "206": {"description": "The first 50,000 of more: X-Continuation-Token reads on",
                                        "content": {JSON: {}}}}})
async def replay_status_messages(recipient_id: str, request: Request) -> Response:
    dip = node(request)
    body = await _small_body(request)
    caller = authenticate_for(dip, request, recipient_id, None, body)
    await within_limit(dip, caller)
    try:
        answer = await dip.status_replay.page(caller.physical.id, recipient_id, parse_status_message_request(body),
                                              request.headers.get(CONTINUATION), _now())
    except RequestProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", caller.principal.id) from exc
    return _paged(answer)
