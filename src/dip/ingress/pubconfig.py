"""Webhook registration (DIP API v2.1.0 ``pubconfig`` and ``statusmessage/config``) and the DIP's certificate.

A participant registers, per channel, the URL its publications are pushed to (one URL may serve
every channel) and one URL for status messages. Only the participant itself or a DIP
connection provider it appointed may do so; the request is signed like every participant call.
Outside DEV only public ``https://`` URLs are accepted (dip.egress.url_safety).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dip.accept.level1 import Caller
from dip.catalogue import Channel
from dip.codes import Code
from dip.directory import Webhook, WebhookKind
from dip.egress.url_safety import callback_url_problem
from dip.ingress.auth import KeyFirst, authenticate_for, node, once
from dip.ingress.bodies import BodyTooLarge, read_body
from dip.ingress.errors import JSON, Refusal
from dip.ingress.openapi_docs import SIGNATURE_PARAMETERS
from dip.node import Node

router = APIRouter(tags=["DIP Channel Publication Configuration"], route_class=KeyFirst)
public_router = APIRouter(tags=["Operations"])  # no API key: anyone may check the DIP's signatures

DEFAULT_MAX_MESSAGES = 50_000
DEFAULT_MAX_PAYLOAD_KB = 100_000
_FIELDS = {"callbackurl": "callbackURL", "maxmessagecount": "maxMessageCount", "maxpayloadsize": "maxPayloadSize"}

_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["callbackURL"],
    "properties": {
        "callbackURL": {"type": "string", "format": "uri", "example": "https://bigEnergyServer.com/receiveEvents"},
        "maxMessageCount": {"type": "number", "example": 100, "description": "default 50,000 (the most)"},
        "maxPayloadSize": {"type": "number", "example": 100000, "description": "KB per call; default 100,000"},
    },
}
_DOCS: dict[str, Any] = {
    "parameters": SIGNATURE_PARAMETERS,
    "requestBody": {"required": True, "content": {"application/json": {"schema": _CONFIG_SCHEMA}}},
}


def _number(value: Any, name: str, default: int, highest: int) -> int | str:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return f"{name} must be a whole number"
    if not 1 <= value <= highest:
        return f"{name} must be between 1 and {highest}"
    return int(value)


async def _prepare(request: Request, recipient_id: str, channel: Channel | None) -> tuple[Node, bytes, Caller]:
    """Read the (small) body and check who is asking."""
    dip = node(request)
    try:
        body = await read_body(request, 64 * 1024)
    except BodyTooLarge as exc:
        raise Refusal(413, Code.PROCESSING_FAILED, "413 Payload Too Large: a webhook configuration") from exc
    caller = authenticate_for(dip, request, recipient_id, channel, body)
    await once(dip, request, caller)
    return dip, body, caller


async def _register(request: Request, recipient_id: str, kind: WebhookKind, channel: Channel | None) -> Response:
    dip, body, caller = await _prepare(request, recipient_id, channel)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"the body is not JSON: {exc}", recipient_id) from exc
    if not isinstance(raw, dict):
        raise Refusal(400, Code.SCHEMA_FAILURE, "the body must be a WebhookConfig object", recipient_id)
    config: dict[str, Any] = {_FIELDS.get(str(k).lower(), str(k)): v for k, v in raw.items()}
    unknown = sorted(set(config) - set(_FIELDS.values()))
    url = config.get("callbackURL")
    count = _number(config.get("maxMessageCount"), "maxMessageCount", DEFAULT_MAX_MESSAGES, DEFAULT_MAX_MESSAGES)
    size = _number(config.get("maxPayloadSize"), "maxPayloadSize", DEFAULT_MAX_PAYLOAD_KB, 10_000_000)
    problem = (
        f"unknown field(s): {', '.join(unknown)}" if unknown
        else "callbackURL is required and must be a string" if not isinstance(url, str)
        else count if isinstance(count, str) else size if isinstance(size, str) else None
    )
    if problem is None and isinstance(url, str):
        problem = await asyncio.to_thread(callback_url_problem, url, dip.settings.environment)
    if problem is not None:
        raise Refusal(400, Code.SCHEMA_FAILURE, problem, recipient_id)
    assert isinstance(url, str) and isinstance(count, int) and isinstance(size, int)
    hook = Webhook(recipient_id, kind, channel.interface_id if channel else "", url, count, size, caller.physical.id)
    created = await dip.webhooks.put(hook)
    answer = {"recipientID": recipient_id, "publicationID": channel.publication_id if channel else None,
              "callbackURL": url, "maxMessageCount": count, "maxPayloadSize": size}
    return Response(orjson.dumps(answer), status_code=201 if created else 200, media_type=JSON)


async def _remove(request: Request, recipient_id: str, kind: WebhookKind, channel: Channel | None) -> Response:
    dip, _, _ = await _prepare(request, recipient_id, channel)
    if not await dip.webhooks.delete(recipient_id, kind, channel.interface_id if channel else ""):
        raise Refusal(404, Code.PROCESSING_FAILED, "404 Not Found: no such webhook", recipient_id)
    return Response(status_code=204)


def known_channel(request: Request, interface_id: str) -> Channel:
    channel = node(request).state.catalogue.get(interface_id)
    if channel is None:
        raise Refusal(404, Code.INTERFACE_INVALID, f"404 Not Found: there is no channel {interface_id}")
    return channel


@router.post("/dip-channel/{interface_id}/pubconfig/{recipient_id}", openapi_extra=_DOCS, response_class=Response,
             summary="Register the webhook for a channel's publication", operation_id="configurePublication")
async def configure_publication(interface_id: str, recipient_id: str, request: Request) -> Response:
    return await _register(request, recipient_id, WebhookKind.PUBLICATION, known_channel(request, interface_id))


@router.delete("/dip-channel/{interface_id}/pubconfig/{recipient_id}", status_code=204, response_class=Response,
               openapi_extra={"parameters": SIGNATURE_PARAMETERS}, summary="Remove a publication webhook")
async def remove_publication(interface_id: str, recipient_id: str, request: Request) -> Response:
    return await _remove(request, recipient_id, WebhookKind.PUBLICATION, known_channel(request, interface_id))


@router.post("/statusmessage/config/{recipient_id}", openapi_extra=_DOCS, response_class=Response,
             tags=["Status Messages"], summary="Register the status-message webhook")
async def configure_status_messages(recipient_id: str, request: Request) -> Response:
    return await _register(request, recipient_id, WebhookKind.STATUS, None)


@router.delete("/statusmessage/config/{recipient_id}", status_code=204, response_class=Response,
               tags=["Status Messages"], openapi_extra={"parameters": SIGNATURE_PARAMETERS},
               summary="Remove the status-message webhook")
async def remove_status_messages(recipient_id: str, request: Request) -> Response:
    return await _remove(request, recipient_id, WebhookKind.STATUS, None)


@public_router.get("/dip/certificate", response_class=Response,
            summary="The DIP's signing certificate (PEM), to verify its webhook calls")
async def dip_certificate(request: Request) -> Response:
    """The certificate the DIP signs with; while its key is being rotated, the previous ones
    follow it in the same PEM bundle (trust every one of them until the overlap ends)."""
    return Response(await node(request).signing_keys.published(), media_type="application/x-pem-file")
