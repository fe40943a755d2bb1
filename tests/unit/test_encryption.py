"""Envelope encryption of archived payloads (dip.store.encryption): AES-256-GCM data keys under a
key-encryption key; changed ciphertext or a wrong KEK is an error, never wrong data."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from dip.exceptions import ConfigurationError, StoreError
from dip.store.encryption import KeyMissing, Keyring, is_encrypted, kek_id, load_keks, new_kek_file, parse_kek


def test_a_payload_round_trips_and_is_not_readable_without_its_key() -> None:
    keyring = Keyring([secrets.token_bytes(32)])
    dek_id, kek, wrapped = keyring.new_data_key()
    stored = keyring.encrypt(dek_id, b'{"MPANCore":"1234567890123"}')
    assert is_encrypted(stored) and b"1234567890123" not in stored
    assert keyring.decrypt(stored) == b'{"MPANCore":"1234567890123"}'
    other = Keyring([secrets.token_bytes(32)])  # a node given another KEK
    assert other.needed([stored]) == {dek_id}
    with pytest.raises(KeyMissing):
        other.open_keys([(dek_id, kek, wrapped)])


def test_changed_ciphertext_is_an_error() -> None:
    keyring = Keyring([secrets.token_bytes(32)])
    dek_id, _, _ = keyring.new_data_key()
    stored = bytearray(keyring.encrypt(dek_id, b"payload"))
    stored[-1] ^= 1
    with pytest.raises(StoreError, match="changed"):
        keyring.decrypt(bytes(stored))
    assert keyring.decrypt(b'{"plain": true}') == b'{"plain": true}'  # stored before encryption: as it is


def test_rotation_rewraps_data_keys_without_touching_payloads(tmp_path: Path) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    before = Keyring([old])
    dek_id, kek, wrapped = before.new_data_key()
    stored = before.encrypt(dek_id, b"kept for years")
    during = Keyring([new, old])  # nodes restarted with the new KEK and the old one as previous
    again = during.rewrapped(dek_id, kek, wrapped)
    assert again is not None and during.rewrapped(dek_id, during.current, again) is None
    after = Keyring([new])  # the old KEK dropped
    after.open_keys([(dek_id, kek_id(new), again)])
    assert after.decrypt(stored) == b"kept for years"


def test_keks_are_32_bytes_from_files_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    new_kek_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    (key,) = load_keks(path, [], None)
    assert len(key) == 32 and parse_kek(key.hex().encode(), "x") == key
    assert load_keks(None, [], key.hex()) == [key]
    with pytest.raises(ConfigurationError, match="32 bytes"):
        parse_kek(b"too short", "--kek-file")
