"""Paths on ingress. Case-insensitive (API contract): ``/DIP-Channel/if-005`` is ``/dip-channel/IF-005``.

Only the participant API's fixed path words are lower-cased and interface IDs upper-cased;
participant IDs and the operator's /admin paths are left exactly as sent. A path or query
carrying a NUL character is refused (400) before any route sees it: no identifier holds one, and
PostgreSQL cannot store or compare text that does (SQLite would, so the stores would disagree).
"""

from __future__ import annotations

import re
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ROOTS = {"dip-channel", "statusmessage", "validate", "messages"}
_WORDS = {"dip-channel", "pubconfig", "replay", "requeue", "statusmessage", "config", "validate", "messages"}
_INTERFACE = re.compile(r"^(if|rep)-\d{3}[a-z]?$", re.IGNORECASE)


def normalise(path: str) -> str:
    parts = path.split("/")
    if len(parts) < 2 or parts[1].lower() not in _ROOTS:
        return path
    out = []
    for part in parts:
        lowered = part.lower()
        if lowered in _WORDS:
            out.append(lowered)
        elif _INTERFACE.fullmatch(part):
            out.append(part.upper())
        else:
            out.append(part)
    return "/".join(out)


SENT_PATH = "dip.sent_path"  # scope key: the request path exactly as sent (bytes), when rewritten


class CaseInsensitivePaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"] or _has_nul(scope.get("query_string", b"")):
                await _refuse(send, "the request's path or query carries a NUL character")
                return
            path = normalise(scope["path"])
            if path != scope["path"]:
                # the path as sent stays available: a signature covers the URL the caller sent
                sent = scope.get("raw_path") or scope["path"].encode("utf-8")
                scope = dict(scope, path=path, raw_path=path.encode("utf-8"), **{SENT_PATH: sent})
        await self.app(scope, receive, send)


def _has_nul(query: bytes) -> bool:
    return b"\x00" in query or b"%00" in query


async def _refuse(send: Send, reason: str) -> None:
    body = orjson.dumps({"detail": [reason]})
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


REQUEST_ID = "dip.request_id"  # scope key: the ID this request is known by (X-Request-ID)


class RequestIds:
    """Every response carries ``X-Request-ID``: an ID the DIP gives the request (never the
    caller's), for a participant to quote to the service desk and for the logs (API contract
    section 5)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope = dict(scope, **{REQUEST_ID: request_id})
        header = (b"x-request-id", request_id.encode("ascii"))

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), header])  # type: ignore[assignment]
            await send(message)

        await self.app(scope, receive, stamped)
