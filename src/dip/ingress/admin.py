"""The operator's API (this project's own; API contract section 2). Admin API key, no signature."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from dip import ids
from dip.admin.participants import CertificateTaken
from dip.catalogue import ChannelDefinition
from dip.directory import Operator, OperatorRole, Participant
from dip.exceptions import CatalogueError, SignatureError
from dip.ingress.activity import capture_of
from dip.ingress.auth import node
from dip.ingress.bodies import BodyTooLarge, read_body
from dip.ingress.errors import JSON
from dip.node import Node

_ROLE = re.compile(ids.ROLE_PATTERN)


_READS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("dip.admin")


def operator_of(request: Request) -> Operator:
    """The operator whose key the request carries (401 without one), allowed what it asks: any
    operator reads; only administrators change anything (403 for support and auditors)."""
    key = request.headers.get("x-api-key")
    operator = node(request).state.directory.operator_for_key(key) if key else None
    if operator is None:
        raise HTTPException(401, "an operator's X-API-Key is required")
    capture = capture_of(request.scope)
    if capture is not None:
        capture.identify("operator", operator.id, operator.role.value)
    if request.method not in _READS and not operator.may_change:
        raise HTTPException(403, f"operator {operator.id} is {operator.role.value}: it may read, not change")
    return operator


def require_admin(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Node:
    operator_of(request)
    return node(request)


class AdminRoute(APIRoute):
    """An operator route: the operator's key and role are checked before anything else, the
    request body included, so a caller without a key learns nothing from a malformed body (401,
    not 400). Every change is logged with who made it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admin_first(request: Request) -> Response:
            operator = operator_of(request)
            response = await handler(request)
            if request.method not in _READS:
                log.info("operator %s (%s): %s %s -> %d", operator.id, operator.role.value, request.method,
                         request.url.path, response.status_code)
            return response

        return admin_first


Admin = Annotated[Node, Depends(require_admin)]
router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


class ParticipantIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")  # no control characters
    roles: list[Annotated[str, Field(pattern=ids.ROLE_PATTERN)]] = Field(min_length=1)


class ParticipantOut(BaseModel):
    participantId: str
    name: str
    roles: list[str]
    active: bool


class ApiKeyOut(BaseModel):
    apiKey: str
    keyId: str


class ApiKeyState(BaseModel):
    keyId: str
    createdAt: str
    revokedAt: str | None


class CertificateIn(BaseModel):
    certificatePem: str = Field(min_length=1, max_length=20_000)


class CertificateOut(BaseModel):
    participantId: str
    fingerprint: str


class RolesIn(BaseModel):
    roles: list[Annotated[str, Field(pattern=ids.ROLE_PATTERN)]]


class ConnectionProviderOut(BaseModel):
    participantId: str
    dcpId: str
    roles: list[str]


def _participant_id(value: str) -> str:
    if not ids.is_participant_id(value):
        raise HTTPException(400, f"'{value}' is not a 10-character DIP participant ID")
    return value


def _out(p: Participant) -> ParticipantOut:
    return ParticipantOut(participantId=p.id, name=p.name, roles=sorted(p.roles), active=p.active)


def active_participant(dip: Node, participant_id: str) -> Participant:
    p = dip.state.directory.active(participant_id)
    if p is None:
        raise HTTPException(404, f"no on-boarded participant '{participant_id}'")
    return p


@router.put("/participants/{participant_id}", response_model=ParticipantOut,
            responses={201: {"model": ParticipantOut}})
async def put_participant(participant_id: str, body: ParticipantIn, dip: Admin, response: Response) -> ParticipantOut:
    _participant_id(participant_id)
    created = await dip.participants.put(participant_id, body.name, body.roles)
    response.status_code = 201 if created else 200
    return _out(dip.state.directory.participants[participant_id])


@router.get("/participants/{participant_id}", response_model=ParticipantOut)
async def get_participant(participant_id: str, dip: Admin) -> ParticipantOut:
    p = dip.state.directory.participants.get(participant_id)
    if p is None:
        raise HTTPException(404, f"no participant '{participant_id}'")
    return _out(p)


@router.delete("/participants/{participant_id}", status_code=204, response_class=Response)
async def offboard_participant(participant_id: str, dip: Admin) -> Response:
    active_participant(dip, participant_id)
    await dip.participants.offboard(participant_id)
    return Response(status_code=204)


@router.get("/participants/{participant_id}/webhooks", response_class=Response)
async def list_webhooks(participant_id: str, dip: Admin) -> Response:
    """The participant's registered webhooks (publication ones per channel, and the status one)."""
    hooks = [
        {"kind": w.kind, "interfaceID": w.interface_id or None, "callbackURL": w.url,
         "maxMessageCount": w.max_message_count, "maxPayloadSize": w.max_payload_kb, "registeredBy": w.registered_by}
        for (pid, _, _), w in sorted(dip.state.directory.webhooks.items()) if pid == participant_id
    ]
    return Response(orjson.dumps(hooks), media_type=JSON)


@router.post("/participants/{participant_id}/api-keys", status_code=201, response_model=ApiKeyOut)
async def create_api_key(participant_id: str, dip: Admin) -> ApiKeyOut:
    active_participant(dip, participant_id)
    key, key_id = await dip.participants.new_api_key(participant_id)
    return ApiKeyOut(apiKey=key, keyId=key_id)


@router.get("/participants/{participant_id}/api-keys", response_model=list[ApiKeyState])
async def list_api_keys(participant_id: str, dip: Admin) -> list[ApiKeyState]:
    """Every key the participant was given (never the key itself), in force or revoked."""
    if participant_id not in dip.state.directory.participants:
        raise HTTPException(404, f"no participant '{participant_id}'")
    return [ApiKeyState(keyId=k, createdAt=_stamp(created), revokedAt=_stamp(revoked) if revoked else None)
            for k, created, revoked in await dip.participants.api_keys(participant_id)]


@router.delete("/participants/{participant_id}/api-keys/{key_id}", status_code=204, response_class=Response,
               responses={404: {"description": "the participant has no such key in force"}})
async def revoke_api_key(participant_id: str, key_id: str, dip: Admin) -> Response:
    """Revoke one key for good; the participant's other keys and certificates stay in force."""
    if not await dip.participants.revoke_api_key(participant_id, key_id):
        raise HTTPException(404, f"'{participant_id}' has no API key '{key_id}' in force")
    return Response(status_code=204)


@router.delete("/participants/{participant_id}/certificates/{sha256}", status_code=204, response_class=Response,
               responses={404: {"description": "the participant has no such certificate in force"}})
async def revoke_certificate(participant_id: str, sha256: str, dip: Admin) -> Response:
    """Revoke one certificate for good (by the hex SHA-256 of its DER): signatures made with it are
    refused from now on, and it cannot be registered again."""
    if not await dip.participants.revoke_certificate(participant_id, sha256):
        raise HTTPException(404, f"'{participant_id}' has no certificate '{sha256[:16]}...' in force")
    return Response(status_code=204)


def _stamp(micros: int) -> str:
    return ids.timestamp(datetime.fromtimestamp(micros / 1_000_000, UTC))


@router.post("/participants/{participant_id}/certificates", status_code=201, response_model=CertificateOut)
async def register_certificate(participant_id: str, body: CertificateIn, dip: Admin,
                               response: Response) -> CertificateOut:
    active_participant(dip, participant_id)
    try:
        created, fingerprint = await dip.participants.register_certificate(participant_id, body.certificatePem)
    except SignatureError as exc:
        raise HTTPException(400, str(exc)) from exc
    except (CertificateTaken, ValueError) as exc:
        raise HTTPException(409, str(exc)) from exc
    response.status_code = 201 if created else 200
    return CertificateOut(participantId=participant_id, fingerprint=fingerprint)


@router.put("/participants/{participant_id}/connection-providers/{dcp_id}", response_model=ConnectionProviderOut)
async def put_connection_provider(participant_id: str, dcp_id: str, body: RolesIn, dip: Admin) -> ConnectionProviderOut:
    participant = active_participant(dip, participant_id)
    dcp = active_participant(dip, dcp_id)
    if "DCP" not in dcp.roles:
        raise HTTPException(400, f"'{dcp_id}' does not hold the DCP (DIP Connection Provider) role")
    missing = set(body.roles) - participant.roles
    if missing:
        raise HTTPException(400, f"'{participant_id}' does not hold role(s) {', '.join(sorted(missing))}")
    await dip.participants.put_connection_provider(participant_id, dcp_id, body.roles)
    return ConnectionProviderOut(participantId=participant_id, dcpId=dcp_id, roles=sorted(set(body.roles)))


_CHANNEL_DOCS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "Channel definition "
                                                    "(API contract section 2; see docs/catalogue.md)"}}},
    }
}


@router.put("/channels/{interface_id}", openapi_extra=_CHANNEL_DOCS, response_class=Response)
async def put_channel(interface_id: str, request: Request, dip: Admin) -> Response:
    try:
        body = await read_body(request, 64 * 1024 * 1024)
    except BodyTooLarge as exc:
        raise HTTPException(413, "a channel definition may be at most 64 MB") from exc
    try:
        created, channel = await dip.channels.put(interface_id.upper(), body)
    except CatalogueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return Response(channel.to_json(), status_code=201 if created else 200, media_type=JSON)


@router.get("/channels", response_class=Response)
async def list_channels(dip: Admin) -> Response:
    channels = sorted(dip.state.catalogue.channels.values(), key=lambda c: c.interface_id)
    summary = [
        {"interfaceID": c.interface_id, "publicationID": c.publication_id, "title": c.definition.title,
         "officialSchemas": bool(c.definition.payloadSchemas)}
        for c in channels
    ]
    return Response(orjson.dumps(summary), media_type=JSON)


@router.get("/channels/{interface_id}", response_class=Response)
async def get_channel(interface_id: str, dip: Admin) -> Response:
    channel = dip.state.catalogue.get(interface_id)
    if channel is None:
        raise HTTPException(404, f"no channel {interface_id}")
    return Response(channel.to_json(), media_type=JSON)


@router.delete("/channels/{interface_id}", status_code=204, response_class=Response)
async def delete_channel(interface_id: str, dip: Admin) -> Response:
    if not await dip.channels.delete(interface_id.upper()):
        raise HTTPException(404, f"no channel {interface_id}")
    return Response(status_code=204)


__all__ = ["ChannelDefinition", "router"]


class OperatorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: OperatorRole


class OperatorOut(BaseModel):
    operatorId: str
    apiKey: str


class OperatorState(BaseModel):
    operatorId: str
    name: str
    role: str
    createdAt: str
    revokedAt: str | None


@router.post("/operators", status_code=201, response_model=OperatorOut)
async def add_operator(body: OperatorIn, dip: Admin) -> OperatorOut:
    """A person's operator key, with a role: administrator (changes anything), support or auditor
    (read only). The key is shown once."""
    operator_id, key = await dip.operators.add(body.name, body.role)
    return OperatorOut(operatorId=operator_id, apiKey=key)


@router.get("/operators", response_model=list[OperatorState])
async def list_operators(dip: Admin) -> list[OperatorState]:
    return [OperatorState(operatorId=i, name=n, role=r, createdAt=_stamp(c), revokedAt=_stamp(v) if v else None)
            for i, n, r, c, v in await dip.operators.listed()]


@router.delete("/operators/{operator_id}", status_code=204, response_class=Response,
               responses={404: {"description": "no such operator in force"}})
async def revoke_operator(operator_id: str, dip: Admin) -> Response:
    if not await dip.operators.revoke(operator_id):
        raise HTTPException(404, f"no operator '{operator_id}' in force")
    return Response(status_code=204)
