"""SQLite, the embedded default: WAL mode, synchronous=FULL, one writer thread.

SQLite allows one writer at a time, so the writer connection lives on a thread of its own and a
transaction holds it (``BEGIN IMMEDIATE``) until it commits: every statement of every
transaction is queued to that thread, in order. Reads outside a transaction go to a second
connection on a reader thread, so they overlap another batch's write instead of queueing behind
it (WAL: readers never wait). A background connection checkpoints the WAL every second, so a big
commit is not followed by copying the whole WAL back on the request's time.

Several processes on one machine may open the same file (an API node and a delivery node,
docs/operations.md): every write is a ``BEGIN IMMEDIATE`` transaction, so writers take turns
(``busy_timeout``) and a claim or a settlement is as atomic across processes as within one.
A process learns of another's commits from ``PRAGMA data_version`` (``listen``).

The store's statements are written in PostgreSQL's SQL (sql/queries.sql); ``translate`` turns
them into SQLite's when they are loaded.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from dip.exceptions import ConstraintViolation, DipError, StoreError, UniqueViolation, UnstorableValue
from dip.store.connector import Connection, Reader, Row

T = TypeVar("T")
log = logging.getLogger("dip.store")

_WATCH_SECONDS = 0.02  # how often a process looks for other processes' commits

# -- translation from PostgreSQL's SQL --------------------------------------------------------

_RULES: list[tuple[re.Pattern[str], str]] = [
    # a list parameter joined as a table: SQLite has no arrays; the list is bound as JSON text
    # (see _bound) and json_each reads it back as rows
    (re.compile(r"unnest\(\$(\d+)::\w+\[\]\) AS (\w+)\((\w+)\)"), r"(SELECT value AS \3 FROM json_each($\1)) AS \2"),
    (re.compile(r"= ANY\(\$(\d+)::\w+\[\]\)"), r"IN (SELECT value FROM json_each($\1))"),
    # one writer at a time: a write transaction already keeps every other claimer out
    (re.compile(r"\s+FOR UPDATE( SKIP LOCKED)?"), ""),
    # numbered placeholders: SQLite's ?NNN binds the NNN-th parameter, as $NNN does
    (re.compile(r"\$(\d+)"), r"?\1"),
    # column types (SQLite keeps any value in any column; these names give the same affinities
    # and keep an INTEGER PRIMARY KEY the table's rowid)
    (re.compile(r"\bBIGSERIAL PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\b(BIGINT|BOOLEAN)\b"), "INTEGER"),
    (re.compile(r"\bBYTEA\b"), "BLOB"),
    (re.compile(r"\bTIMESTAMPTZ\b"), "TEXT"),
]
# statements of a migration with no meaning in SQLite (storage tuning)
_POSTGRES_ONLY = re.compile(r"^ALTER TABLE \w+ ALTER COLUMN \w+ SET COMPRESSION \w+$", re.IGNORECASE)


def translate(sql: str) -> str:
    """A statement in PostgreSQL's SQL, as SQLite runs it."""
    for pattern, replacement in _RULES:
        sql = pattern.sub(replacement, sql)
    return sql


def statements(script: str) -> list[str]:
    """A migration's statements, translated; comment lines dropped, PostgreSQL-only ones left out."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    found: list[str] = []
    trigger: list[str] = []  # a CREATE TRIGGER's statements end with ";" too: kept whole to its END
    for part in (p.strip() for p in "\n".join(lines).split(";")):
        if trigger or part.upper().startswith("CREATE TRIGGER"):
            trigger.append(part)
            if part.upper() == "END":
                found.append(";\n".join(trigger))
                trigger = []
        elif part:
            found.append(part)
    return [translate(s) for s in found if not _POSTGRES_ONLY.match(" ".join(s.split()))]


def _bound(args: Sequence[Any]) -> Sequence[Any]:
    """Parameters as sqlite3 binds them: a list parameter (``unnest($n::type[])``) as JSON text."""
    if any(isinstance(a, list | tuple) for a in args):
        return [orjson.dumps(a).decode() if isinstance(a, list | tuple) else a for a in args]
    return args


# -- errors ---------------------------------------------------------------------------------

_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def translate_error(exc: BaseException) -> BaseException:
    """sqlite3's exception as the DIP's: a constraint by its kind, a value the database cannot
    hold as the request's fault, anything else as the database failing."""
    if isinstance(exc, sqlite3.IntegrityError):
        if getattr(exc, "sqlite_errorname", None) in _UNIQUE:
            return UniqueViolation(str(exc))
        return ConstraintViolation(str(exc))
    if isinstance(exc, OverflowError):  # an integer beyond 64 bits, as PostgreSQL's data exception
        return UnstorableValue(str(exc))
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"SQLite: {exc}")
    return exc


# -- the database -----------------------------------------------------------------------------


class _Reads(abc.ABC):
    """fetch, fetchrow and fetchval over ``_run``: the connection (and thread) they run on."""

    @abc.abstractmethod
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._run(lambda c: c.execute(sql, _bound(args)).fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._run(lambda c: c.execute(sql, _bound(args)).fetchone())
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]


class SqliteDatabase(_Reads):
    dialect = "sqlite"
    concurrent_writers = False
    partitioned = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite")
        self._writer_lock = asyncio.Lock()  # one transaction at a time on the writer connection
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite-read")
        self._checkpoints = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def translate(self, sql: str) -> str:
        return translate(sql)

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except DipError:
            raise
        except (sqlite3.Error, OverflowError) as exc:
            raise translate_error(exc) from exc

    def _writer_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    def _reading(self) -> sqlite3.Connection:
        if self._reader_conn is None:
            if self._conn is None:
                raise StoreError("store is not open")
            self._reader_conn = _connect(self.path)
        return self._reader_conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Outside a transaction: on the reader connection."""
        return await self._call(self._reader, lambda: fn(self._reading()))

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(self._writer, lambda: fn(self._writer_conn()))

    # -- life cycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # checkpoints run on their own thread (_checkpoint_loop) so a big commit is not
            # followed by copying the whole WAL back into the database on the request's time
            conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn

        self._conn = await self._call(self._writer, connect)
        self._tasks.append(asyncio.create_task(self._checkpoint_loop(), name="dip-sqlite-checkpoint"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks = []
        self._checkpoints.shutdown(wait=True)
        loop = asyncio.get_running_loop()
        if self._reader_conn is not None:
            await loop.run_in_executor(self._reader, self._reader_conn.close)
            self._reader_conn = None
        self._reader.shutdown(wait=True)
        if self._conn is not None:
            await loop.run_in_executor(self._writer, self._conn.close)
            self._conn = None
        self._writer.shutdown(wait=True)

    async def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database in the background, every second when busy."""
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._checkpoints, _connect, self.path)
        try:
            while True:
                await asyncio.sleep(1.0)
                await loop.run_in_executor(self._checkpoints, self._checkpoint_once, conn)
        except asyncio.CancelledError:
            await loop.run_in_executor(self._checkpoints, conn.close)
            raise

    def _checkpoint_once(self, conn: sqlite3.Connection) -> None:
        try:
            _, wal_pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            wal = self.path.with_name(self.path.name + "-wal")
            if wal_pages > 0 and done == wal_pages and wal.stat().st_size > 256 << 20:
                # everything is copied back: shrink a WAL that a huge batch made large
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError):
            pass  # retried next second; a failed checkpoint loses nothing

    # -- reads outside a transaction: fetch, fetchrow, fetchval (_Reads) on the reader --------------

    def wide(self) -> Reader:
        return self  # no partitions: a read over the whole archive is like any other

    def dated(self) -> Reader:
        return self

    async def warm(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Nothing to warm."""

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """A read transaction on a connection of its own, so the reader's other reads never
        fall inside it."""
        conn = await self._call(self._reader, _connect, self.path)
        snapshot = _Snapshot(self, conn)
        try:
            await snapshot._run(lambda c: c.execute("BEGIN"))
            yield snapshot
        finally:
            await asyncio.shield(snapshot._run(_close))

    # -- transactions (the writer connection) ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._writer_lock:
            tx = _Transaction(self)
            try:
                yield tx
                await tx._run(_commit)
            except BaseException:
                # queued on the writer thread at once, so it runs before the next transaction
                # begins, even when this task is being cancelled and cannot wait for it
                done = asyncio.get_running_loop().run_in_executor(self._writer, _rollback, self._writer_conn())
                done.add_done_callback(_log_rollback_failure)
                raise

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        # nothing to hold: each migration runs in a BEGIN IMMEDIATE transaction that first looks
        # whether another process applied it
        yield

    async def refresh_statistics(self, table: str) -> None:
        """Nothing: SQLite plans well without statistics here, and sqlite_stat1 would change the
        plans the store relies on (an index walk for registry changes)."""

    # -- other nodes' commits ---------------------------------------------------------------------

    async def listen(self, channel: str, wake: Callable[[], None]) -> bool:
        """Call ``wake`` soon after any commit to the file, whichever process made it.

        ``PRAGMA data_version`` on a connection of its own changes whenever another connection
        (of this process or another) has committed; it is read from the WAL index in shared
        memory, so a look every ``_WATCH_SECONDS`` costs microseconds.
        """
        self._tasks.append(asyncio.create_task(self._watch(wake), name=f"dip-sqlite-watch-{channel}"))
        return True

    async def _watch(self, wake: Callable[[], None]) -> None:
        # read on the event loop (microseconds); never waits for a lock: busy means look again later
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")
        try:
            seen = None
            while True:
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    version = None  # a busy moment: look again next time
                if version is not None and version != seen:
                    if seen is not None:
                        wake()
                    seen = version
                await asyncio.sleep(_WATCH_SECONDS)
        finally:
            conn.close()


class _Transaction(_Reads):
    """Statements of one transaction, run on the writer thread in order.

    Hand-written pipelining, for speed: statements whose result is not needed (``write``,
    ``executemany``, ``copy``, ``upsert``), and ``BEGIN IMMEDIATE`` itself, wait here and go to
    the writer thread with the next statement that returns something, or with the COMMIT. Each
    trip costs a thread switch and a turn of the event loop while SQLite's one write lock is
    held, so a settlement takes two trips instead of six and a batch's write one.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._waiting: list[Callable[[sqlite3.Connection], object]] = [_begin]

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        waiting, self._waiting = self._waiting, []

        def run(c: sqlite3.Connection) -> T:
            for statement in waiting:
                statement(c)
            return fn(c)

        return await self._db._write(run)

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._run(lambda c: c.execute(sql, _bound(args)).rowcount)

    async def write(self, sql: str, *args: Any) -> None:
        bound = _bound(args)
        self._waiting.append(lambda c: c.execute(sql, bound))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._waiting.append(lambda c: c.executemany(sql, rows))

    async def copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        await self.executemany(_insert(table, columns), records)

    async def upsert(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                     conflict: str) -> None:
        await self.executemany(f"{_insert(table, columns)} {conflict}", records)

    async def notify(self, channel: str) -> None:
        """Nothing: other processes see the commit through ``PRAGMA data_version``."""

    async def run_script(self, sql: str) -> None:
        def run(c: sqlite3.Connection) -> None:
            for statement in statements(sql):
                c.execute(statement)

        await self._run(run)


class _Snapshot(_Reads):
    """A read transaction on a connection of its own (run on the reader thread)."""

    def __init__(self, db: SqliteDatabase, conn: sqlite3.Connection) -> None:
        self._db = db
        self._conn = conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db._call(self._db._reader, fn, self._conn)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _insert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join(f"?{i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 (table and columns are the store's own constants)


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        _rollback(conn)
    conn.close()


def _log_rollback_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("SQLite: could not roll back a failed transaction: %s", done.exception())
