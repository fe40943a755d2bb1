"""Numbered SQL migrations (``migrations/NNNN_name.sql``), one file each, in PostgreSQL's SQL.

SQLite runs them translated (dip.store.sqlite.statements). Each is applied in a transaction of
its own and recorded in ``schema_migrations``; nodes starting together take the dialect's
migration lock, and each transaction looks again whether its migration was applied meanwhile.
"""

from __future__ import annotations

from importlib import resources

from dip.store.connector import Database
from dip.store.queries import Queries


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) pairs, in order."""
    folder = resources.files("dip.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(db: Database, q: Queries) -> list[int]:
    """Bring the schema up to date; the versions applied now."""
    applied: list[int] = []
    async with db.migration_lock():
        async with db.transaction() as tx:
            await tx.write(q.create_schema_migrations)
            done = {int(r[0]) for r in await tx.fetch(q.applied_migrations)}
        for version, sql in migrations():
            if version in done:
                continue
            async with db.transaction() as tx:
                if await tx.fetchval(q.migration_applied, version) is not None:
                    continue  # another node was quicker
                await tx.run_script(sql)
                await tx.write(q.record_migration, version)
            applied.append(version)
    return applied
