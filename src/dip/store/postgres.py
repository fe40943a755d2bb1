"""PostgreSQL (asyncpg): a connection pool, COPY for batches, LISTEN/NOTIFY between nodes.

The store's statements (sql/queries.sql) are PostgreSQL's SQL already; this dialect runs them
as they are. Driver errors become dip.exceptions here (``errors``), and nowhere else.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import asyncpg

from dip.exceptions import ConstraintViolation, StoreError, UniqueViolation, UnstorableValue
from dip.store.connector import Connection, Reader, Row

log = logging.getLogger("dip.store")

_MIGRATION_LOCK = 7_360_201  # pg_advisory_lock key for schema changes
_WIDE_CONNECTIONS = 2  # the pool for reads over the whole archive (PostgresDatabase.wide)
_CONNECTION_ERRORS = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.TimeoutError,
)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """asyncpg's exceptions as the DIP's: a unique key, another constraint, a value of the
    request (SQLSTATE class 22, e.g. text holding NUL: not the database's fault), or the
    database failing (gone, restarting, failing over)."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(str(exc)) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise ConstraintViolation(str(exc)) from exc
    except asyncpg.DataError as exc:
        raise UnstorableValue(str(exc)) from exc
    except _CONNECTION_ERRORS as exc:
        raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


class _Reads(abc.ABC):
    """fetch, fetchrow and fetchval on ``_target()``: the pool, or one connection."""

    @abc.abstractmethod
    def _target(self) -> Any: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with errors():
            return list(await self._target().fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with errors():
            row: Row | None = await self._target().fetchrow(sql, *args)
            return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with errors():
            return await self._target().fetchval(sql, *args)


class PostgresDatabase(_Reads):
    dialect = "postgres"
    concurrent_writers = True
    partitioned = True

    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._wide: asyncpg.Pool | None = None
        self._listeners: list[asyncpg.Connection] = []

    def translate(self, sql: str) -> str:
        return sql

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            # JIT compiles a plan whose estimated cost is high, which costs hundreds of milliseconds
            # and pays off only for long analytical queries: none of the store's are (measured: a
            # search's delivery-state lookup on 22 million deliveries took 0.9 s with JIT, docs/performance.md)
            # plan_cache_mode stays "auto": statements on the archive's partitions name the days they
            # read, and PostgreSQL keeps planning them for their values (only those days), while the
            # many small statements keep their generic plans. Forcing custom plans everywhere cost
            # 25 µs a message of PostgreSQL's CPU end to end (docs/performance.md). The price of
            # "auto": at a statement's sixth run on each connection PostgreSQL builds a generic plan
            # once, to compare, over every partition (208 ms for a queue read at 1,522 partitions).
            # No parallel workers for this pool's statements either: they are index reads of a
            # few days, and where a day partition is large PostgreSQL plans a queue's read as a
            # parallel scan whose two workers take 4-6 ms to start, for a read that takes 0.5 ms
            # without them (measured on the 11-million-message archive, docs/performance.md).
            self._pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1],
                                                   server_settings={"jit": "off",
                                                                    "max_parallel_workers_per_gather": "0"})
            # Reads over the whole archive (a search with no time range) cannot leave partitions
            # out when they are planned: a custom plan would plan over every partition at each
            # run (220 ms at 1,522), a generic plan once per connection, leaving partitions out
            # as it runs. They have a small pool of their own, warmed when the store opens.
            self._wide = await asyncpg.create_pool(self.url, min_size=_WIDE_CONNECTIONS, max_size=_WIDE_CONNECTIONS,
                                                   server_settings={"jit": "off",
                                                                    "plan_cache_mode": "force_generic_plan"})
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.close()
        self._listeners = []
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._wide is not None:
            await self._wide.close()
            self._wide = None

    # -- reads outside a transaction: fetch, fetchrow, fetchval (_Reads) on the pool -----------------

    def _target(self) -> asyncpg.Pool:
        return self.pool

    def wide(self) -> Reader:
        if self._wide is None:
            raise StoreError("store is not open")
        return _PoolReads(self._wide)

    def dated(self) -> Reader:
        return _DatedReads(self.pool)

    async def warm(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run each statement once on every connection of the wide pool: each then holds its
        generic plan, and the first searches do not wait for it to be made."""
        if self._wide is None:
            raise StoreError("store is not open")
        wide = self._wide

        async def on_one() -> None:
            async with wide.acquire() as conn:
                for sql, args in statements:
                    await conn.fetch(sql, *args)
                await asyncio.sleep(0.05)  # held a moment, so that the others take other connections

        with errors():
            await asyncio.gather(*(on_one() for _ in range(_WIDE_CONNECTIONS)))

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        with errors():
            async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                yield _Connection(conn)

    # -- transactions ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction. Once the transaction has committed (or rolled
        back), a failure to hand the connection back (it died just after the commit) is not the
        caller's failure: the connection is dropped and the outcome stands."""
        with errors():
            conn = await self.pool.acquire()
            try:
                async with conn.transaction():
                    yield _Connection(conn)
            finally:
                try:
                    await self.pool.release(conn)
                except Exception as exc:  # asyncpg closes the connection and re-raises its reset error
                    log.warning("a PostgreSQL connection died after its transaction ended: %s", exc)

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        with errors():
            async with self.pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
                try:
                    yield
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def refresh_statistics(self, table: str) -> None:
        with errors():
            await self.pool.execute(f"ANALYZE {table}")

    async def listen(self, channel: str, wake: Callable[[], None]) -> bool:
        """Call ``wake`` whenever any node commits a NOTIFY on ``channel``. Best effort: a node
        that cannot listen still polls."""
        try:
            listener = await asyncpg.connect(self.url)
            await listener.add_listener(channel, lambda *_: wake())
        except (OSError, asyncpg.PostgresError):
            return False
        self._listeners.append(listener)
        return True


class _PoolReads(_Reads):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def _target(self) -> asyncpg.Pool:
        return self._pool


class _DatedReads(_Reads):
    """Reads whose parameters name the days they read, each planned for its own values: a
    statement prepared for the one run (asyncpg's ``prepare``, outside its statement cache).
    A cached statement would, at its sixth run on a connection, have PostgreSQL build a generic
    plan over every partition once to compare (240 ms at 1,522 partitions: the searches' p99);
    one prepared for one run is always a custom plan over its days. Costs one more round trip."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def _target(self) -> asyncpg.Pool:
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with errors():
            async with self._pool.acquire() as conn:
                return list(await (await conn.prepare(sql)).fetch(*args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]


class _Connection(_Reads):
    """One pooled connection in a transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def _target(self) -> asyncpg.Connection:
        return self._conn

    async def execute(self, sql: str, *args: Any) -> int:
        with errors():
            status: str = await self._conn.execute(sql, *args)
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1", "DELETE 0"
        return int(count) if count.isdigit() else 0

    async def write(self, sql: str, *args: Any) -> None:
        with errors():
            await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with errors():
            await self._conn.executemany(sql, rows)

    async def copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        with errors():
            await self._conn.copy_records_to_table(table, records=records, columns=list(columns))

    async def upsert(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                     conflict: str) -> None:
        """COPY into a temporary table, then one INSERT ... SELECT: an executemany of upserts is
        several times slower for a registry load of hundreds of thousands of rows."""
        names = ", ".join(columns)
        with errors():
            await self._conn.execute(f"CREATE TEMP TABLE incoming (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
            await self._conn.copy_records_to_table("incoming", records=records, columns=list(columns))
            await self._conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming {conflict}")  # noqa: S608 (table and columns are the store's own constants)
            await self._conn.execute("DROP TABLE incoming")

    async def notify(self, channel: str) -> None:
        with errors():  # sent at commit; the same one twice in a transaction is sent once
            await self._conn.execute("SELECT pg_notify($1, '')", channel)

    async def run_script(self, sql: str) -> None:
        with errors():
            await self._conn.execute(sql)
