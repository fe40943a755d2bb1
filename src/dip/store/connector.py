"""What a dialect supplies to the store: connections, transactions and a few primitives.

The store (``sql_store.SqlStore``) holds every operation's logic and runs named statements
(``sql/queries.sql``) through these interfaces; a dialect (``sqlite.SqliteDatabase``,
``postgres.PostgresDatabase``) only connects, runs statements, and supplies what the two
databases really do differently: how a batch of rows is loaded (COPY or executemany), how work
is claimed without two nodes taking the same queue (``FOR UPDATE SKIP LOCKED`` or a single
writer), and how a node learns of another's commits (LISTEN/NOTIFY or ``PRAGMA data_version``).
Each dialect turns its driver's errors into dip.exceptions at this boundary, so the store never
imports a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = Sequence[Any]


class Reader(Protocol):
    """Reads: on a database outside any transaction, or inside one."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row (None when there is no row)."""


class Connection(Reader, Protocol):
    """One open transaction: it commits when its context exits normally, else rolls back."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""

    async def write(self, sql: str, *args: Any) -> None:
        """Run one statement whose result is not needed. A dialect may send it together with the
        transaction's next statement (SQLite: one trip to the writer thread for several); an
        error then shows at that statement, still inside the transaction."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def copy(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        """Insert many rows at once (PostgreSQL: COPY)."""

    async def upsert(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                     conflict: str) -> None:
        """Insert many rows, ``conflict`` (an ``ON CONFLICT ...`` clause) deciding for existing keys.
        ``records`` must not repeat a key."""

    async def notify(self, channel: str) -> None:
        """Tell listening nodes at commit (a no-op where nodes learn of commits otherwise)."""

    async def run_script(self, sql: str) -> None:
        """Several statements (a migration), in this transaction."""


class Database(Reader, Protocol):
    dialect: str  # "sqlite" | "postgres"
    # True: several connections write at once, so a message batch may hold its transaction open
    # while the batch is still being checked (PostgreSQL COPYs chunks as they come). False: one
    # writer for the whole database, so a batch is checked first and written in one short
    # transaction at the end (SQLite).
    concurrent_writers: bool
    # True: the archive's tables are partitioned by retention class and day (PostgreSQL,
    # dip.store.partitions), so a purge drops partitions and lookups pass the day they know
    partitioned: bool

    def translate(self, sql: str) -> str:
        """A statement of sql/queries.sql (PostgreSQL's SQL) in this dialect."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...

    def wide(self) -> Reader:
        """Where reads over the whole archive run (a search with no time range): PostgreSQL
        plans them once per connection instead of over every partition at each run."""

    def dated(self) -> Reader:
        """Where reads run whose parameters name the days they read (a lookup within the days a
        transaction ID names): PostgreSQL plans each for its values, over those days' partitions
        only, and never builds a plan over every partition for them."""

    async def warm(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run these (wide reads) once where they will run, so their first real run is not slow."""

    def snapshot(self) -> AbstractAsyncContextManager[Reader]:
        """Several reads that see one consistent state of the database."""

    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while migrations run, so that two nodes starting at once apply each migration once."""

    async def listen(self, channel: str, wake: Callable[[], None]) -> bool:
        """Have ``wake`` called soon after another connection commits (``channel`` names what for);
        False when this database cannot."""

    async def refresh_statistics(self, table: str) -> None:
        """After a bulk load: let the planner see the table's new size."""
