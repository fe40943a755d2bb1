"""A participant's certificates over their lives: issued by the DIP from a CSR (outside
production), listed, rotated with an overlap (docs/security.md "Certificate service").
Registering and revoking one is dip.admin.participants'."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives import serialization

from dip.admin.certificate_authority import CertificateAuthority
from dip.admin.participants import Participants
from dip.state import SharedState
from dip.store.base import CertificateRow, DirectoryStore

MAX_OVERLAP_DAYS = 90


class NoCertificateAuthority(LookupError):
    """This DIP issues no certificates (production, or no --ca-cert/--ca-key)."""


class NotInForce(LookupError):
    """The participant has no such certificate in force."""


def _now() -> int:
    return int(time.time() * 1_000_000)


class Certificates:
    def __init__(self, store: DirectoryStore, state: SharedState, participants: Participants,
                 authority: CertificateAuthority | None) -> None:
        self._store = store
        self._state = state
        self._participants = participants
        self.authority = authority

    async def of(self, participant_id: str) -> list[CertificateRow]:
        return await self._store.certificates_of(participant_id)

    async def issue(self, participant_id: str, csr_pem: str, days: int) -> tuple[str, str]:
        """A certificate for the participant from its CSR, registered to it: (fingerprint, PEM).
        Raises NoCertificateAuthority, or BadRequestForCertificate for a CSR not fit to sign."""
        if self.authority is None:
            raise NoCertificateAuthority("this DIP issues no certificates: in production participants' certificates "
                                         "come from the industry CA; elsewhere start it with --ca-cert/--ca-key")
        cert = self.authority.issue(csr_pem, participant_id, days)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        _, fp = await self._participants.register_certificate(participant_id, pem)
        await self._store.mark_issued_by_dip(fp)
        return fp, pem

    async def rotate(self, participant_id: str, old: str, new_pem: str, overlap_days: float) -> int:
        """``new_pem`` (registered already) replaces ``old``, which keeps working ``overlap_days``
        more, then stops on every node; when it stops. Raises NotInForce."""
        until = _now() + int(overlap_days * 86_400 * 1_000_000)
        if not await self._store.retire_certificate(participant_id, old.lower(), until):
            raise NotInForce(f"'{participant_id}' has no certificate '{old[:16]}...' in force")
        await self._state.reload()
        return until

    async def in_force(self, participant_id: str, fp: str) -> bool:
        return any(r.fingerprint == fp.lower() and r.revoked_at is None and (r.retires_at is None
                                                                             or r.retires_at > _now())
                   for r in await self._store.certificates_of(participant_id))
