"""``GET /admin/audit``: the API activity log for a time range, a page at a time (API contract
section 5; docs/security.md "API activity log"). Every operator role may read it; the entries'
bodies are not logged again when it is read (the log would copy itself)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query
from starlette.requests import Request
from starlette.responses import Response

from dip.audit.export import MAX_PAGE, BadCursor, BadInstant, as_json, instant
from dip.ingress.activity import capture_of
from dip.ingress.admin import Admin, AdminRoute
from dip.ingress.errors import JSON

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


@router.get("/audit", response_class=Response, responses={
    200: {"description": '{"entries": [OpenTelemetry log records, each with "dip.audit.hash"], "next": cursor or '
                         'null}', "content": {JSON: {}}},
    400: {"description": "a bad date-time or cursor"},
})
async def audit(request: Request, dip: Admin,
                start: Annotated[str | None, Query(alias="from", description="from (inclusive)")] = None,
                end: Annotated[str | None, Query(alias="to", description="up to (exclusive)")] = None,
                cursor: Annotated[str | None, Query(description="next of the previous page")] = None,
                limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500) -> Response:
    """Every API request the DIP logged between two moments, oldest first (then by chain)."""
    capture = capture_of(request.scope)
    if capture is not None:
        capture.omit_body = "entries of the activity log itself"
    try:
        rows, following = await dip.activity_reader.page(instant(start, "from", 0), instant(end, "to", 2 ** 62),
                                                         cursor, limit)
    except (BadCursor, BadInstant) as exc:
        raise HTTPException(400, str(exc)) from exc
    body = orjson.dumps({"entries": [as_json(r) for r in rows], "next": following})
    return Response(body, media_type=JSON)
