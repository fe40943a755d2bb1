"""``dip migrate`` (issue 18 item 5): where a database's schema stands, applying what is pending,
and refusing a database a newer DIP migrated (every node at start too); on both stores."""

from __future__ import annotations

import asyncio
import contextlib
import io

import pytest

from dip.config import Settings
from dip.store import open_store
from dip.store.migrations import SchemaTooNew, migrations
from dip.tools import cli


def _run(settings: Settings, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["migrate", *args, "--data-dir", str(settings.data_dir),
                         *(["--database-url", settings.database_url] if settings.database_url else [])])
    return code, out.getvalue() + err.getvalue()


def test_status_apply_and_a_schema_too_new(settings: Settings) -> None:
    newest = max(v for v, _ in migrations())
    code, out = _run(settings, "apply")
    assert code == 0 and f"schema at version {newest}" in out and "0 pending" in out
    code, out = _run(settings, "status")
    assert code == 0 and f"schema at version {newest}" in out

    async def newer() -> None:  # what a newer DIP's migration would leave
        store = open_store(settings.database_url, settings.data_dir)
        await store.open()
        try:
            async with store.db.transaction() as tx:  # type: ignore[attr-defined]
                await tx.execute("INSERT INTO schema_migrations (version) VALUES (9999)")
        finally:
            await store.close()

    asyncio.run(newer())
    code, out = _run(settings, "apply")
    assert code == 2 and "newer than this DIP knows" in out

    async def start() -> None:
        store = open_store(settings.database_url, settings.data_dir)
        await store.open()

    with pytest.raises(SchemaTooNew):
        asyncio.run(start())
