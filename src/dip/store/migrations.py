"""Numbered SQL migrations (``migrations/NNNN_name.sql``), one file each, in PostgreSQL's SQL.

SQLite runs them translated (dip.store.sqlite.statements). A migration named
``NNNN_name.postgres.sql`` changes only how PostgreSQL stores what both have (partitions): SQLite
records its version and runs nothing; ``NNNN_name.sqlite.sql`` is SQLite's own (its triggers,
where PostgreSQL has a ``.postgres.sql`` of its own). Each is applied in a transaction of
its own and recorded in ``schema_migrations``; nodes starting together take the dialect's
migration lock, and each transaction looks again whether its migration was applied meanwhile.
"""

from __future__ import annotations

from importlib import resources

from dip.exceptions import StoreError
from dip.store.connector import Database
from dip.store.queries import Queries

POSTGRES_ONLY = ".postgres.sql"
SQLITE_ONLY = ".sqlite.sql"


def migrations(dialect: str = "postgres") -> list[tuple[int, str]]:
    """(version, SQL) pairs for ``dialect``, in order (an empty script where it has nothing to do)."""
    folder = resources.files("dip.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            sql = entry.read_text(encoding="utf-8")
            other = ((name.endswith(POSTGRES_ONLY) and dialect != "postgres")
                     or (name.endswith(SQLITE_ONLY) and dialect != "sqlite"))
            found.append((int(name.split("_", 1)[0]), "" if other else sql))
    return sorted(found)


class SchemaTooNew(StoreError):
    """The database was migrated by a newer DIP than this one."""


async def status(db: Database, q: Queries) -> tuple[list[int], list[int]]:
    """(applied, pending) migration versions, changing nothing."""
    async with db.transaction() as tx:
        await tx.write(q.create_schema_migrations)
        done = sorted(int(r[0]) for r in await tx.fetch(q.applied_migrations))
    return done, [v for v, _ in migrations(db.dialect) if v not in done]


async def migrate(db: Database, q: Queries) -> list[int]:
    """Bring the schema up to date; the versions applied now."""
    applied: list[int] = []
    async with db.migration_lock():
        async with db.transaction() as tx:
            await tx.write(q.create_schema_migrations)
            done = {int(r[0]) for r in await tx.fetch(q.applied_migrations)}
        known = migrations(db.dialect)
        newest = max(v for v, _ in known)
        if done and max(done) > newest:
            # a newer DIP migrated this database (a rolling upgrade half done, or a rollback): this
            # code would write rows the schema no longer means
            raise SchemaTooNew(f"the database's schema is at version {max(done)}, newer than this DIP knows "
                               f"({newest}): run the newer DIP, or restore the database from before its upgrade")
        for version, sql in known:
            if version in done:
                continue
            async with db.transaction() as tx:
                if await tx.fetchval(q.migration_applied, version) is not None:
                    continue  # another node was quicker
                if sql:
                    await tx.run_script(sql)
                await tx.write(q.record_migration, version)
            applied.append(version)
    return applied
