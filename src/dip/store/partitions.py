"""PostgreSQL's archive partitions (migration 0012, docs/archive.md "Retention", docs/scale.md).

``messages`` and ``deliveries`` are partitioned by retention class (LIST on ``retention_days``),
each class by UTC day (RANGE on ``received_at`` / ``accepted_at``, microseconds):
``messages_r730`` holds the 730-day class, ``messages_r730_d20261205`` one day of it. Each level
has a default partition that catches a row whose class or day was not made yet, so ingest never
fails for want of a partition; ``prepare`` moves such rows into the partition it then makes.

``prepare`` makes every class's days ahead of time (the retention job, at every run, and the
store when it opens or learns a new class); ``drop`` removes a class's days that ended before
the class's retention began, and deletes no rows. Each partition is made in a transaction of its
own, and each expired day is detached in one and dropped in another, under an advisory lock
(nodes running the job at once do each once), with a short lock timeout: detaching locks the
class tables for a moment, and a timeout (a long replay reading the class) leaves the day for
the next run rather than holding ingest up behind it.

The DDL names tables, so it is built here from checked parts (class: an int, day: a date),
never from input.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta

from dip.exceptions import StoreError
from dip.store.connector import Database

DAY = 86_400_000_000  # microseconds
AHEAD_DAYS = 3  # days made ahead of today: the job runs far more often than that
TABLES = {"messages": "received_at", "deliveries": "accepted_at"}  # table: its time column
_LOCK = 7_360_202  # pg_advisory_xact_lock key: one node changes the partitions at a time
_LOCK_TIMEOUT = "500ms"  # making partitions: may wait a little for a busy class
# Detaching a day waits in the lock queue of its class's tables, and every read or write of the
# class queues behind it while it waits: it gives up soon and tries again between busy moments,
# so ingest is held for at most this long
_DROP_LOCK_TIMEOUT = "100ms"
_DROP_ATTEMPTS = 10  # a drop that keeps timing out is left for the next run
log = logging.getLogger("dip.store")
_DAY_NAME = re.compile(r"^(messages|deliveries)_r(\d+)_d(\d{8})$")


def class_table(table: str, days: int) -> str:
    return f"{table}_r{int(days)}"


def day_table(table: str, days: int, day: date) -> str:
    return f"{class_table(table, days)}_d{day:%Y%m%d}"


def day_of(at: int) -> date:
    return datetime.fromtimestamp(at // DAY * 86_400, UTC).date()


def start_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def _like(table: str) -> str:
    return f"(LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)"


async def _existing(db: Database) -> set[str]:
    rows = await db.fetch("SELECT relname FROM pg_class WHERE relispartition AND relname ~ '^(messages|deliveries)_r'")
    return {r[0] for r in rows}


async def _make_class(db: Database, table: str, days: int) -> bool:
    """The class's partition, holding the rows of that class the default partition caught."""
    name, column = class_table(table, days), TABLES[table]
    async with db.transaction() as tx:
        await tx.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        if await tx.fetchval("SELECT to_regclass($1)", name) is not None:
            return False
        await tx.execute(f"CREATE TABLE {name} {_like(table)} PARTITION BY RANGE ({column})")
        await tx.execute(f"CREATE TABLE {name}_default PARTITION OF {name} DEFAULT")
        await tx.execute(f"INSERT INTO {name} SELECT * FROM {table}_default WHERE retention_days = {int(days)}")  # noqa: S608 (table names and bounds made here from known tables and ints)
        await tx.execute(f"DELETE FROM {table}_default WHERE retention_days = {int(days)}")  # noqa: S608 (table names and bounds made here from known tables and ints)
        await tx.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES IN ({int(days)})")
    return True


async def _make_day(db: Database, table: str, days: int, day: date) -> bool:
    """One day of a class, holding the rows of that day its default partition caught."""
    parent, name, column = class_table(table, days), day_table(table, days, day), TABLES[table]
    low, high = start_of(day), start_of(day + timedelta(days=1))
    within = f"{column} >= {low} AND {column} < {high}"
    async with db.transaction() as tx:
        await tx.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        if await tx.fetchval("SELECT to_regclass($1)", name) is not None:
            return False
        await tx.execute(f"CREATE TABLE {name} {_like(table)}")
        # the bound as a constraint first: ATTACH then need not scan the table to prove it
        await tx.execute(f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK ({within})")
        await tx.execute(f"INSERT INTO {name} SELECT * FROM {parent}_default WHERE {within}")  # noqa: S608 (table names and bounds made here from known tables and ints)
        await tx.execute(f"DELETE FROM {parent}_default WHERE {within}")  # noqa: S608 (table names and bounds made here from known tables and ints)
        await tx.execute(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})")
        await tx.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bound")
    return True


async def _caught_days(db: Database, table: str, days: int) -> set[date]:
    """The days of the rows a class's default partition caught."""
    column = TABLES[table]
    rows = await db.fetch(f"SELECT DISTINCT {column} / {DAY} FROM {class_table(table, days)}_default")  # noqa: S608 (table names and bounds made here from known tables and ints)
    return {day_of(int(r[0]) * DAY) for r in rows}


async def _caught_classes(db: Database, table: str) -> set[int]:
    return {int(r[0]) for r in await db.fetch(f"SELECT DISTINCT retention_days FROM {table}_default")}  # noqa: S608 (table names and bounds made here from known tables and ints)


async def prepare(db: Database, classes: set[int], start: int, end: int) -> int:
    """Make every class's partitions for the days from ``start`` to ``end`` (microseconds), and a
    partition for every class and day a default partition caught; how many were made."""
    made = 0
    first, last = day_of(start), day_of(end)
    wanted = {first + timedelta(days=n) for n in range((last - first).days + 1)}
    for table in TABLES:
        existing = await _existing(db)
        for days in sorted(classes | await _caught_classes(db, table)):
            if class_table(table, days) not in existing:
                made += await _make_class(db, table, days)
            for day in sorted(wanted | await _caught_days(db, table, days)):
                if day_table(table, days, day) not in existing:
                    made += await _make_day(db, table, days, day)
    return made


async def expired(db: Database, days: int, before: int) -> dict[date, list[str]]:
    """The class's day partitions (of both tables) that ended by ``before``, by day, oldest first."""
    found: dict[date, list[str]] = {}
    for name in sorted(await _existing(db)):
        match = _DAY_NAME.match(name)
        if match and int(match[2]) == days:
            day = datetime.strptime(match[3], "%Y%m%d").replace(tzinfo=UTC).date()
            if start_of(day + timedelta(days=1)) <= before:
                found.setdefault(day, []).append(name)
    return dict(sorted(found.items()))


async def leftovers(db: Database) -> list[str]:
    """Day tables detached by a purge that stopped before it dropped them (a node died between)."""
    rows = await db.fetch("SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition"
                          " AND relname ~ '^(messages|deliveries)_r[0-9]+_d[0-9]{8}$'")
    return sorted(r[0] for r in rows if _DAY_NAME.match(r[0]))


async def drop(db: Database, names: list[str]) -> dict[str, int]:
    """Drop expired day partitions (a day's, of both tables): the rows each held, or -1 for one
    left for the next run because its class stayed busy.

    Two steps. First the partitions are detached from their class tables in one short
    transaction: from then on no read sees the day, and the class tables were locked only for
    that catalogue change. Then the detached tables are dropped in one statement. Dropping frees
    their files, which takes the file system a while (0.2-0.4 s a GB measured: docs/scale.md);
    no one else uses those tables, so nothing waits for it. A purge that stops in between leaves
    detached tables that the next run drops (``leftovers``).

    The rows are the planner's estimate where the partition was analysed (autovacuum analyses a
    day once it is written: counting a day of 42 million rows would take longer than the drop by
    far), else counted."""
    for name in names:
        match = _DAY_NAME.match(name)
        if not match:
            raise ValueError(f"not a day partition: {name!r}")
    rows: dict[str, int] = {}
    for name in names:
        estimate = await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", name)
        if estimate is not None:  # else another node dropped it
            rows[name] = int(estimate) if estimate >= 0 else int(await db.fetchval(f"SELECT count(*) FROM {name}"))  # noqa: S608 (table names and bounds made here from known tables and ints)
    started = time.monotonic()
    for attempt in range(_DROP_ATTEMPTS):
        try:
            async with db.transaction() as tx:
                await tx.execute(f"SET LOCAL lock_timeout = '{_DROP_LOCK_TIMEOUT}'")
                await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                attached = {r[0]: r[1] for r in await tx.fetch(
                    "SELECT c.relname, p.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
                    " JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname = ANY($1::text[])", list(rows))}
                for name in sorted(attached):
                    await tx.execute(f"ALTER TABLE {attached[name]} DETACH PARTITION {name}")
            break
        except StoreError as exc:
            if "lock timeout" not in str(exc):
                raise
            await asyncio.sleep(0.05 * (attempt + 1))  # between the busy moments of its class
    else:
        log.warning("could not detach %s: a class was busy for %.1f s; the next retention run drops them",
                    ", ".join(sorted(rows)), time.monotonic() - started)
        return {name: -1 for name in rows}
    detached = time.monotonic()
    dropped = await _drop_tables(db, sorted(rows))
    log.info("dropped %s (%d rows) in %.3f s: detached in %.3f s after %d wait(s), dropped in %.3f s",
             ", ".join(dropped), sum(rows.values()), time.monotonic() - started, detached - started, attempt,
             time.monotonic() - detached)
    return {name: count for name, count in rows.items() if name in dropped}


async def _drop_tables(db: Database, names: list[str]) -> list[str]:
    """Drop detached day tables in one statement; the ones that were there."""
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        there = [r[0] for r in await tx.fetch("SELECT relname FROM pg_class WHERE relname = ANY($1::text[])"
                                              " AND relkind = 'r' AND NOT relispartition", names)]
        if there:
            await tx.execute(f"DROP TABLE {', '.join(sorted(there))}")
    return sorted(there)


async def drop_leftovers(db: Database) -> int:
    """Drop what an interrupted purge detached and left; how many tables."""
    names = await leftovers(db)
    if names:
        names = await _drop_tables(db, names)
        log.info("dropped %d day table(s) an earlier purge detached: %s", len(names), ", ".join(names))
    return len(names)
