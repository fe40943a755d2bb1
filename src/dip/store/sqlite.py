"""SQLite store: the embedded default. WAL mode, synchronous=FULL, one writer thread.

SQLite allows one writer at a time, so the store owns a single connection on a single thread
and every call is queued to it; a batch is one transaction (``BEGIN IMMEDIATE``), which is what
makes it both durable and fast (tens of thousands of rows per commit instead of one).

Several processes on one machine may open the same file (an API node and a delivery node,
docs/operations.md): every write is a ``BEGIN IMMEDIATE`` transaction, so writers take turns
(``busy_timeout``) and a claim or a settlement is as atomic across processes as within one.
A process learns of another's commits from ``PRAGMA data_version`` (``listen_deliveries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dip.exceptions import StoreError, UniqueViolation
from dip.store.base import (
    AppointmentRow,
    Claim,
    DeliveryRow,
    DirectoryRows,
    MessageRow,
    ParticipantRow,
    PendingDelivery,
    Settlement,
    WebhookRow,
    by_outcome,
)
from dip.store.message_cache import PENDING_SQL, STORED_SQL, MessageCache, StoredMessage, pending_from
from dip.store.migrations import migrations
from dip.store.reports import HISTORY_SQL, DeliveryHistory, QueueState, Undelivered, queues_sql, undelivered_sql

T = TypeVar("T")

_MESSAGE_COLUMNS = (
    "transaction_id, interface_id, event_code, schema_version, sender_id, sender_role, dcp_id, sur,"
    " correlation_id, mpan, received_at, payload, a0_secondary, a0_always, common_start, common_end"
)


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite")
        # hot reads (registry lookups, reference checks, queue heads) on a second connection, so
        # they overlap another batch's write instead of queueing behind it (WAL: readers never wait)
        self._reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite-read")
        self._reader: sqlite3.Connection | None = None
        self._checkpoint_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dip-sqlite-checkpoint")
        self._checkpointer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.IntegrityError as exc:
            raise UniqueViolation(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(reader connection, *args)`` on the reader thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader_executor, fn, self._reader_conn(), *args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def _reader_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            if self._conn is None:
                raise StoreError("store is not open")
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout=10000")
        return self._reader

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        # Checkpoints run on their own thread (see _checkpoint) so a big commit is not followed
        # by copying the whole WAL back into the database on the request's time.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in migrations("sqlite"):
                if version not in done:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, datetime('now'))", (version,)
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def open(self) -> None:
        await self._run(self._open)
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="dip-sqlite-checkpoint")

    async def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database in the background, every second when busy."""
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._checkpoint_executor, self._checkpoint_connect)
        try:
            while True:
                await asyncio.sleep(1.0)
                await loop.run_in_executor(self._checkpoint_executor, self._checkpoint_once, conn)
        except asyncio.CancelledError:
            await loop.run_in_executor(self._checkpoint_executor, conn.close)
            raise

    def _checkpoint_connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _checkpoint_once(self, conn: sqlite3.Connection) -> None:
        try:
            _, wal_pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            wal = self.path.with_name(self.path.name + "-wal")
            if wal_pages > 0 and done == wal_pages and wal.stat().st_size > 256 << 20:
                # everything is copied back: shrink a WAL that a huge batch made large
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError):
            pass  # retried next second; a failed checkpoint loses nothing

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait({self._watcher})
            self._watcher = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.wait({self._checkpointer})
            self._checkpointer = None
        self._checkpoint_executor.shutdown(wait=True)
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader_executor, self._reader.close)
            self._reader = None
        self._reader_executor.shutdown(wait=True)
        if self._conn is not None:
            await self._run(self.conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    def _write(self, fn: Callable[[sqlite3.Connection], T], bump: bool = False) -> T:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            if bump:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'state_version'")
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- state ---------------------------------------------------------------------------------

    async def state_version(self) -> int:
        def q() -> int:
            return int(self.conn.execute("SELECT value FROM meta WHERE key='state_version'").fetchone()[0])

        return await self._run(q)

    async def load_directory(self) -> DirectoryRows:
        def q() -> DirectoryRows:
            c = self.conn
            return DirectoryRows(
                participants=[
                    ParticipantRow(r[0], r[1], tuple(json.loads(r[2])), bool(r[3]))
                    for r in c.execute("SELECT id, name, roles, active FROM participants")
                ],
                api_keys=list(c.execute("SELECT key_hash, participant_id FROM api_keys")),
                certificates=list(c.execute("SELECT fingerprint, participant_id FROM certificates")),
                providers=[
                    (r[0], r[1], tuple(json.loads(r[2])))
                    for r in c.execute("SELECT participant_id, dcp_id, roles FROM connection_providers")
                ],
                admin_keys=[r[0] for r in c.execute("SELECT key_hash FROM admin_keys")],
                webhooks=[WebhookRow._make(r) for r in c.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks")],
            )

        return await self._run(q)

    async def load_channels(self) -> list[tuple[str, bytes]]:
        def q() -> list[tuple[str, bytes]]:
            return [(r[0], bytes(r[1])) for r in self.conn.execute("SELECT interface_id, definition FROM channels")]

        return await self._run(q)

    # -- participants --------------------------------------------------------------------------

    async def put_participant(self, row: ParticipantRow, now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            exists = c.execute("SELECT 1 FROM participants WHERE id = ?", (row.id,)).fetchone()
            c.execute(
                "INSERT INTO participants (id, name, roles, active, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " roles = excluded.roles, active = excluded.active, updated_at = excluded.updated_at",
                (row.id, row.name, json.dumps(list(row.roles)), int(row.active), now, now),
            )
            return exists is None

        return await self._run(self._write, w, True)

    async def offboard_participant(self, participant_id: str, channel_updates: list[tuple[str, bytes]],
                                   now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE participants SET active = 0, updated_at = ? WHERE id = ? AND active = 1",
                (now, participant_id),
            )
            c.execute(
                "DELETE FROM connection_providers WHERE participant_id = ? OR dcp_id = ?",
                (participant_id, participant_id),
            )
            c.execute("DELETE FROM webhooks WHERE participant_id = ?", (participant_id,))
            for interface_id, definition in channel_updates:
                c.execute(
                    "UPDATE channels SET definition = ?, updated_at = ? WHERE interface_id = ?",
                    (definition, now, interface_id),
                )
            return cur.rowcount > 0

        return await self._run(self._write, w, True)

    async def add_api_key(self, participant_id: str, key_hash: str, now: int) -> None:
        def w(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO api_keys VALUES (?, ?, ?)", (key_hash, participant_id, now))

        await self._run(self._write, w, True)

    async def add_certificate(self, participant_id: str, fingerprint: str, pem: str, not_after: int,
                              now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING",
                (fingerprint, participant_id, pem, not_after, now),
            )
            return cur.rowcount > 0

        return await self._run(self._write, w, True)

    async def certificate_holder(self, fingerprint: str) -> str | None:
        def q() -> str | None:
            row = self.conn.execute(
                "SELECT participant_id FROM certificates WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(q)

    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: tuple[str, ...],
                                      now: int) -> None:
        def w(c: sqlite3.Connection) -> None:
            if roles:
                c.execute(
                    "INSERT INTO connection_providers VALUES (?, ?, ?, ?) ON CONFLICT (participant_id, dcp_id)"
                    " DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at",
                    (participant_id, dcp_id, json.dumps(list(roles)), now),
                )
            else:
                c.execute(
                    "DELETE FROM connection_providers WHERE participant_id = ? AND dcp_id = ?",
                    (participant_id, dcp_id),
                )

        await self._run(self._write, w, True)

    async def add_admin_key(self, key_hash: str, now: int) -> None:
        def w(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO admin_keys VALUES (?, ?) ON CONFLICT DO NOTHING", (key_hash, now))

        await self._run(self._write, w, True)

    # -- channels ------------------------------------------------------------------------------

    async def put_channel(self, interface_id: str, definition: bytes, now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            exists = c.execute("SELECT 1 FROM channels WHERE interface_id = ?", (interface_id,)).fetchone()
            c.execute(
                "INSERT INTO channels VALUES (?, ?, ?) ON CONFLICT (interface_id) DO UPDATE"
                " SET definition = excluded.definition, updated_at = excluded.updated_at",
                (interface_id, definition, now),
            )
            return exists is None

        return await self._run(self._write, w, True)

    async def delete_channel(self, interface_id: str) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM channels WHERE interface_id = ?", (interface_id,)).rowcount > 0

        return await self._run(self._write, w, True)

    # -- messages ------------------------------------------------------------------------------

    @staticmethod
    def _existing(conn: sqlite3.Connection, rows: list[MessageRow]) -> set[tuple[str, str]]:
        existing: set[tuple[str, str]] = set()
        by_sender: dict[str, list[str]] = {}
        for r in rows:
            by_sender.setdefault(r.sender_id, []).append(r.sur)
        for sender_id, surs in by_sender.items():
            for start in range(0, len(surs), 900):
                chunk = surs[start:start + 900]
                marks = ",".join("?" * len(chunk))
                existing.update(
                    (sender_id, sur) for (sur,) in conn.execute(
                        f"SELECT sur FROM messages WHERE sender_id = ? AND sur IN ({marks})", [sender_id, *chunk]
                    )
                )
        return existing

    @contextlib.asynccontextmanager
    async def message_batch(self) -> AsyncIterator[_SqliteBatch]:
        # SQLite has one writer: the rows are checked as they come (reads) and written in one
        # transaction at the end, so a batch still being validated never holds the write lock.
        batch = _SqliteBatch(self)
        yield batch
        if batch.rows or batch.deliveries:
            await self._run(self._write, batch.write)

    async def insert_messages(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                              appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        """Check and insert in one write transaction: no other writer can slip in between."""
        if not rows:
            return []

        def w(c: sqlite3.Connection) -> list[int]:
            batch = _SqliteBatch(self)
            skipped = batch.keep(rows, deliveries, appointments, self._existing(c, rows))
            batch.write(c)
            return skipped

        return await self._run(self._write, w)

    async def get_message(self, transaction_id: str) -> MessageRow | None:
        def q() -> MessageRow | None:
            row = self.conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE transaction_id = ?", (transaction_id,)
            ).fetchone()
            return None if row is None else MessageRow._make((*row[:11], bytes(row[11]), *row[12:]))

        return await self._run(q)

    @staticmethod
    def _put_appointments(c: sqlite3.Connection, rows: Sequence[AppointmentRow]) -> int:
        seq = int(c.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'registry_seq' RETURNING value").fetchone()[0])
        c.executemany(
            f"INSERT INTO mpan_appointments ({_APPOINTMENT_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, {seq})"
            " ON CONFLICT (mpan, role, effective_from) DO UPDATE SET participant_id = excluded.participant_id,"
            " effective_to = excluded.effective_to, seq = excluded.seq",
            rows,
        )
        return seq

    async def put_appointments(self, rows: list[AppointmentRow]) -> int:
        return await self._run(self._write, lambda c: self._put_appointments(c, rows))

    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]:
        def q() -> tuple[int, list[str] | None]:
            version = int(self.conn.execute("SELECT value FROM meta WHERE key = 'registry_seq'").fetchone()[0])
            if since < 0 or version == since:
                return version, None if since < 0 else []
            # walks the seq index (a DISTINCT would scan the primary key: seconds on millions of rows)
            rows = [m for (m,) in self.conn.execute(
                "SELECT mpan FROM mpan_appointments INDEXED BY mpan_appointments_seq WHERE seq > ?"
                " ORDER BY seq LIMIT ?", (since, limit + 1))]
            return version, None if len(rows) > limit else list(dict.fromkeys(rows))

        return await self._run(q)

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]:
        def q(conn: sqlite3.Connection) -> list[AppointmentRow]:
            found: list[AppointmentRow] = []
            unique = sorted(set(mpans))
            for start in range(0, len(unique), 900):
                chunk = unique[start:start + 900]
                marks = ",".join("?" * len(chunk))
                found.extend(AppointmentRow._make(r) for r in conn.execute(
                    f"SELECT {_APPOINTMENT_COLUMNS} FROM mpan_appointments WHERE mpan IN ({marks})", chunk,
                ))
            return found

        return await self._read(q)

    async def registry_version(self) -> int:
        def q() -> int:
            return int(self.conn.execute("SELECT value FROM meta WHERE key = 'registry_seq'").fetchone()[0])

        return await self._run(q)

    async def put_webhook(self, row: WebhookRow, now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            exists = c.execute(
                "SELECT 1 FROM webhooks WHERE participant_id = ? AND kind = ? AND interface_id = ?", row[:3]
            ).fetchone()
            c.execute(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (participant_id, kind, interface_id) DO UPDATE SET url = excluded.url,"
                " max_message_count = excluded.max_message_count, max_payload_kb = excluded.max_payload_kb,"
                " registered_by = excluded.registered_by, updated_at = excluded.updated_at",
                (*row, now),
            )
            return exists is None

        return await self._run(self._write, w, True)

    async def delete_webhook(self, participant_id: str, kind: str, interface_id: str) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            return c.execute(
                "DELETE FROM webhooks WHERE participant_id = ? AND kind = ? AND interface_id = ?",
                (participant_id, kind, interface_id),
            ).rowcount > 0

        return await self._run(self._write, w, True)

    async def dip_identity(self, key_pem: str, cert_pem: str, now: int) -> tuple[str, str]:
        def w(c: sqlite3.Connection) -> tuple[str, str]:
            c.execute("INSERT INTO dip_identity VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                      (key_pem, cert_pem, now))
            row = c.execute("SELECT key_pem, cert_pem FROM dip_identity WHERE id = 1").fetchone()
            return str(row[0]), str(row[1])

        return await self._run(self._write, w)

    # -- delivery queues ---------------------------------------------------------------------

    async def listen_deliveries(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` soon after any commit to the file, whichever process made it.

        ``PRAGMA data_version`` on a connection of its own changes whenever another connection
        (of this process or another) has committed; it is read from the WAL index in shared
        memory, so a look every ``_WATCH_SECONDS`` costs microseconds. A process's own ingest
        wakes its worker directly; this is for a delivery node beside an API node.
        """
        self._watcher = asyncio.create_task(self._watch(wake), name="dip-sqlite-watch")
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

    @staticmethod
    def _enqueue(c: sqlite3.Connection, rows: Sequence[DeliveryRow], now: int) -> None:
        c.executemany(
            "INSERT INTO deliveries (queue, transaction_id, recipient_id, role, kind, accepted_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        queues = {r.queue: r for r in rows}
        c.executemany(
            "INSERT INTO queues (queue, recipient_id, interface_id, next_attempt_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (queue) DO UPDATE SET next_attempt_at = CASE WHEN queues.retries = 0"
            " THEN min(queues.next_attempt_at, excluded.next_attempt_at) ELSE queues.next_attempt_at END",
            [(q, r.recipient_id, q.split("|", 1)[1], now) for q, r in queues.items()],
        )

    async def enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        if rows:
            await self._run(self._write, lambda c: self._enqueue(c, rows, now))

    async def make_due(self, recipient_id: str, now: int) -> None:
        await self._run(self._write, lambda c: c.execute(
            "UPDATE queues SET next_attempt_at = ? WHERE recipient_id = ? AND retries = 0 AND next_attempt_at > ?",
            (now, recipient_id, now)))

    async def claim(self, owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        def w(c: sqlite3.Connection) -> list[Claim]:
            return [Claim._make(r) for r in c.execute(
                "UPDATE queues SET lease_owner = ?, lease_until = ? WHERE queue IN ("
                " SELECT queue FROM queues WHERE next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.queue = queues.queue AND d.state = 'pending'"
                " AND d.id > queues.delivered_through)"
                " ORDER BY next_attempt_at LIMIT ?) RETURNING queue, recipient_id, interface_id, retries",
                (owner, now + lease, now, now, limit),
            ).fetchall()]

        return await self._run(self._write, w)

    async def pending(self, queue: str, limit: int, cache: MessageCache | None = None) -> list[PendingDelivery]:
        def q(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                f"{PENDING_SQL} WHERE d.queue = ? AND d.state = 'pending'"
                " AND d.id > (SELECT delivered_through FROM queues WHERE queue = ?) ORDER BY d.id LIMIT ?",
                (queue, queue, limit)).fetchall()

        return await pending_from(await self._read(q), self._stored_messages, cache)

    async def _stored_messages(self, transaction_ids: list[str]) -> dict[str, StoredMessage]:
        def q(conn: sqlite3.Connection) -> dict[str, StoredMessage]:
            found = {}
            for start in range(0, len(transaction_ids), 900):
                chunk = transaction_ids[start:start + 900]
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(f"{STORED_SQL} WHERE transaction_id IN ({marks})", chunk):
                    found[r[0]] = StoredMessage(*r[1:])
            return found

        return await self._read(q)

    async def settle(self, queue: str, owner: str, settlements: list[Settlement], next_attempt_at: int,
                     retries: int, relay: list[DeliveryRow], now: int) -> bool:
        def w(c: sqlite3.Connection) -> bool:
            holder = c.execute("SELECT lease_owner FROM queues WHERE queue = ?", (queue,)).fetchone()
            if holder is None or holder[0] != owner:
                return False
            written, runs = by_outcome(settlements)
            for (state, status, error), ids in written.items():
                for start in range(0, len(ids), 900):
                    chunk = ids[start:start + 900]
                    c.execute(
                        "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?,"
                        f" done_at = ? WHERE id IN ({','.join('?' * len(chunk))})",
                        (state, status, error, None if state == "pending" else now, *chunk),
                    )
            c.executemany(
                "INSERT OR IGNORE INTO delivery_calls (queue, last_id, first_id, messages, status, note, done_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(queue, r.last_id, r.first_id, r.messages, r.status, r.note, now) for r in runs],
            )
            c.execute(
                "UPDATE queues SET next_attempt_at = ?, retries = ?, lease_owner = NULL, lease_until = NULL,"
                " delivered_through = max(delivered_through, ?) WHERE queue = ?",
                (next_attempt_at, retries, max((r.last_id for r in runs), default=0), queue),
            )
            if relay:
                self._enqueue(c, relay, now)
            return True

        return await self._run(self._write, w)

    async def senders(self, transaction_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        def q() -> dict[str, tuple[str, str | None]]:
            found: dict[str, tuple[str, str | None]] = {}
            unique = sorted(set(transaction_ids))
            for start in range(0, len(unique), 900):
                chunk = unique[start:start + 900]
                for tid, sender, correlation in self.conn.execute(
                    "SELECT transaction_id, sender_id, correlation_id FROM messages"
                    f" WHERE transaction_id IN ({','.join('?' * len(chunk))})", chunk):
                    found[tid] = (sender, correlation)
            return found

        return await self._run(q)

    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]:
        def q() -> list[tuple[str, str, str, str, str]]:
            found: list[tuple[str, str, str, str, str]] = []
            for start in range(0, len(transaction_ids), 900):
                chunk = transaction_ids[start:start + 900]
                found.extend(self.conn.execute(
                    "SELECT transaction_id, recipient_id, role, kind, state FROM delivery_status"
                    f" WHERE transaction_id IN ({','.join('?' * len(chunk))}) ORDER BY id", chunk))
            return found

        return await self._run(q)

    async def delivery_history(self, transaction_id: str) -> list[DeliveryHistory]:
        def q(conn: sqlite3.Connection) -> list[DeliveryHistory]:
            return [DeliveryHistory._make(r) for r in conn.execute(HISTORY_SQL.format("?"), (transaction_id,))]

        return await self._read(q)

    async def queue_overview(self, recipient_id: str | None = None) -> list[QueueState]:
        def q(conn: sqlite3.Connection) -> list[QueueState]:
            if recipient_id is None:
                return [QueueState._make(r) for r in conn.execute(queues_sql(None))]
            return [QueueState._make(r) for r in conn.execute(queues_sql("?"), (recipient_id,))]

        return await self._read(q)

    async def undelivered(self, state: str, after: int = 0, limit: int = 100, recipient_id: str | None = None,
                          interface_id: str | None = None) -> list[Undelivered]:
        args: list[object] = [after, *(v for v in (recipient_id, interface_id) if v is not None), limit]
        sql = undelivered_sql(state, ["?"] * len(args), recipient_id is not None, interface_id is not None)

        def q(conn: sqlite3.Connection) -> list[Undelivered]:
            return [Undelivered._make(r) for r in conn.execute(sql, args)]

        return await self._read(q)

    async def count_messages(self) -> int:
        def q() -> int:
            return int(self.conn.execute("SELECT count(*) FROM messages").fetchone()[0])

        return await self._run(q)


class _SqliteBatch:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.rows: list[MessageRow] = []
        self.deliveries: list[DeliveryRow] = []
        self.appointments: list[AppointmentRow] = []

    async def add(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                  appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        existing = await self.store._read(self.store._existing, rows) if rows else set()
        return self.keep(rows, deliveries, appointments, existing)

    def keep(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]],
             appointments: Sequence[Sequence[AppointmentRow]], existing: set[tuple[str, str]]) -> list[int]:
        skipped = [i for i, r in enumerate(rows) if (r.sender_id, r.sur) in existing] if existing else []
        left_out = set(skipped)
        stored = range(len(rows)) if not skipped else [i for i in range(len(rows)) if i not in left_out]
        self.rows.extend(rows[i] for i in stored)
        if deliveries:
            self.deliveries.extend(d for i in stored for d in deliveries[i])
        if appointments:
            self.appointments.extend(a for i in stored for a in appointments[i])
        return skipped

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join('?' * len(MessageRow._fields))})", self.rows
        )
        if self.deliveries:
            SqliteStore._enqueue(conn, self.deliveries, max(d.accepted_at for d in self.deliveries))
        if self.appointments:
            SqliteStore._put_appointments(conn, self.appointments)


_WATCH_SECONDS = 0.02  # how often a process looks for other processes' commits

_APPOINTMENT_COLUMNS = "mpan, role, effective_from, participant_id, effective_to"
_WEBHOOK_COLUMNS = "participant_id, kind, interface_id, url, max_message_count, max_payload_kb, registered_by"


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
