"""Encryption at rest (issue 17 item 5): payloads of channels of security categories 2-4 are
stored encrypted under a key-encryption key kept outside the database, read back and delivered
as accepted, and a KEK rotation re-wraps the data keys with no payload rewritten; on both stores."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from dip.config import Settings
from dip.exceptions import ConfigurationError
from dip.node import Node
from dip.store.encryption import new_kek_file
from dip.tools import cli
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import consumption, items, onboard_all


def _raw(dip: RunningDip, sql: str) -> list[tuple[object, ...]]:
    url = dip.settings.database_url
    if url is None:
        conn = sqlite3.connect(dip.settings.data_dir / "dip.sqlite3")
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_sensitive_payloads_are_encrypted_at_rest_and_read_back_as_accepted(
        dip_factory: Callable[..., RunningDip], tmp_path: Path) -> None:
    new_kek_file(tmp_path / "kek")
    dip = dip_factory(kek_file=tmp_path / "kek")
    with AdminClient(dip.url, dip.admin_key) as admin, WebhookReceiver() as hook:
        cast = onboard_all(admin)
        with DipClient(dip.url, cast["SUP"]) as sup:
            assert sup.register_webhook("IF-021", hook.url).status_code == 201
        with DipClient(dip.url, cast["SDS"]) as sds:
            batch = consumption(sds, 3)
            answer = sds.send("IF-021", batch)  # security category 4 in the shipped catalogue
        assert answer.status_code == 201
        ids = [i["transactionID"] for i in items(answer)]
        stored = {str(r[0]): bytes(r[1]) for r in _raw(dip, "SELECT transaction_id, payload FROM messages")}
        assert all(stored[t].startswith(b"DIPE") for t in ids)
        mpan = batch[0]["CommonBlock"]["M0"]["MPANCore"]
        assert all(mpan.encode() not in p for p in stored.values())
        found = admin.http.get(f"/admin/transactions/{ids[0]}", params={"payload": "true"}).json()
        assert found["payload"] == batch[0]
        calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= 3)
        delivered = [str(m) for c in calls for m in c.json]
        assert any(mpan in m for m in delivered)  # recipients get the message, not the ciphertext
    keys = _raw(dip, "SELECT id, kek_id FROM data_keys")
    assert len(keys) == 1  # one data key a process a day


def test_a_category_1_channel_is_stored_unencrypted(dip_factory: Callable[..., RunningDip], tmp_path: Path) -> None:
    new_kek_file(tmp_path / "kek")
    dip = dip_factory(kek_file=tmp_path / "kek")
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
        definition = admin.get_channel("IF-021")
        assert definition["securityCategory"] == 4
        definition["securityCategory"] = 1
        assert admin.put_channel("IF-021", definition).status_code == 200
        definition["securityCategory"] = 5
        assert admin.put_channel("IF-021", definition).status_code == 400
        with DipClient(dip.url, cast["SDS"]) as sds:
            answer = sds.send("IF-021", consumption(sds, 1))
    (payload,) = _raw(dip, f"SELECT payload FROM messages WHERE transaction_id = '{items(answer)[0]['transactionID']}'")
    assert not bytes(payload[0]).startswith(b"DIPE")


def test_kek_rotation_without_rewriting_payloads(dip_factory: Callable[..., RunningDip], tmp_path: Path) -> None:
    old, new = tmp_path / "old.kek", tmp_path / "new.kek"
    new_kek_file(old)
    new_kek_file(new)
    dip = dip_factory(kek_file=old)
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
        with DipClient(dip.url, cast["SDS"]) as sds:
            batch = consumption(sds, 1)
            transaction = items(sds.send("IF-021", batch))[0]["transactionID"]
    dip.__exit__(None, None, None)
    before = _raw(dip, "SELECT payload FROM messages")
    db = ["--data-dir", str(dip.settings.data_dir),
          *(["--database-url", dip.settings.database_url] if dip.settings.database_url else [])]
    assert cli.main(["keys", "rewrap", *db, "--kek-file", str(new), "--previous-kek-file", str(old)]) == 0
    assert _raw(dip, "SELECT payload FROM messages") == before  # no payload rewritten
    again = RunningDip(dip.settings, overrides={"kek_file": new, "data_dir": dip.settings.data_dir}).__enter__()
    try:
        with httpx.Client(base_url=again.url, headers={"X-API-Key": again.admin_key}) as admin:
            found = admin.get(f"/admin/transactions/{transaction}", params={"payload": "true"}).json()
        assert found["payload"] == batch[0]
    finally:
        again.__exit__(None, None, None)


def test_outside_dev_a_kek_is_required(tmp_path: Path) -> None:
    settings = Settings(environment="SIT", public_base_url="https://dip.example", data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="--kek-file"):
        Node(settings)._protect_payloads()
