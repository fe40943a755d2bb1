"""Fixtures: real SQLite files and a real PostgreSQL server (a fresh database per test, cloned
from a migrated template), real DIP servers on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dip.config import Settings
from dip.store import Store, open_store
from dip.tools.client import Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import onboard_all

PG_URL = os.environ.get("DIP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEMPLATE = f"dip_template_{os.getpid()}"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "elexon-dip-api-v2.1.0"


def _admin_url() -> str:
    return PG_URL.rsplit("/", 1)[0] + "/postgres"


def _pg_available() -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(_admin_url(), timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; per-test databases are cloned from it."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}; CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")

    async def create() -> None:
        conn = await asyncpg.connect(_admin_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        finally:
            await conn.close()
        store = open_store(_db_url(TEMPLATE), Path("."))
        await store.open()
        await store.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_admin_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield TEMPLATE
    asyncio.run(drop())


def _db_url(name: str) -> str:
    return PG_URL.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def cloned_database(template: str) -> Iterator[str]:
    """A fresh database cloned from the migrated template, dropped at the end."""
    name = f"dip_t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(_admin_url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _db_url(name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[str]:
    with cloned_database(pg_template) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (SQLite under the data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    return url


def test_settings(data_dir: Path, database_url: str | None) -> Settings:
    """What a test's DIP runs with, unless the test says otherwise."""
    return Settings(data_dir=data_dir, database_url=database_url, validation_workers=0, demo=True,
                    state_poll_seconds=0.2)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return test_settings(tmp_path / "data", database_url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_dip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDip]:
    """One DIP per store shared by a module's tests that each send messages of their own and look
    only at the answers (refusals, mostly), instead of each starting its own."""
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = stack.enter_context(cloned_database(request.getfixturevalue("pg_template")))
        yield stack.enter_context(RunningDip(test_settings(tmp_path_factory.mktemp("shared") / "data", url)))


@pytest.fixture(scope="module")
def shared_cast(shared_dip: RunningDip) -> dict[str, Identity]:
    """The usual cast (tests.helpers.onboard_all) on the shared DIP."""
    with AdminClient(shared_dip.url, shared_dip.admin_key) as admin:
        return onboard_all(admin)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = open_store(settings.database_url, settings.data_dir)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def dip_factory(settings: Settings) -> Iterator[Callable[..., RunningDip]]:
    """Start DIP servers (stopped at the end of the test): ``dip_factory(**setting_overrides)``."""
    running: list[RunningDip] = []

    def start(**overrides: Any) -> RunningDip:
        server = RunningDip(settings, overrides=overrides).__enter__()
        running.append(server)
        return server

    yield start
    for server in reversed(running):
        server.__exit__(None, None, None)


@pytest.fixture
def dip(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory()


@pytest.fixture
def admin(dip: RunningDip) -> Iterator[AdminClient]:
    client = AdminClient(dip.url, dip.admin_key)
    yield client
    client.close()
