"""The MPAN address registry for the operator: load appointments (POST /admin/mpan-registry, API
contract section 2) and read one MPAN's (GET /admin/mpan-registry/{MPANCore})."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

import msgspec
import orjson
from fastapi import APIRouter, HTTPException, Query
from starlette.requests import Request
from starlette.responses import Response

from dip import ids
from dip.ingress.admin import Admin, AdminRoute
from dip.ingress.bodies import BodyTooLarge, read_body
from dip.ingress.errors import JSON
from dip.store.base import AppointmentRow

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)
_MPAN = re.compile(r"\d{13}")
MAX_REGISTRY_BODY = 64 * 1024 * 1024


class _Appointment(msgspec.Struct, forbid_unknown_fields=True):
    MPANCore: str
    role: str
    participantId: str
    effectiveFrom: str
    effectiveTo: str | None = None


class _Load(msgspec.Struct, forbid_unknown_fields=True):
    appointments: list[_Appointment]


_decoder = msgspec.json.Decoder(_Load)


def _day(value: str) -> bool:
    if len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _problems(index: int, a: _Appointment) -> list[str]:
    where = f"appointments[{index}]"
    found = []
    if not _MPAN.fullmatch(a.MPANCore):
        found.append(f"{where}.MPANCore '{a.MPANCore[:20]}' is not 13 digits")
    if not ids.is_role(a.role):
        found.append(f"{where}.role '{a.role[:10]}' is not a role ID (3 to 5 upper-case letters)")
    if not ids.is_participant_id(a.participantId):
        found.append(f"{where}.participantId '{a.participantId[:20]}' is not a 10-character DIP ID")
    if not _day(a.effectiveFrom):
        found.append(f"{where}.effectiveFrom '{a.effectiveFrom[:20]}' is not a date YYYY-MM-DD")
    if a.effectiveTo is not None and not _day(a.effectiveTo):
        found.append(f"{where}.effectiveTo '{a.effectiveTo[:20]}' is not a date YYYY-MM-DD")
    elif a.effectiveTo is not None and a.effectiveTo < a.effectiveFrom:
        found.append(f"{where}.effectiveTo is before effectiveFrom")
    return found


@router.post("/mpan-registry", status_code=201, response_class=Response, openapi_extra={
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["appointments"],
        "properties": {"appointments": {"type": "array", "items": {
            "type": "object", "required": ["MPANCore", "role", "participantId", "effectiveFrom"],
            "properties": {
                "MPANCore": {"type": "string", "example": "1200000000009"},
                "role": {"type": "string", "example": "SUP"},
                "participantId": {"type": "string", "example": "1000000001"},
                "effectiveFrom": {"type": "string", "format": "date"},
                "effectiveTo": {"type": "string", "format": "date", "nullable": True},
            }}}},
    }}}},
})
async def load_registry(request: Request, dip: Admin) -> Response:
    """Insert or replace appointments (key: MPAN, role, effectiveFrom); all or nothing per call."""
    try:
        body = await read_body(request, MAX_REGISTRY_BODY)
    except BodyTooLarge as exc:
        raise HTTPException(413, f"at most {MAX_REGISTRY_BODY} bytes per call; send the file in parts "
                                 "(dip registry load does)") from exc
    try:
        load = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPException(400, [str(exc)]) from exc
    problems = [p for i, a in enumerate(load.appointments) for p in _problems(i, a)]
    if problems:
        more = [f"... and {len(problems) - 100} more"] if len(problems) > 100 else []
        raise HTTPException(400, problems[:100] + more)
    rows = [AppointmentRow(a.MPANCore, a.role, a.effectiveFrom, a.participantId, a.effectiveTo)
            for a in load.appointments]
    version = await dip.registry_loads.load(rows)
    return Response(orjson.dumps({"loaded": len(rows), "registryVersion": version}), status_code=201,
                    media_type=JSON)


@router.get("/mpan-registry/{mpan}", response_class=Response, responses={
    200: {"description": "the MPAN's appointments, past and present (and who held each role on `date`)",
          "content": {JSON: {}}},
    400: {"description": "not a 13-digit MPAN core, or not a date"},
})
async def read_registry(mpan: str, dip: Admin, day: Annotated[str | None, Query(
        alias="date", description="YYYY-MM-DD: also answer who held each role on this day, as routing would")] = None,
                        ) -> Response:
    """Every appointment of one MPAN; with ``date``, the holders of each role on that day."""
    if not _MPAN.fullmatch(mpan):
        raise HTTPException(400, f"MPANCore '{mpan[:20]}' is not 13 digits")
    if day is not None and not _day(day):
        raise HTTPException(400, f"date '{day[:20]}' is not a date YYYY-MM-DD")
    view = await dip.views.mpan(mpan, day)
    found: dict[str, object] = {"MPANCore": mpan, "appointments": [
        {"role": r.role, "participantId": r.participant_id, "effectiveFrom": r.effective_from,
         "effectiveTo": r.effective_to} for r in view.appointments]}
    if day is not None:
        found |= {"date": day, "holders": view.holders}
    return Response(orjson.dumps(found), media_type=JSON)
