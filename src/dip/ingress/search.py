"""Search (API contract section 4): ``GET /messages`` for participants (signed, their own
messages), ``GET /admin/messages`` for the operator (every message). dip.archive.search."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dip.archive.search import SearchProblem, parse_search
from dip.codes import Code
from dip.ingress.admin import Admin, AdminRoute
from dip.ingress.archive import within_limit
from dip.ingress.auth import KeyFirst, authenticate, node
from dip.ingress.errors import JSON, Refusal
from dip.ingress.openapi_docs import SIGNATURE_PARAMETERS

router = APIRouter(tags=["Search"], route_class=KeyFirst)
admin_router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)

_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("transactionID", "the DIP's transaction ID"),
        ("senderUniqueReference", "the sender's unique reference"),
        ("correlationID", "a workflow: the request and every reply that carries its correlation ID"),
        ("MPAN", "an MPAN core (13 digits)"),
        ("channel", "an interface ID, e.g. IF-021"),
        ("eventCode", "e.g. [ActivePower]"),
        ("from", "accepted from (ISO 8601 with offset)"),
        ("to", "accepted up to (ISO 8601 with offset, inclusive)"),
        ("limit", "hits per page, 1 to 1,000 (default 100)"),
        ("cursor", "nextCursor of the previous page"),
    )
]
_ANSWER = {"200": {"description": '{"items": [{"transactionID", "channel", "eventCode", "senderID", '
                                  '"senderUniqueReference", "correlationID", "MPAN", "acceptedAt", "recipients": '
                                  '[{"participantId", "role", "state"}]}], "nextCursor"}',
                   "content": {JSON: {}}}}


def _now() -> int:
    return int(time.time() * 1_000_000)


@router.get("/messages", response_class=Response, summary="Search your messages (sent or received)",
            operation_id="searchMessages",
            openapi_extra={"parameters": [*SIGNATURE_PARAMETERS, *_PARAMETERS], "responses": _ANSWER})
async def search_messages(request: Request) -> Response:
    dip = node(request)
    caller = authenticate(dip, request, b"")
    viewer = caller.principal.id
    await within_limit(dip, caller)
    try:
        page = await dip.search(parse_search(request.query_params, operator=False), viewer, _now())
    except SearchProblem as exc:
        raise Refusal(400, Code.SCHEMA_FAILURE, f"400 Bad Request: {exc}", viewer) from exc
    return Response(orjson.dumps(page), media_type=JSON)


@admin_router.get("/messages", response_class=Response, summary="Search every message",
                  openapi_extra={"parameters": [*_PARAMETERS, {
                      "name": "participant", "in": "query", "required": False, "schema": {"type": "string"},
                      "description": "only what this participant sent or received"}], "responses": _ANSWER})
async def search_all(request: Request, dip: Admin) -> Response:
    try:
        page = await dip.search(parse_search(request.query_params, operator=True), None, _now())
    except SearchProblem as exc:
        raise HTTPException(400, str(exc)) from exc
    return Response(orjson.dumps(page), media_type=JSON)
