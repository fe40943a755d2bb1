"""Encryption at rest of archived payloads with personal data (DIP FS 8.1; issue 17 item 5;
docs/security.md "Encryption at rest").

Envelope encryption with AES-256-GCM (the ``cryptography`` package's AESGCM):
- a **key-encryption key** (KEK, 32 bytes) comes from a file or the environment, never the
  database (``--kek-file``, ``DIP_KEK``); a KMS would hold it instead (documented);
- **data keys** (DEKs, 32 random bytes) encrypt the payloads: each process makes one a UTC day,
  stores it in ``data_keys`` wrapped (encrypted) by the KEK, and keeps the keys it uses in memory;
- a payload of a channel whose security category is 2 to 4 (MPAN, personal or consumption data;
  FS 4.2.6) is kept as ``DIPE`` + the data key's ID (8 bytes) + a 12-byte nonce + the ciphertext
  of its compressed form and GCM's 16-byte tag (the magic and key ID are authenticated too).

Rotating the KEK needs no downtime and rewrites no payload: start the nodes with the new KEK and
the old one as ``--previous-kek-file`` (they read data keys wrapped by either and wrap new ones
with the new), run ``dip keys rewrap`` (every data key re-wrapped by the new KEK), then drop the
old KEK. A data key is never changed, so old payloads stay readable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dip.exceptions import ConfigurationError, StoreError

MAGIC = b"DIPE"
_ID = 8
_NONCE = 12
_HEADER = len(MAGIC) + _ID


class KeyMissing(StoreError):
    """A payload's data key cannot be opened with the KEKs this node has."""


def parse_kek(raw: bytes, where: str) -> bytes:
    """A KEK as given: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes (a newline allowed)."""
    if len(raw) == 32:
        return raw
    text = raw.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text.decode("ascii"))  # type: ignore[operator]
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(key) == 32:
            return key
    raise ConfigurationError(f"{where}: a key-encryption key is 32 bytes (raw, 64 hex digits or base64)")


def load_keks(current: Path | None, previous: Sequence[Path], environment_value: str | None) -> list[bytes]:
    """The KEKs, the current one first: ``--kek-file`` or ``DIP_KEK``, then ``--previous-kek-file``s."""
    keks = []
    if current is not None:
        try:
            keks.append(parse_kek(current.read_bytes(), f"--kek-file {current}"))
        except OSError as exc:
            raise ConfigurationError(f"--kek-file: {exc}") from exc
    elif environment_value:
        keks.append(parse_kek(environment_value.encode("ascii"), "DIP_KEK"))
    for path in previous:
        try:
            keks.append(parse_kek(path.read_bytes(), f"--previous-kek-file {path}"))
        except OSError as exc:
            raise ConfigurationError(f"--previous-kek-file: {exc}") from exc
    return keks


def kek_id(kek: bytes) -> str:
    """Names a KEK without revealing it (recorded beside each data key it wraps)."""
    return hashlib.sha256(b"dip-kek-id" + kek).hexdigest()[:16]


def new_kek_file(path: Path) -> None:
    """A new random KEK, readable by its owner only (``dip keys new-kek``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")


class Keyring:
    """The KEKs this node has and the data keys it has opened."""

    def __init__(self, keks: Sequence[bytes]) -> None:
        if not keks:
            raise ConfigurationError("no key-encryption key")
        self._keks = {kek_id(k): AESGCM(k) for k in keks}
        self.current = kek_id(keks[0])
        self._deks: dict[bytes, AESGCM] = {}

    # -- data keys ---------------------------------------------------------------------------

    def new_data_key(self) -> tuple[bytes, str, bytes]:
        """(ID, KEK ID, wrapped key) of a new data key, opened in this keyring already."""
        dek_id, dek = secrets.token_bytes(_ID), AESGCM.generate_key(256)
        self._deks[dek_id] = AESGCM(dek)
        return dek_id, self.current, self._wrap(dek_id, dek)

    def _wrap(self, dek_id: bytes, dek: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._keks[self.current].encrypt(nonce, dek, b"dip-dek" + dek_id)

    def _unwrap(self, dek_id: bytes, kek: str, wrapped: bytes) -> bytes:
        opener = self._keks.get(kek)
        if opener is None:
            raise KeyMissing(f"data key {dek_id.hex()} is wrapped by KEK {kek}, which this node was not given "
                             "(--kek-file / --previous-kek-file)")
        try:
            return opener.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], b"dip-dek" + dek_id)
        except InvalidTag as exc:
            raise KeyMissing(f"data key {dek_id.hex()} does not open with KEK {kek}: it was changed") from exc

    def open_keys(self, rows: Iterable[tuple[bytes, str, bytes]]) -> None:
        """Data keys read from the store: (ID, KEK ID, wrapped)."""
        for dek_id, kek, wrapped in rows:
            self._deks[dek_id] = AESGCM(self._unwrap(dek_id, kek, wrapped))

    def rewrapped(self, dek_id: bytes, kek: str, wrapped: bytes) -> bytes | None:
        """The data key wrapped by the current KEK, or None if it is already."""
        return None if kek == self.current else self._wrap(dek_id, self._unwrap(dek_id, kek, wrapped))

    # -- payloads --------------------------------------------------------------------------------

    def encrypt(self, dek_id: bytes, data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        header = MAGIC + dek_id
        return header + nonce + self._deks[dek_id].encrypt(nonce, data, header)

    def needed(self, stored: Iterable[bytes]) -> set[bytes]:
        """The data keys these stored payloads need that are not opened yet."""
        return {s[len(MAGIC):_HEADER] for s in stored if s.startswith(MAGIC)} - self._deks.keys()

    def decrypt(self, stored: bytes) -> bytes:
        """The stored payload without its encryption (one stored unencrypted is given back as it is)."""
        if not stored.startswith(MAGIC):
            return stored
        dek = self._deks.get(stored[len(MAGIC):_HEADER])
        if dek is None:
            raise KeyMissing(f"no data key {stored[len(MAGIC):_HEADER].hex()} opened")
        try:
            return dek.decrypt(stored[_HEADER:_HEADER + _NONCE], stored[_HEADER + _NONCE:], stored[:_HEADER])
        except InvalidTag as exc:
            raise StoreError("an encrypted payload does not decrypt: it was changed in the database") from exc


def is_encrypted(stored: bytes) -> bool:
    return stored.startswith(MAGIC)
