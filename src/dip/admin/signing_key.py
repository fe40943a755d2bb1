"""The DIP's own signing key (docs/security.md "The DIP's signing key"): where it comes from,
what ``GET /dip/certificate`` publishes, and its rotation with an overlap.

From files (``--signing-key``/``--signing-cert``, the same on every node) it is rotated by
restarting with new files and ``--previous-signing-cert``; kept in the database (the default)
it is rotated by ``POST /admin/signing-key/rotate``: a new key signs from then on, on every node
within a state poll, while the old certificate stays published until the overlap ends.
"""

from __future__ import annotations

import logging
import os
import time

from dip.config import Settings
from dip.exceptions import ConfigurationError, SignatureError
from dip.signing import Signer, fingerprint, generate_identity, load_certificate_pem, load_private_key_pem
from dip.store.base import Store

log = logging.getLogger("dip.admin")


def _now() -> int:
    return int(time.time() * 1_000_000)


class KeyFromFiles(RuntimeError):
    """The key comes from files: it is rotated by restarting with new ones."""


class SigningKeys:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self.signer: Signer | None = None
        self.published_pem = b""  # the signing certificate, then the previous ones still in their overlap
        self._previous_files: list[bytes] = []
        self._recheck_at: int | None = None  # when the first retired certificate's overlap ends

    @property
    def from_files(self) -> bool:
        return self._settings.signing_key is not None

    def _name(self) -> str:
        return f"DIP {self._settings.environment} {self._settings.dip_id}"

    async def load(self) -> Signer:
        s = self._settings
        if s.signing_key is not None and s.signing_cert is not None:
            password = os.environ.get("DIP_SIGNING_KEY_PASSWORD")
            try:
                key = load_private_key_pem(s.signing_key.read_bytes(), password.encode() if password else None)
                cert_pem = s.signing_cert.read_bytes()
                cert = load_certificate_pem(cert_pem)
            except (OSError, SignatureError) as exc:
                raise ConfigurationError(f"--signing-key/--signing-cert: {exc}") from exc
            if cert.public_key() != key.public_key():
                raise ConfigurationError("--signing-cert is not the certificate of --signing-key's key")
            self.signer = Signer(key, cert_pem)
        else:
            key_pem, new_cert = generate_identity(self._name(), days=3650)
            stored_key, stored_cert = await self._store.dip_identity(key_pem.decode("ascii"),
                                                                     new_cert.decode("ascii"), _now())
            self.signer = Signer(load_private_key_pem(stored_key.encode("ascii")), stored_cert.encode("ascii"))
        self._previous_files = []
        for path in s.previous_signing_certs:
            try:
                self._previous_files.append(path.read_bytes())
                load_certificate_pem(self._previous_files[-1])
            except (OSError, SignatureError) as exc:
                raise ConfigurationError(f"--previous-signing-cert {path}: {exc}") from exc
        await self._publish()
        await self._store.record_signing_certificate(fingerprint(load_certificate_pem(self.signer.cert_pem)),
                                                     self.signer.cert_pem.decode("ascii"), _now())
        return self.signer

    async def published(self) -> bytes:
        """What GET /dip/certificate serves now (a certificate leaves when its overlap ends)."""
        if self._recheck_at is not None and _now() >= self._recheck_at:
            await self._publish()
        return self.published_pem

    async def _publish(self) -> None:
        assert self.signer is not None
        now = _now()
        rows = [] if self.from_files else await self._store.retired_certificates(now)
        retired = [pem.encode("ascii") for pem, _ in rows]
        self._recheck_at = min((until for _, until in rows), default=None)
        self.published_pem = b"".join(p if p.endswith(b"\n") else p + b"\n"
                                      for p in [self.signer.cert_pem, *self._previous_files, *retired])

    async def reload(self) -> None:
        """After a state change: a rotation made on another node signs here too from now on."""
        if self.signer is None or self.from_files:
            return
        key_pem, cert_pem = await self._store.dip_identity("", "", _now())  # (never inserts: one exists)
        if cert_pem.encode("ascii") != self.signer.cert_pem:
            self.signer.key = load_private_key_pem(key_pem.encode("ascii"))  # the key before the certificate:
            self.signer.cert_pem = cert_pem.encode("ascii")  # a call signed between them fails, not lies
            log.info("the DIP's signing key was rotated: signing with %s",
                     fingerprint(load_certificate_pem(self.signer.cert_pem))[:16])
        await self._publish()

    async def rotate(self, overlap_days: float) -> tuple[str, str, int]:
        """A new key signs from now on; the old certificate stays published ``overlap_days``:
        (new fingerprint, new certificate PEM, when the old one stops being published)."""
        if self.from_files or self.signer is None:
            raise KeyFromFiles("the signing key comes from --signing-key/--signing-cert: rotate it by restarting "
                               "the nodes with new files and --previous-signing-cert OLD.pem")
        key_pem, cert_pem = generate_identity(self._name(), days=3650)
        old = self.signer.cert_pem.decode("ascii")
        until = _now() + int(overlap_days * 86_400 * 1_000_000)
        if not await self._store.rotate_identity(old, fingerprint(load_certificate_pem(old)), key_pem.decode("ascii"),
                                                 cert_pem.decode("ascii"), until, _now()):
            raise KeyFromFiles("the signing key was rotated meanwhile (by another operator or node): look again")
        await self.reload()
        return fingerprint(load_certificate_pem(cert_pem)), cert_pem.decode("ascii"), until
