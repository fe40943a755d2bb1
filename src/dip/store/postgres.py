"""PostgreSQL store (asyncpg). Batches go in with COPY inside one transaction.

Sender-reference uniqueness is a unique index; the batch first reads which references already
exist (one join against the batch's arrays) and copies the rest. Two concurrent batches
carrying the same new reference make the later COPY fail on the index; the whole transaction is
then retried, and the second read finds the winner's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import asyncpg

from dip.exceptions import StoreError, UniqueViolation, UnstorableValue
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

_MESSAGE_COLUMNS = [
    "transaction_id", "interface_id", "event_code", "schema_version", "sender_id", "sender_role", "dcp_id",
    "sur", "correlation_id", "mpan", "received_at", "payload", "a0_secondary", "a0_always", "common_start",
    "common_end",
]
_APPOINTMENT_COLUMNS = ["mpan", "role", "effective_from", "participant_id", "effective_to"]
_MIGRATION_LOCK = 7_360_201  # pg_advisory_lock key for schema changes
_BUMP = "UPDATE meta SET value = value + 1 WHERE key = 'state_version'; SELECT pg_notify('dip_state', '')"


_P = ParamSpec("_P")
_T = TypeVar("_T")
_CONNECTION_ERRORS = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.TimeoutError,
)


def _translated(method: Callable[_P, Coroutine[Any, Any, _T]]) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Driver errors become StoreError (UniqueViolation for a unique key) at the store's boundary."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        except asyncpg.DataError as exc:  # SQLSTATE class 22: a value of the request, not the database
            raise UnstorableValue(str(exc)) from exc
        except (StoreError, UnstorableValue):
            raise
        except _CONNECTION_ERRORS as exc:
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    return wrapper


_CHANNEL = "dip_deliveries"
log = logging.getLogger("dip.store")


class PostgresStore:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self._sizes = (min_size, max_size)
        self._listener: asyncpg.Connection | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1])
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, sql in migrations("postgres"):
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in a transaction. Once the transaction has committed (or rolled
        back), a failure to hand the connection back (it died just after the commit) is not the
        caller's failure: the connection is dropped and the outcome stands."""
        conn = await self.pool.acquire()
        try:
            async with conn.transaction():
                yield conn
        finally:
            try:
                await self.pool.release(conn)
            except Exception as exc:  # asyncpg closes the connection and re-raises its reset error
                log.warning("a PostgreSQL connection died after its transaction ended: %s", exc)

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def listen_deliveries(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` whenever any node commits new deliveries (LISTEN/NOTIFY), so every
        node's worker starts at once rather than at its next poll. Best effort: polling remains."""
        try:
            self._listener = await asyncpg.connect(self.url)
            await self._listener.add_listener(_CHANNEL, lambda *_: wake())
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    async def _write(self, statements: list[tuple[str, tuple[Any, ...]]], bump: bool = True) -> list[str]:
        try:
            async with self._transaction() as conn:
                results = [await conn.execute(sql, *args) for sql, args in statements]
                if bump:
                    await conn.execute(_BUMP)
                return results
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        except asyncpg.DataError as exc:
            raise UnstorableValue(str(exc)) from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    @_translated
    async def state_version(self) -> int:
        return int(await self.pool.fetchval("SELECT value FROM meta WHERE key = 'state_version'"))

    @_translated
    async def load_directory(self) -> DirectoryRows:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            participants = await conn.fetch("SELECT id, name, roles, active FROM participants")
            keys = await conn.fetch("SELECT key_hash, participant_id FROM api_keys")
            certs = await conn.fetch("SELECT fingerprint, participant_id FROM certificates")
            providers = await conn.fetch("SELECT participant_id, dcp_id, roles FROM connection_providers")
            admins = await conn.fetch("SELECT key_hash FROM admin_keys")
            webhooks = await conn.fetch(f"SELECT {', '.join(WebhookRow._fields)} FROM webhooks")
        return DirectoryRows(
            participants=[ParticipantRow(r[0], r[1], tuple(json.loads(r[2])), bool(r[3])) for r in participants],
            api_keys=[(r[0], r[1]) for r in keys],
            certificates=[(r[0], r[1]) for r in certs],
            providers=[(r[0], r[1], tuple(json.loads(r[2]))) for r in providers],
            admin_keys=[r[0] for r in admins],
            webhooks=[WebhookRow._make(r) for r in webhooks],
        )

    @_translated
    async def load_channels(self) -> list[tuple[str, bytes]]:
        rows = await self.pool.fetch("SELECT interface_id, definition FROM channels")
        return [(r[0], bytes(r[1])) for r in rows]

    @_translated
    async def put_participant(self, row: ParticipantRow, now: int) -> bool:
        async with self._transaction() as conn:
            created = await conn.fetchval(
                "INSERT INTO participants (id, name, roles, active, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " roles = excluded.roles, active = excluded.active, updated_at = excluded.updated_at"
                " RETURNING (xmax = 0)",
                row.id, row.name, json.dumps(list(row.roles)), row.active, now,
            )
            await conn.execute(_BUMP)
        return bool(created)

    @_translated
    async def offboard_participant(self, participant_id: str, channel_updates: list[tuple[str, bytes]],
                                   now: int) -> bool:
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("UPDATE participants SET active = false, updated_at = $1 WHERE id = $2 AND active",
             (now, participant_id)),
            ("DELETE FROM connection_providers WHERE participant_id = $1 OR dcp_id = $1", (participant_id,)),
            ("DELETE FROM webhooks WHERE participant_id = $1", (participant_id,)),
        ]
        statements += [
            ("UPDATE channels SET definition = $1, updated_at = $2 WHERE interface_id = $3", (d, now, iid))
            for iid, d in channel_updates
        ]
        results = await self._write(statements)
        return results[0] != "UPDATE 0"

    @_translated
    async def add_api_key(self, participant_id: str, key_hash: str, now: int) -> None:
        await self._write([("INSERT INTO api_keys VALUES ($1, $2, $3)", (key_hash, participant_id, now))])

    @_translated
    async def add_certificate(self, participant_id: str, fingerprint: str, pem: str, not_after: int,
                              now: int) -> bool:
        results = await self._write([(
            "INSERT INTO certificates VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fingerprint) DO NOTHING",
            (fingerprint, participant_id, pem, not_after, now),
        )])
        return results[0] == "INSERT 0 1"

    @_translated
    async def certificate_holder(self, fingerprint: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT participant_id FROM certificates WHERE fingerprint = $1", fingerprint
        )
        return None if value is None else str(value)

    @_translated
    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: tuple[str, ...],
                                      now: int) -> None:
        if roles:
            sql = (
                "INSERT INTO connection_providers VALUES ($1, $2, $3, $4) ON CONFLICT (participant_id, dcp_id)"
                " DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at"
            )
            await self._write([(sql, (participant_id, dcp_id, json.dumps(list(roles)), now))])
        else:
            await self._write([(
                "DELETE FROM connection_providers WHERE participant_id = $1 AND dcp_id = $2",
                (participant_id, dcp_id),
            )])

    @_translated
    async def add_admin_key(self, key_hash: str, now: int) -> None:
        await self._write([("INSERT INTO admin_keys VALUES ($1, $2) ON CONFLICT DO NOTHING", (key_hash, now))])

    @_translated
    async def put_channel(self, interface_id: str, definition: bytes, now: int) -> bool:
        async with self._transaction() as conn:
            created = await conn.fetchval(
                "INSERT INTO channels VALUES ($1, $2, $3) ON CONFLICT (interface_id) DO UPDATE"
                " SET definition = excluded.definition, updated_at = excluded.updated_at RETURNING (xmax = 0)",
                interface_id, definition, now,
            )
            await conn.execute(_BUMP)
        return bool(created)

    @_translated
    async def delete_channel(self, interface_id: str) -> bool:
        results = await self._write([("DELETE FROM channels WHERE interface_id = $1", (interface_id,))])
        return results[0] != "DELETE 0"

    @contextlib.asynccontextmanager
    async def message_batch(self) -> AsyncIterator[_PostgresBatch]:
        """One transaction; each ``add`` COPYs its rows at once, so storing overlaps validating."""
        try:
            async with self._transaction() as conn:
                batch = _PostgresBatch(conn)
                yield batch
                await batch.finish()
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        except asyncpg.DataError as exc:
            raise UnstorableValue(str(exc)) from exc
        except _CONNECTION_ERRORS as exc:
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    @_translated
    async def insert_messages(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                              appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        if not rows:
            return []
        for attempt in range(5):
            try:
                async with self.message_batch() as batch:
                    return await batch.add(rows, deliveries, appointments)
            except UniqueViolation:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    @_translated
    async def get_message(self, transaction_id: str) -> MessageRow | None:
        row = await self.pool.fetchrow(
            f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE transaction_id = $1", transaction_id
        )
        return None if row is None else MessageRow._make((*row[:11], bytes(row[11]), *row[12:]))

    @staticmethod
    async def _put_appointments(conn: asyncpg.Connection, rows: Sequence[AppointmentRow]) -> int:
        seq = int(await conn.fetchval(
            "UPDATE meta SET value = value + 1 WHERE key = 'registry_seq' RETURNING value"))
        await conn.execute(
            "CREATE TEMP TABLE incoming (LIKE mpan_appointments INCLUDING DEFAULTS) ON COMMIT DROP")
        # the last row of a key wins, as in one load of the same file twice
        latest = list({(r.mpan, r.role, r.effective_from): r for r in rows}.values())
        await conn.copy_records_to_table("incoming", records=[(*r, seq) for r in latest],
                                         columns=[*_APPOINTMENT_COLUMNS, "seq"])
        await conn.execute(
            "INSERT INTO mpan_appointments SELECT * FROM incoming"
            " ON CONFLICT (mpan, role, effective_from) DO UPDATE SET participant_id = excluded.participant_id,"
            " effective_to = excluded.effective_to, seq = excluded.seq"
        )
        await conn.execute("DROP TABLE incoming")
        return seq

    @_translated
    async def put_appointments(self, rows: list[AppointmentRow]) -> int:
        async with self._transaction() as conn:
            seq = await self._put_appointments(conn, rows)
        if len(rows) >= 10_000:  # a bulk load: plans for the registry queries need fresh statistics
            await self.pool.execute("ANALYZE mpan_appointments")
        return seq

    @_translated
    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]:
        version = int(await self.pool.fetchval("SELECT value FROM meta WHERE key = 'registry_seq'"))
        if since < 0 or version == since:
            return version, None if since < 0 else []
        # ORDER BY seq walks the seq index in any plan (a DISTINCT scans the table)
        rows = [r[0] for r in await self.pool.fetch(
            "SELECT mpan FROM mpan_appointments WHERE seq > $1 ORDER BY seq LIMIT $2", since, limit + 1)]
        return version, None if len(rows) > limit else list(dict.fromkeys(rows))

    @_translated
    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]:
        rows = await self.pool.fetch(
            f"SELECT {', '.join(_APPOINTMENT_COLUMNS)} FROM mpan_appointments WHERE mpan = ANY($1::text[])",
            sorted(set(mpans)),
        )
        return [AppointmentRow._make(r) for r in rows]

    @_translated
    async def registry_version(self) -> int:
        return int(await self.pool.fetchval("SELECT value FROM meta WHERE key = 'registry_seq'"))

    @_translated
    async def put_webhook(self, row: WebhookRow, now: int) -> bool:
        async with self._transaction() as conn:
            created = await conn.fetchval(
                f"INSERT INTO webhooks ({', '.join(WebhookRow._fields)}, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (participant_id, kind, interface_id)"
                " DO UPDATE SET url = excluded.url, max_message_count = excluded.max_message_count,"
                " max_payload_kb = excluded.max_payload_kb, registered_by = excluded.registered_by,"
                " updated_at = excluded.updated_at RETURNING (xmax = 0)",
                *row, now,
            )
            await conn.execute(_BUMP)
        return bool(created)

    @_translated
    async def delete_webhook(self, participant_id: str, kind: str, interface_id: str) -> bool:
        results = await self._write([(
            "DELETE FROM webhooks WHERE participant_id = $1 AND kind = $2 AND interface_id = $3",
            (participant_id, kind, interface_id),
        )])
        return results[0] != "DELETE 0"

    @_translated
    async def dip_identity(self, key_pem: str, cert_pem: str, now: int) -> tuple[str, str]:
        async with self._transaction() as conn:
            await conn.execute("INSERT INTO dip_identity VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                               key_pem, cert_pem, now)
            row = await conn.fetchrow("SELECT key_pem, cert_pem FROM dip_identity WHERE id = 1")
        return str(row[0]), str(row[1])

    # -- delivery queues ---------------------------------------------------------------------

    @staticmethod
    async def _enqueue(conn: asyncpg.Connection, rows: Sequence[DeliveryRow], now: int) -> None:
        # Upsert (and so lock) the queue rows first, in a fixed order: a concurrent transaction
        # adding to the same queue waits here until this one commits, so delivery IDs, which the
        # worker serves in order, follow the commit order per queue.
        queues = {r.queue: r for r in rows}
        await conn.executemany(
            "INSERT INTO queues (queue, recipient_id, interface_id, next_attempt_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (queue) DO UPDATE SET next_attempt_at = CASE WHEN queues.retries = 0"
            " THEN least(queues.next_attempt_at, excluded.next_attempt_at) ELSE queues.next_attempt_at END",
            [(q, r.recipient_id, q.split("|", 1)[1], now) for q, r in sorted(queues.items())],
        )
        await conn.copy_records_to_table(
            "deliveries", records=rows,
            columns=["queue", "transaction_id", "recipient_id", "role", "kind", "accepted_at", "body"])
        await conn.execute(f"NOTIFY {_CHANNEL}")  # sent at commit; the same one twice is sent once

    @_translated
    async def enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        if rows:
            async with self._transaction() as conn:
                await self._enqueue(conn, rows, now)

    @_translated
    async def make_due(self, recipient_id: str, now: int) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE queues SET next_attempt_at = $1 WHERE recipient_id = $2 AND retries = 0"
                " AND next_attempt_at > $1", now, recipient_id)
            await conn.execute(f"NOTIFY {_CHANNEL}")

    @_translated
    async def claim(self, owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        rows = await self.pool.fetch(
            "UPDATE queues SET lease_owner = $1, lease_until = $2 WHERE queue IN ("
            " SELECT queue FROM queues WHERE next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3)"
            # a scalar subquery, not EXISTS: EXISTS may be planned as a join that reads every
            # delivery of the queue; this probes the (queue, id) index once per due queue
            " AND (SELECT d.id FROM deliveries d WHERE d.queue = queues.queue AND d.state = 'pending'"
            " AND d.id > queues.delivered_through ORDER BY d.id LIMIT 1) IS NOT NULL"
            " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING queue, recipient_id, interface_id, retries",
            owner, now + lease, now, limit,
        )
        return [Claim._make(r) for r in rows]

    @_translated
    async def pending(self, queue: str, limit: int, cache: MessageCache | None = None) -> list[PendingDelivery]:
        rows = await self.pool.fetch(
            f"{PENDING_SQL} WHERE d.queue = $1 AND d.state = 'pending'"
            " AND d.id > (SELECT delivered_through FROM queues WHERE queue = $1) ORDER BY d.id LIMIT $2", queue, limit)
        return await pending_from(
            [(*r[:7], None if r[7] is None else bytes(r[7])) for r in rows], self._stored_messages, cache)

    async def _stored_messages(self, transaction_ids: list[str]) -> dict[str, StoredMessage]:
        rows = await self.pool.fetch(f"{STORED_SQL} WHERE transaction_id = ANY($1::text[])", transaction_ids)
        return {r[0]: StoredMessage(bytes(r[1]), *r[2:]) for r in rows}

    @_translated
    async def settle(self, queue: str, owner: str, settlements: list[Settlement], next_attempt_at: int,
                     retries: int, relay: list[DeliveryRow], now: int) -> bool:
        async with self._transaction() as conn:
            holder = await conn.fetchval("SELECT lease_owner FROM queues WHERE queue = $1 FOR UPDATE", queue)
            if holder != owner:
                return False
            written, runs = by_outcome(settlements)
            for (state, status, error), ids in written.items():
                await conn.execute(
                    "UPDATE deliveries SET state = $1, attempts = attempts + 1, last_status = $2, last_error = $3,"
                    " done_at = $4 WHERE id = ANY($5::bigint[])",
                    state, status, error, None if state == "pending" else now, ids,
                )
            if runs:
                await conn.executemany(
                    "INSERT INTO delivery_calls (queue, last_id, first_id, messages, status, note, done_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    [(queue, r.last_id, r.first_id, r.messages, r.status, r.note, now) for r in runs],
                )
            await conn.execute(
                "UPDATE queues SET next_attempt_at = $1, retries = $2, lease_owner = NULL, lease_until = NULL,"
                " delivered_through = greatest(delivered_through, $3) WHERE queue = $4",
                next_attempt_at, retries, max((r.last_id for r in runs), default=0), queue,
            )
            if relay:
                await self._enqueue(conn, relay, now)
        return True

    @_translated
    async def senders(self, transaction_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        rows = await self.pool.fetch(
            "SELECT transaction_id, sender_id, correlation_id FROM messages WHERE transaction_id = ANY($1::text[])",
            sorted(set(transaction_ids)))
        return {r[0]: (r[1], r[2]) for r in rows}

    @_translated
    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]:
        rows = await self.pool.fetch(
            "SELECT transaction_id, recipient_id, role, kind, state FROM delivery_status"
            " WHERE transaction_id = ANY($1::text[]) ORDER BY id", transaction_ids)
        return [tuple(r) for r in rows]  # type: ignore[misc]

    @_translated
    async def delivery_history(self, transaction_id: str) -> list[DeliveryHistory]:
        return [DeliveryHistory._make(r) for r in await self.pool.fetch(HISTORY_SQL.format("$1"), transaction_id)]

    @_translated
    async def queue_overview(self, recipient_id: str | None = None) -> list[QueueState]:
        rows = await (self.pool.fetch(queues_sql("$1"), recipient_id) if recipient_id is not None
                      else self.pool.fetch(queues_sql(None)))
        return [QueueState._make(r) for r in rows]

    @_translated
    async def undelivered(self, state: str, after: int = 0, limit: int = 100, recipient_id: str | None = None,
                          interface_id: str | None = None) -> list[Undelivered]:
        args: list[object] = [after, *(v for v in (recipient_id, interface_id) if v is not None), limit]
        sql = undelivered_sql(state, [f"${i}" for i in range(1, len(args) + 1)], recipient_id is not None,
                              interface_id is not None)
        return [Undelivered._make(r) for r in await self.pool.fetch(sql, *args)]

    @_translated
    async def count_messages(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM messages"))


class _PostgresBatch:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.deliveries: list[DeliveryRow] = []
        self.appointments: list[AppointmentRow] = []

    async def add(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                  appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        if not rows:
            return []
        found = await self.conn.fetch(
            "SELECT m.sender_id, m.sur FROM messages m"
            " JOIN unnest($1::text[], $2::text[]) AS b(s, r) ON m.sender_id = b.s AND m.sur = b.r",
            [r.sender_id for r in rows], [r.sur for r in rows],
        )
        existing = {(r[0], r[1]) for r in found}
        stored = [i for i, r in enumerate(rows) if (r.sender_id, r.sur) not in existing] if existing else range(
            len(rows))
        records = rows if not existing else [rows[i] for i in stored]
        if records:
            await self.conn.copy_records_to_table("messages", records=records, columns=_MESSAGE_COLUMNS)
        # queue entries go in at the end (finish), so the queue rows stay locked only briefly
        if deliveries:
            self.deliveries.extend(d for i in stored for d in deliveries[i])
        if appointments:
            self.appointments.extend(a for i in stored for a in appointments[i])
        return [i for i, r in enumerate(rows) if (r.sender_id, r.sur) in existing]

    async def finish(self) -> None:
        if self.deliveries:
            await PostgresStore._enqueue(self.conn, self.deliveries, max(d.accepted_at for d in self.deliveries))
        if self.appointments:
            await PostgresStore._put_appointments(self.conn, self.appointments)
