"""Errors at the HTTP edge: raised by routes and what they call, answered in one place.

``Refusal`` carries what a StandardResponse (API v2.1.0) needs: status, MSG code, help text,
the recipient (the caller) and any headers; the handler installed by ``install`` writes the
body. ``/validate`` answers its refusals as a bare JSON string (``PlainRefusal``), as the
official API does. The operator's routes use FastAPI's HTTPException (``{"detail": ...}``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from dip import ids
from dip.codes import Code
from dip.exceptions import StoreError, UnstorableValue
from dip.responses import item, standard_response

log = logging.getLogger("dip.ingress")
JSON = "application/json"


class Refusal(Exception):
    """A request refused: answered ``status`` with a StandardResponse of one item."""

    def __init__(self, status: int, code: Code, help_text: str, recipient_id: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(help_text)
        self.status = status
        self.code = code
        self.help = help_text
        self.recipient_id = recipient_id
        self.headers = headers


class PlainRefusal(Exception):
    """A refusal answered with a JSON string as the whole body (``/validate``)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def standard_error(dip_id: str, refusal: Refusal) -> Response:
    stamp = ids.timestamp(datetime.now(UTC))
    body = standard_response([item(code=refusal.code, sent_timestamp=stamp, sender_id=dip_id,
                                   recipient_id=refusal.recipient_id, help_text=refusal.help)], stamp)
    return Response(body, status_code=refusal.status, media_type=JSON, headers=refusal.headers)


def install(app: FastAPI, dip_id: str) -> None:
    """The handlers of every error a route may raise: none ends as a 500."""

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        return standard_error(dip_id, exc)

    @app.exception_handler(PlainRefusal)
    async def refused_plainly(request: Request, exc: PlainRefusal) -> Response:
        return Response(orjson.dumps(exc.text), status_code=exc.status, media_type=JSON)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'/'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=400)

    @app.exception_handler(UnstorableValue)
    async def unstorable(request: Request, exc: UnstorableValue) -> Response:
        # PostgreSQL refuses a NUL in text, which SQLite would have stored: the request's fault
        log.warning("refused a value on %s %s: %s", request.method, request.url.path, exc)
        text = f"a value in the request cannot be stored: {exc}"
        if request.url.path.startswith("/admin/"):
            return JSONResponse({"detail": [text]}, status_code=400)
        return standard_error(dip_id, Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {text}"))

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> Response:
        # one line, not uvicorn's traceback of the whole stack: a client may always go away
        log.info("%s %s: the client went away before its request was read", request.method, request.url.path)
        return Response(status_code=400)  # nobody reads it

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> Response:
        # The database is down or failing: nothing was acknowledged, so the sender may retry.
        log.error("store error on %s %s: %s", request.method, request.url.path, exc)
        return standard_error(dip_id, Refusal(
            503, Code.PROCESSING_FAILED,
            "503 Service Unavailable: the DIP cannot reach its database; nothing in this request was "
            "accepted. Retry with back-off.", headers={"Retry-After": "5"}))
