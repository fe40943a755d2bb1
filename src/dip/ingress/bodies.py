"""Request bodies within limits, and their media type."""

from __future__ import annotations

import hashlib

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dip.ingress.errors import JSON


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) past ``limit`` bytes without reading it all.

    The SHA-256 the signature check needs is computed chunk by chunk while the body arrives and
    kept on ``request.state.body_sha256``, so a 200 MB batch is not hashed again afterwards.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    digest = hashlib.sha256()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        digest.update(chunk)
        chunks.append(chunk)
    request.state.body_sha256 = digest.digest()
    return b"".join(chunks)


def is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == JSON or (content_type.startswith("application/") and content_type.endswith("+json"))


class _Oversized(Exception):
    pass


class OperatorBodyLimit:
    """The operator routes' size limit, before any parsing: their bodies (participants, channel
    definitions, registry loads, redrives) are parsed by FastAPI or read whole, so a body past
    ``limit`` gets 413 from here, by its declared length before a byte of it is read, or as soon
    as it passes the limit while it arrives. Participant routes have limits of their own
    (``read_body``), answered in their own shape."""

    def __init__(self, app: ASGIApp, limit: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _Oversized
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _Oversized:
            if not started:
                await _too_large(send, self.limit)


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps({"detail": [f"413 Payload Too Large: an operator request may be at most {limit} bytes"]})
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
