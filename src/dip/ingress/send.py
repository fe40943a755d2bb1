"""The participant API (DIP API v2.1.0): sending messages and validating them."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dip.accept.level1 import may_send_on
from dip.accept.schema import paused_gc, split_batch
from dip.accept.submission_limits import CHANNEL as SUBMISSION_CHANNEL
from dip.codes import Code
from dip.ingress.auth import KeyFirst, authenticate, node
from dip.ingress.bodies import BodyTooLarge, is_json, read_body
from dip.ingress.errors import JSON, PlainRefusal, Refusal
from dip.ingress.openapi_docs import SEND_DOCS, VALIDATE_DOCS

router = APIRouter(route_class=KeyFirst)
SUBMISSION_LIMIT = "X-DIP-Submission-Limit"  # a call accepted past an IF-021 soft limit says so (E2E 6.1)
log = logging.getLogger("dip.ingress")


@router.post(
    "/dip-channel/{interface_id}",
    tags=["DIP Message Channel"],
    summary="Submit a series of interface messages",
    operation_id="sendMessage",
    openapi_extra=SEND_DOCS,
    response_class=Response,
)
async def send_messages(interface_id: str, request: Request) -> Response:
    dip = node(request)
    settings = dip.settings
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        body = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise Refusal(413, Code.PROCESSING_FAILED, f"413 Payload Too Large: at most {settings.max_body_bytes} "
                      "bytes per call; send smaller batches") from exc
    read = time.perf_counter()
    caller = authenticate(dip, request, body)
    log.debug("%s: read %d bytes in %.3f s, authenticated in %.3f s", interface_id, len(body), read - started,
              time.perf_counter() - read)
    recipient = caller.principal.id
    channel = dip.state.catalogue.get(interface_id)
    if channel is None:
        raise Refusal(404, Code.INTERFACE_INVALID, f"404 Not Found: there is no channel {interface_id}", recipient)
    if not may_send_on(channel, caller, dip.state.directory):
        raise Refusal(
            403, Code.SENDER_ROLE_INVALID,
            f"403 Forbidden: '{caller.physical.id}' holds no role that may send on {channel.interface_id} "
            f"({', '.join(sorted(channel.sender_roles))}) and acts for no participant that does",
            recipient,
        )
    if not is_json(request):
        raise Refusal(400, Code.SCHEMA_FAILURE, "Content-Type must be application/json", recipient)
    with paused_gc():
        raws = split_batch(body)
    if isinstance(raws, str):
        raise Refusal(400, Code.SCHEMA_FAILURE, raws, recipient)
    if not raws:
        raise Refusal(400, Code.SCHEMA_FAILURE, "the array must hold at least one message", recipient)
    if len(raws) > settings.max_messages_per_call:
        raise Refusal(
            413, Code.PROCESSING_FAILED,
            f"413 Payload Too Large: {len(raws)} messages in one call; the limit is "
            f"{settings.max_messages_per_call}. Split the batch.",
            recipient,
        )
    wait = await dip.limiter.take(caller.principal.id, len(raws))
    if wait:
        raise Refusal(
            429, Code.PROCESSING_FAILED,
            f"429 Too Many Requests: over {settings.rate_limit_messages_per_second:g} messages/s; "
            f"retry after {wait:.0f} s",
            recipient, headers={"Retry-After": f"{wait:.0f}"},
        )
    limit = channel.definition.rateLimit
    if limit is not None:
        wait = await dip.channel_limiter.take(f"{caller.principal.id}:{channel.interface_id}", len(raws),
                                              limit.messagesPerSecond, limit.burst)
        if wait:
            raise Refusal(
                429, Code.PROCESSING_FAILED,
                f"429 Too Many Requests: over {limit.messagesPerSecond:g} messages/s on {channel.interface_id}; "
                f"retry after {wait:.0f} s",
                recipient, headers={"Retry-After": f"{wait:.0f}"},
            )
    warning = None
    if channel.interface_id == SUBMISSION_CHANNEL:
        verdict = await dip.submission_limits.check(caller.principal.id, len(raws), int(now.timestamp() * 1e6))
        if verdict.wait:
            wait = max(1, math.ceil(verdict.wait))
            raise Refusal(429, Code.PROCESSING_FAILED, f"429 Too Many Requests: {verdict.reason}; retry after {wait} s",
                          recipient, headers={"Retry-After": str(wait)})
        warning = verdict.warning
    status, response = await dip.accept(channel, caller, raws, now, body)
    return Response(response, status_code=status, media_type=JSON,
                    headers={SUBMISSION_LIMIT: warning} if warning else None)


@router.post(
    "/validate/{interface_id}/{event}",
    tags=["DIP Message Validation Endpoints"],
    summary="Validate messages without sending them",
    openapi_extra=VALIDATE_DOCS,
    response_class=Response,
)
async def validate_messages(interface_id: str, event: str, request: Request) -> Response:
    dip = node(request)
    try:
        body = await read_body(request, dip.settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise PlainRefusal(413, "413 Payload Too Large") from exc
    caller = authenticate(dip, request, body, require_signature=False)
    channel = dip.state.catalogue.get(interface_id)
    if channel is None:
        raise PlainRefusal(404, f"{Code.INTERFACE_INVALID.value} - there is no channel {interface_id}")
    wanted = {code.strip("[]").lower(): code for code in channel.event_codes}
    event_code = wanted.get(event.strip("[]").lower())
    if event_code is None:
        raise PlainRefusal(404, f"{Code.SCHEMA_FAILURE.value} - {event} is not an event code of "
                                f"{channel.interface_id}")
    raws = split_batch(body)
    if isinstance(raws, str) or not raws or len(raws) > dip.settings.max_messages_per_call:
        problem = raws if isinstance(raws, str) else "the array must hold 1 to 50,000 messages"
        raise PlainRefusal(400, f"{Code.SCHEMA_FAILURE.value} - {problem}")
    ok, text = await dip.validate(channel, event_code, caller, raws, datetime.now(UTC))
    if ok:
        return Response(orjson.dumps(f"{Code.SUCCESS.value} - {text}"), status_code=201, media_type=JSON)
    raise PlainRefusal(400, text)
