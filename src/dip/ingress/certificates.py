"""The certificate service's operator routes (API contract section 5, extended; docs/security.md
"Certificate service"): list a participant's certificates, issue one from a CSR (the DIP as the
test environments' CA), rotate one with an overlap. Registering and revoking are in
dip.ingress.admin."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response

from dip import ids
from dip.admin.certificate_authority import MAX_DAYS, BadRequestForCertificate
from dip.admin.certificates import MAX_OVERLAP_DAYS, NoCertificateAuthority, NotInForce
from dip.admin.participants import CertificateTaken
from dip.exceptions import SignatureError
from dip.ingress.admin import Admin, AdminRoute, active_participant
from dip.signing import load_certificate_pem

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


def _stamp(micros: int | None) -> str | None:
    return None if micros is None else ids.timestamp(datetime.fromtimestamp(micros / 1_000_000, UTC))


class IssueIn(BaseModel):
    csrPem: str = Field(min_length=1, max_length=20_000)
    days: int = Field(default=365, ge=1, le=MAX_DAYS)


class IssuedOut(BaseModel):
    participantId: str
    fingerprint: str
    certificatePem: str
    notAfter: str


class RotateIn(BaseModel):
    csrPem: str | None = Field(default=None, min_length=1, max_length=20_000)
    certificatePem: str | None = Field(default=None, min_length=1, max_length=20_000)
    days: int = Field(default=365, ge=1, le=MAX_DAYS)
    overlapDays: float = Field(default=7, ge=0, le=MAX_OVERLAP_DAYS)

    @model_validator(mode="after")
    def one_source(self) -> RotateIn:
        if (self.csrPem is None) == (self.certificatePem is None):
            raise ValueError("give csrPem (the DIP issues the new certificate) or certificatePem (one issued by "
                             "the industry CA), not both")
        return self


class RotatedOut(IssuedOut):
    replaces: str
    replacedWorksUntil: str


class CertificateState(BaseModel):
    fingerprint: str
    subject: str
    issuer: str
    notAfter: str
    createdAt: str
    issuedByDip: bool
    revokedAt: str | None
    retiresAt: str | None


@router.get("/participants/{participant_id}/certificates", response_model=list[CertificateState])
async def list_certificates(participant_id: str, dip: Admin) -> list[CertificateState]:
    """Every certificate the participant was ever given, with when it was revoked or stops
    working (a rotation's overlap)."""
    if dip.state.directory.participants.get(participant_id) is None:
        raise HTTPException(404, f"no participant '{participant_id}'")
    out = []
    for row in await dip.certificates.of(participant_id):
        cert = load_certificate_pem(row.pem)
        out.append(CertificateState(fingerprint=row.fingerprint, subject=cert.subject.rfc4514_string(),
                                    issuer=cert.issuer.rfc4514_string(), notAfter=_stamp(row.not_after) or "",
                                    createdAt=_stamp(row.created_at) or "", issuedByDip=row.issued_by_dip,
                                    revokedAt=_stamp(row.revoked_at), retiresAt=_stamp(row.retires_at)))
    return out


async def _new_certificate(dip: Admin, participant_id: str, csr_pem: str | None, cert_pem: str | None,
                           days: int) -> tuple[str, str]:
    try:
        if csr_pem is not None:
            return await dip.certificates.issue(participant_id, csr_pem, days)
        assert cert_pem is not None
        _, fp = await dip.participants.register_certificate(participant_id, cert_pem)
        return fp, cert_pem
    except NoCertificateAuthority as exc:
        raise HTTPException(404, str(exc)) from exc
    except (BadRequestForCertificate, SignatureError) as exc:
        raise HTTPException(400, str(exc)) from exc
    except CertificateTaken as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/participants/{participant_id}/certificates/issue", status_code=201, response_model=IssuedOut,
             responses={400: {"description": "not a CSR, not signed by its key, or a weak key"},
                        404: {"description": "no such participant, or this DIP issues no certificates"}})
async def issue_certificate(participant_id: str, body: IssueIn, dip: Admin) -> IssuedOut:
    """Issue the participant a client certificate from its CSR (outside production, with
    --ca-cert/--ca-key) and register it: it serves mutual TLS and request signatures at once."""
    active_participant(dip, participant_id)
    fp, pem = await _new_certificate(dip, participant_id, body.csrPem, None, body.days)
    return IssuedOut(participantId=participant_id, fingerprint=fp, certificatePem=pem,
                     notAfter=load_certificate_pem(pem).not_valid_after_utc.isoformat())


@router.post("/participants/{participant_id}/certificates/{sha256}/rotate", status_code=201,
             response_model=RotatedOut,
             responses={404: {"description": "no such participant or certificate in force, or no CA"}})
async def rotate_certificate(participant_id: str, sha256: str, body: RotateIn, dip: Admin) -> RotatedOut:
    """Replace a certificate: the new one (issued from ``csrPem``, or ``certificatePem`` from the
    industry CA) works at once; the old one keeps working ``overlapDays`` more (0: stops now)."""
    active_participant(dip, participant_id)
    if not await dip.certificates.in_force(participant_id, sha256):
        raise HTTPException(404, f"'{participant_id}' has no certificate '{sha256[:16]}...' in force")
    fp, pem = await _new_certificate(dip, participant_id, body.csrPem, body.certificatePem, body.days)
    if fp == sha256.lower():
        raise HTTPException(409, "the new certificate is the one it replaces")
    try:
        until = await dip.certificates.rotate(participant_id, sha256, pem, body.overlapDays)
    except NotInForce as exc:
        raise HTTPException(404, str(exc)) from exc
    return RotatedOut(participantId=participant_id, fingerprint=fp, certificatePem=pem,
                      notAfter=load_certificate_pem(pem).not_valid_after_utc.isoformat(), replaces=sha256.lower(),
                      replacedWorksUntil=_stamp(until) or "")


@router.get("/ca", response_class=Response, responses={404: {"description": "this DIP issues no certificates"}})
async def ca_certificate(dip: Admin) -> Response:
    """The CA certificate the DIP issues participants' certificates under (PEM): the client CA of
    mutual TLS (--tls-client-ca) in the environments where the DIP is the CA."""
    if dip.certificates.authority is None:
        raise HTTPException(404, "this DIP issues no certificates")
    return Response(dip.certificates.authority.pem, media_type="application/x-pem-file")
