"""``/admin/signing-key``: the DIP's own signing key, and its rotation with an overlap
(docs/security.md "The DIP's signing key")."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from dip import ids
from dip.admin.signing_key import KeyFromFiles
from dip.ingress.admin import Admin, AdminRoute
from dip.signing import fingerprint, load_certificate_pem

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


class SigningKeyOut(BaseModel):
    source: str  # "database" or "files"
    fingerprint: str
    published: list[str]  # fingerprints GET /dip/certificate serves, the signing one first


class RotateIn(BaseModel):
    overlapDays: float = Field(default=7, ge=0, le=90)


class RotatedOut(BaseModel):
    fingerprint: str
    certificatePem: str
    previousPublishedUntil: str


def _fingerprints(bundle: bytes) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(bundle)]


@router.get("/signing-key", response_model=SigningKeyOut)
async def signing_key(dip: Admin) -> SigningKeyOut:
    """Where the DIP's signing key comes from, and the certificates it publishes."""
    return SigningKeyOut(source="files" if dip.signing_keys.from_files else "database",
                         fingerprint=fingerprint(load_certificate_pem(dip.signing_cert_pem)),
                         published=_fingerprints(await dip.signing_keys.published()))


@router.post("/signing-key/rotate", status_code=201, response_model=RotatedOut,
             responses={409: {"description": "the key comes from files, or was rotated meanwhile"}})
async def rotate_signing_key(body: RotateIn, dip: Admin) -> RotatedOut:
    """A new key (kept in the database) signs from now on, on every node within a state poll;
    ``GET /dip/certificate`` serves the old certificate after the new one for ``overlapDays``."""
    try:
        fp, pem, until = await dip.signing_keys.rotate(body.overlapDays)
    except KeyFromFiles as exc:
        raise HTTPException(409, str(exc)) from exc
    return RotatedOut(fingerprint=fp, certificatePem=pem,
                      previousPublishedUntil=ids.timestamp(datetime.fromtimestamp(until / 1_000_000, UTC)))
