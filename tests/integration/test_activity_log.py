"""The API activity log (issue 17 item 4; DIP FS 5.8.1; API contract section 5): every request
logged with its ID, caller, status, time and masked body; hash chains with signed checkpoints
outside the database; ``dip audit verify`` finds any change, insertion or removal; on both stores."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from dip.audit.chain import link, pack, unpack
from dip.tools import cli
from dip.tools.client import DipClient
from dip.tools.samples import mpan_core
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import SDS, consumption, onboard_all


def _entries(admin: AdminClient, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = admin.http.get("/admin/audit", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        found.extend(body["entries"])
        cursor = body["next"]
        if cursor is None:
            return found


def _wait_for(admin: AdminClient, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in _entries(admin):
            if entry["attributes"]["dip.request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} never reached the activity log")


def _verify(dip: RunningDip) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["audit", "verify", "--data-dir", str(dip.settings.data_dir),
                         *(["--database-url", dip.settings.database_url] if dip.settings.database_url else [])])
    return code, out.getvalue()


def _sql(dip: RunningDip, *statements: str) -> list[Any]:
    """Run SQL on the DIP's database as someone with write access to it would (the guards off)."""
    url = dip.settings.database_url
    if url is None:
        conn = sqlite3.connect(dip.settings.data_dir / "dip.sqlite3")
        try:
            conn.execute("DROP TRIGGER IF EXISTS api_activity_no_update")
            conn.execute("DROP TRIGGER IF EXISTS api_activity_no_early_delete")
            rows: list[Any] = []
            for s in statements:
                rows = conn.execute(s.replace("$1", "?")).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("ALTER TABLE api_activity DISABLE TRIGGER USER")
            rows: list[Any] = []
            for s in statements:
                rows = list(await conn.fetch(s))
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def logged(dip_factory: Callable[..., RunningDip]) -> Iterator[tuple[RunningDip, AdminClient, DipClient]]:
    dip = dip_factory()
    admin = AdminClient(dip.url, dip.admin_key)
    cast = onboard_all(admin)
    client = DipClient(dip.url, cast["SDS"])
    yield dip, admin, client
    client.close()
    admin.close()


def test_every_request_is_logged_with_its_id_caller_status_and_masked_body(logged: Any) -> None:
    dip, admin, client = logged
    batch = consumption(client, 2)
    first = client.send("IF-021", batch)
    again = client.send("IF-021", batch)  # the same references: both refused (MSG1006)
    assert first.status_code == 201 and again.status_code == 207
    auditor = admin.http.post("/admin/operators", json={"name": "Ann Auditor", "role": "auditor"}).json()
    searched = client.request("GET", f"/messages?MPAN={mpan_core(1)}")
    assert searched.status_code == 200

    entry = _wait_for(admin, again.headers["x-request-id"])
    a = entry["attributes"]
    assert a["http.request.method"] == "POST" and a["url.path"] == "/dip-channel/IF-021"
    assert a["http.response.status_code"] == 207 and a["user.id"] == SDS and a["dip.caller.kind"] == "participant"
    assert a["dip.duration_ms"] > 0 and int(entry["timeUnixNano"]) > 0
    refused = a["dip.refused"]
    references = sorted(m["CommonBlock"]["S1"]["senderUniqueReference"] for m in batch)
    assert sorted(r["senderUniqueReference"] for r in refused) == references
    assert all(r["message"].startswith("MSG1006") for r in refused)
    assert entry["body"]["messageArray"][0]["message"].startswith("MSG1006")
    ok = _wait_for(admin, first.headers["x-request-id"])
    assert ok["attributes"]["dip.refused"] == [] and ok["attributes"]["http.response.status_code"] == 201

    # an MPAN in a URL keeps its distributor's two digits only; an issued API key is never logged
    search = _wait_for(admin, searched.headers["x-request-id"])
    assert mpan_core(1) not in orjson.dumps(search).decode()
    assert search["attributes"]["url.query"] == f"MPAN={mpan_core(1)[:2]}{'*' * 11}"
    issued = [e for e in _entries(admin) if e["attributes"]["url.path"] == "/admin/operators"
              and e["attributes"]["http.request.method"] == "POST"]
    assert issued and issued[0]["body"]["apiKey"] == "***" and auditor["apiKey"] not in orjson.dumps(issued).decode()
    assert issued[0]["attributes"]["dip.caller.kind"] == "operator"

    # the auditor reads the log (and that read is logged, without the entries it returned)
    reader = AdminClient(dip.url, auditor["apiKey"])
    page = reader.http.get("/admin/audit", params={"limit": "2"})
    assert page.status_code == 200 and len(page.json()["entries"]) == 2 and page.json()["next"]
    read = _wait_for(admin, page.headers["x-request-id"])
    assert read["attributes"]["user.id"] == auditor["operatorId"] and read["body"]["logged"] is False
    reader.close()

    # a refused caller (no key) is logged too, as nobody
    anonymous = client.request("POST", "/dip-channel/IF-021", b"[]", sign=False)
    nobody = _wait_for(admin, anonymous.headers["x-request-id"])
    assert nobody["attributes"]["http.response.status_code"] == 401 and nobody["attributes"]["user.id"] is None


def test_time_range_export_and_bad_bounds(logged: Any) -> None:
    dip, admin, client = logged
    before = time.time()
    sent = client.send("IF-021", consumption(client, 1))
    _wait_for(admin, sent.headers["x-request-id"])
    moment = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(before - 1))
    later = [e["attributes"]["dip.request_id"] for e in _entries(admin, **{"from": moment})]
    assert sent.headers["x-request-id"] in later
    earlier = [e["attributes"]["dip.request_id"] for e in _entries(admin, to=moment)]
    assert sent.headers["x-request-id"] not in earlier
    assert admin.http.get("/admin/audit", params={"from": "yesterday"}).status_code == 400
    assert admin.http.get("/admin/audit", params={"cursor": "not-a-cursor"}).status_code == 400
    support = admin.http.post("/admin/operators", json={"name": "Sam", "role": "support"}).json()
    with AdminClient(dip.url, support["apiKey"]) as reader:
        assert reader.http.get("/admin/audit").status_code == 200
    assert client.request("GET", "/admin/audit").status_code == 401  # participants do not read it


def test_the_log_is_append_only_in_the_database(logged: Any) -> None:
    dip, admin, client = logged
    sent = client.send("IF-021", consumption(client, 1))
    _wait_for(admin, sent.headers["x-request-id"])
    url = dip.settings.database_url
    if url is None:
        conn = sqlite3.connect(dip.settings.data_dir / "dip.sqlite3")
        try:
            for statement in ("UPDATE api_activity SET status = 200", "DELETE FROM api_activity"):
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    conn.execute(statement)
        finally:
            conn.close()
        return

    async def attempt() -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in ("UPDATE api_activity SET status = 200", "DELETE FROM api_activity",
                              "TRUNCATE api_activity"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(attempt())


def _stopped_log(dip_factory: Callable[..., RunningDip], requests: int = 6) -> RunningDip:
    """A DIP that logged some requests and stopped (its chain closed by a final checkpoint)."""
    dip = dip_factory()
    with AdminClient(dip.url, dip.admin_key) as admin:
        for n in range(requests):
            admin.http.get(f"/admin/participants/{n:010d}")
    dip.__exit__(None, None, None)
    return dip


def test_verify_passes_an_intact_log(dip_factory: Callable[..., RunningDip]) -> None:
    dip = _stopped_log(dip_factory)
    code, out = _verify(dip)
    assert code == 0, out
    assert "intact: 6 entries checked in 1 chains" in out
    assert list((dip.settings.data_dir / "audit").glob("checkpoints-*.jsonl"))
    # pointed at another directory, the chain is checked by its hashes alone, and verify says so
    elsewhere = dip.settings.data_dir / "elsewhere"
    elsewhere.mkdir()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["audit", "verify", "--data-dir", str(dip.settings.data_dir), "--audit-dir", str(elsewhere),
                         *(["--database-url", dip.settings.database_url] if dip.settings.database_url else [])])
    assert code == 0 and "1 chains have no checkpoint in this audit directory" in out.getvalue()


@pytest.mark.parametrize("tamper", ["change", "delete-middle", "delete-newest", "insert-after", "rewrite-all",
                                    "forge-checkpoint"])
def test_verify_finds_any_change_insertion_or_removal(dip_factory: Callable[..., RunningDip], tamper: str) -> None:
    dip = _stopped_log(dip_factory)
    rows = _sql(dip, "SELECT chain, seq, entry, hash FROM api_activity ORDER BY seq")
    chain = rows[0][0]
    if tamper == "change":
        entry = orjson.loads(unpack(bytes(rows[2][2])))
        entry["attributes"]["http.response.status_code"] = 200
        _sql(dip, f"UPDATE api_activity SET entry = {_literal(dip, pack(orjson.dumps(entry)))} WHERE seq = 3")
        expected = f"entry {chain}/3"
    elif tamper == "delete-middle":
        _sql(dip, "DELETE FROM api_activity WHERE seq = 3")
        expected = f"entry {chain}/3 is missing"
    elif tamper == "delete-newest":
        _sql(dip, "DELETE FROM api_activity WHERE seq >= 5")
        expected = f"entry {chain}/5 is missing"
    elif tamper == "insert-after":
        last = rows[-1]
        entry = orjson.loads(unpack(bytes(last[2])))
        entry["attributes"]["dip.audit.seq"] = 7
        raw = orjson.dumps(entry)
        _sql(dip, "INSERT INTO api_activity (chain, seq, at, request_id, caller, status, refused, entry, hash) "
                  f"VALUES ('{chain}', 7, 1, 'forged', NULL, 200, 0, {_literal(dip, pack(raw))}, "
                  f"{_literal(dip, link(bytes(last[3]), raw))})")
        expected = f"entry {chain}/7"
    elif tamper == "rewrite-all":
        # a database writer who recomputes every hash after the change: the signed checkpoint,
        # outside the database, no longer agrees
        previous = bytes(32)
        statements = []
        for _, seq, stored, _ in rows:
            entry = orjson.loads(unpack(bytes(stored)))
            if seq == 2:
                entry["attributes"]["user.id"] = "someone else"
            raw = orjson.dumps(entry)
            previous = link(previous, raw)
            statements.append(f"UPDATE api_activity SET entry = {_literal(dip, pack(raw))}, "
                              f"hash = {_literal(dip, previous)} WHERE seq = {seq}")
        _sql(dip, *statements)
        expected = "rewritten"
    else:
        folder = dip.settings.data_dir / "audit"
        path = next(folder.glob("checkpoints-*.jsonl"))
        point = orjson.loads(path.read_bytes().splitlines()[-1])
        point["hash"] = hashlib.sha256(b"forged").hexdigest()
        path.write_bytes(path.read_bytes() + orjson.dumps(point) + b"\n")
        expected = "does not verify"
    code, out = _verify(dip)
    assert code == 1, out
    assert "BROKEN" in out and expected in out, out


def _literal(dip: RunningDip, data: bytes) -> str:
    return f"X'{data.hex()}'" if dip.settings.database_url is None else f"'\\x{data.hex()}'::bytea"


def test_retention_cuts_the_start_of_chains_and_the_log_still_verifies(dip_factory: Callable[..., RunningDip],
                                                                      tmp_path: Path) -> None:
    dip = dip_factory(audit_retention_days=2 / 86_400)  # entries older than two seconds go
    with AdminClient(dip.url, dip.admin_key) as admin:
        old = [admin.http.get("/admin/channels").headers["x-request-id"] for _ in range(3)]
        deadline = time.monotonic() + 10
        while len([e for e in _entries(admin) if e["attributes"]["dip.request_id"] in old]) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2.1)  # let them age past the retention (the log's clock is the wall clock)
        ran = admin.http.post("/admin/jobs/activity-retention/run")
        assert ran.status_code == 202, ran.text
        deadline = time.monotonic() + 15
        while any(e["attributes"]["dip.request_id"] in old for e in _entries(admin)):
            assert time.monotonic() < deadline, "the activity log's retention did not run"
            time.sleep(0.1)
        new = admin.http.get("/admin/channels").headers["x-request-id"]
        _wait_for(admin, new)
    dip.__exit__(None, None, None)
    code, out = _verify(dip)
    assert code == 0, out
    # and the cut is signed: moving it forward by hand (hiding more entries) is found
    _sql(dip, "UPDATE api_activity_cuts SET through_seq = through_seq + 1")
    code, out = _verify(dip)
    assert code == 1 and "retention cut" in out, out
