"""The store: every persistence operation, written once for both databases.

``SqlStore`` runs the named statements of sql/queries.sql through a dialect
(``connector.Database``: SQLite or PostgreSQL) and holds the logic of each operation: how a
batch of messages is checked for taken references and written with its deliveries, how a
queue is claimed, read and settled, how directory rows are upserted. It decides nothing about
messages (routing, retries and outcomes are decided above it); it keeps the database's
invariants: one transaction per operation, the state version bumped with every change to the
shared state, the queue rows locked before deliveries are drawn.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from dip import ids
from dip.exceptions import StoreError, UniqueViolation
from dip.queue import IDLE, UNDELIVERED, DeliveryState, queue_interface
from dip.signing import fingerprint_of_pem
from dip.store import partitions, payload_codec
from dip.store.activity import ActivityCut, ActivityRow, ChainSpan
from dip.store.archive import (
    SEARCH_DRIVERS,
    START,
    Found,
    JobState,
    Narrowing,
    QueuedCopy,
    Redrive,
    ReplayPage,
    RequeueClaim,
    RequeueState,
    Selected,
    Selection,
    StatusRecord,
)
from dip.store.base import (
    AppointmentRow,
    CertificateRow,
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
from dip.store.connector import Connection, Database, Reader, Row
from dip.store.encryption import KeyMissing, Keyring, is_encrypted
from dip.store.limits import LimitSetting
from dip.store.message_cache import MessageCache, StoredMessage, pending_from
from dip.store.migrations import migrate
from dip.store.queries import Queries, load
from dip.store.reports import DeliveryHistory, QueueState, Undelivered

MESSAGE_COLUMNS = MessageRow._fields
DELIVERY_COLUMNS = DeliveryRow._fields
COPY_COLUMNS = QueuedCopy._fields
REFERENCE_COLUMNS = ("sender_id", "sur", "transaction_id", "received_at")
APPOINTMENT_COLUMNS = ("mpan", "role", "effective_from", "participant_id", "effective_to", "seq")
DELIVERIES = "dip_deliveries"  # the channel nodes are told on when deliveries are committed
STATE = "dip_state"  # ... and when the shared state (participants, channels, ...) changed
_INSERT_ATTEMPTS = 5  # insert_messages: concurrent batches racing for one reference
ALL_TIME = (-(2**62), 2**62)  # a time range (microseconds) that bounds nothing
log = logging.getLogger("dip.store")
_FILTERED_STEP = 20_000
_ALL = 2**62  # a selection's limit that limits nothing
_SWEEP_BATCH = 5_000  # a selection by time with filters reads this many candidates a step


def _now() -> int:
    return int(time.time() * 1_000_000)


def _days_around(now: int) -> tuple[int, int]:
    """The days whose partitions should be there by ``now``: yesterday to a few days ahead."""
    return now - partitions.DAY, now + partitions.AHEAD_DAYS * partitions.DAY


class SqlStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.q: Queries = load(db.translate)
        self._keyring: Keyring | None = None  # encryption at rest (dip.store.encryption), once protect() is called
        self._sensitive: Callable[[str], bool] = lambda _interface_id: False
        self._data_key: tuple[int, bytes] | None = None  # (UTC day, ID) of the data key this process writes with

    def protect(self, keyring: Keyring, sensitive: Callable[[str], bool]) -> None:
        """Encrypt the payloads of the channels ``sensitive`` names (security categories 2-4)."""
        self._keyring = keyring
        self._sensitive = sensitive

    async def _ensure_data_key(self) -> None:
        """Today's data key (one a process a UTC day), stored wrapped before a payload uses it."""
        if self._keyring is None:
            return
        day = _now() // 86_400_000_000
        if self._data_key is not None and self._data_key[0] == day:
            return
        dek_id, kek, wrapped = self._keyring.new_data_key()
        async with self.db.transaction() as tx:
            await tx.write(self.q.insert_data_key, dek_id.hex(), kek, wrapped, _now())
        self._data_key = (day, dek_id)

    def _sealed(self, rows: Sequence[MessageRow]) -> list[MessageRow]:
        """The rows as the archive keeps them: payloads compressed (payload_codec), and encrypted
        for the sensitive channels."""
        keyring, key = self._keyring, self._data_key
        if keyring is None or key is None:
            return [r._replace(payload=payload_codec.encode(r.payload)) for r in rows]
        sensitive = self._sensitive
        return [r._replace(payload=keyring.encrypt(key[1], payload_codec.encode(r.payload))
                           if sensitive(r.interface_id) else payload_codec.encode(r.payload)) for r in rows]

    async def _opened(self, stored: list[bytes]) -> list[bytes]:
        """Archived payloads as they were accepted (decrypted and expanded)."""
        keyring = self._keyring
        if keyring is None:
            if any(is_encrypted(s) for s in stored):
                raise KeyMissing("an archived payload is encrypted, and this node has no key-encryption key "
                                 "(--kek-file)")
            return [payload_codec.decode(s) for s in stored]
        needed = keyring.needed(stored)
        if needed:
            rows = await self.db.fetch(self.q.data_keys, sorted(k.hex() for k in needed))
            keyring.open_keys((bytes.fromhex(r[0]), str(r[1]), bytes(r[2])) for r in rows)
        return [payload_codec.decode(keyring.decrypt(s)) for s in stored]

    async def rewrap_data_keys(self) -> tuple[int, int]:
        """Every data key wrapped by the current KEK: (re-wrapped now, already)."""
        assert self._keyring is not None
        done = already = 0
        for dek_id, kek, wrapped in await self.db.fetch(self.q.all_data_keys):
            again = self._keyring.rewrapped(bytes.fromhex(dek_id), str(kek), bytes(wrapped))
            if again is None:
                already += 1
                continue
            async with self.db.transaction() as tx:
                await tx.write(self.q.rewrap_data_key, dek_id, self._keyring.current, again, kek)
            done += 1
        return done, already

    # -- life cycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.db.open()
        try:
            await migrate(self.db, self.q)
            await self.prepare_archive(*_days_around(_now()))
            await self._warm_searches()
        except BaseException:
            await self.db.close()
            raise

    async def _warm_searches(self) -> None:
        """Each search once, finding nothing, so that their plans are made before a caller waits.
        Only a speed-up: a failure (e.g. PostgreSQL's lock table too small for every partition:
        docs/operations.md, "PostgreSQL") is logged, and the store opens."""
        try:
            await self.db.warm([(getattr(self.q, f"search_by_{driver}"), (-1, "", 0, 0, *[None] * 7, 1, ""))
                                for driver in SEARCH_DRIVERS])
        except StoreError as exc:
            log.warning("could not prepare the searches' plans: %s", exc)

    # -- where a transaction ID's rows lie -------------------------------------------------------

    def _received(self, transaction_ids: Sequence[str]) -> tuple[int, int]:
        """When messages with these IDs were received, as far as their IDs tell (the DIP names
        the day it received a message in its ID): bounds that let PostgreSQL read only those
        days' partitions. All time where the archive is not partitioned, or an ID names no day.
        A hint: a lookup that misses with it looks again over all time (``_hinted``)."""
        if not self.db.partitioned or not transaction_ids:
            return ALL_TIME
        days = [ids.transaction_day(t) for t in transaction_ids]
        if any(d is None for d in days):
            return ALL_TIME
        known = [d for d in days if d is not None]
        return partitions.start_of(min(known)), partitions.start_of(max(known)) + partitions.DAY

    async def _hinted(self, sql: str, transaction_ids: list[str], until: bool = True,
                      received: tuple[int, int] | None = None, wide: bool = True) -> list[Row]:
        """Rows of ``sql`` (whose first column is the transaction ID; its parameters: the IDs,
        the time from which, and with ``until`` the time until which), read first within
        ``received`` when the caller knows it, then within the days the IDs name, then over all
        time, each time for the IDs that found nothing yet. The bounded reads are planned for
        their days (Database.dated), the read over all time once per connection (Database.wide),
        or, without ``wide``, at every run too (a statement no cached plan may keep)."""
        ranges = [r for r in (received if self.db.partitioned else None, self._received(transaction_ids), ALL_TIME)
                  if r is not None]
        rows: list[Row] = []
        wanted = transaction_ids
        for n, (low, high) in enumerate(ranges):
            if n and (low, high) == ranges[n - 1]:
                continue
            reader = self.db.wide() if wide and (low, high) == ALL_TIME else self.db.dated()
            rows += await reader.fetch(sql, wanted, low, *((high,) if until else ()))
            wanted = sorted(set(wanted) - {r[0] for r in rows})
            if not wanted or (low, high) == ALL_TIME:
                break
        return rows

    async def close(self) -> None:
        await self.db.close()

    @contextlib.asynccontextmanager
    async def _changing_state(self) -> AsyncIterator[Connection]:
        """A transaction that changes the state every node caches: the version moves with it."""
        async with self.db.transaction() as tx:
            yield tx
            await tx.write(self.q.bump_state_version)
            await tx.notify(STATE)

    # -- shared state ----------------------------------------------------------------------------

    async def state_version(self) -> int:
        return int(await self.db.fetchval(self.q.state_version))

    async def load_directory(self) -> DirectoryRows:
        q = self.q
        async with self.db.snapshot() as r:
            participants = await r.fetch(q.participants)
            keys = await r.fetch(q.api_keys)
            certificates = await r.fetch(q.certificates)
            retiring = await r.fetch(q.retiring_certificates)
            providers = await r.fetch(q.connection_providers)
            admins = await r.fetch(q.admin_keys)
            operators = await r.fetch(q.operator_keys)
            webhooks = await r.fetch(q.webhooks)
        return DirectoryRows(
            participants=[ParticipantRow(p[0], p[1], tuple(json.loads(p[2])), bool(p[3])) for p in participants],
            api_keys=[(k[0], k[1]) for k in keys],
            certificates=[(c[0], c[1]) for c in certificates],
            retiring=[(c[0], int(c[1])) for c in retiring],
            providers=[(p[0], p[1], tuple(json.loads(p[2]))) for p in providers],
            admin_keys=[a[0] for a in admins],
            operators=[(o[0], o[1], o[2], o[3]) for o in operators],
            webhooks=[WebhookRow._make(w) for w in webhooks],
        )

    async def load_channels(self) -> list[tuple[str, bytes]]:
        return [(r[0], bytes(r[1])) for r in await self.db.fetch(self.q.channels)]

    async def _put(self, insert: str, update: str, *args: Any) -> bool:
        """Insert the row, or update the one with its key; True when inserted. Exact when two
        callers put one new key at once: the second insert waits for the first and then updates."""
        async with self._changing_state() as tx:
            if await tx.execute(insert, *args):
                return True
            await tx.write(update, *args)
            return False

    async def put_participant(self, row: ParticipantRow, now: int) -> bool:
        return await self._put(self.q.insert_participant, self.q.update_participant,
                               row.id, row.name, json.dumps(list(row.roles)), row.active, now)

    async def offboard_participant(self, participant_id: str, channel_updates: list[tuple[str, bytes]],
                                   now: int) -> bool:
        q = self.q
        async with self._changing_state() as tx:
            deactivated = await tx.execute(q.deactivate_participant, now, participant_id)
            await tx.write(q.revoke_api_keys_of, now, participant_id)  # for good: on-boarded again, it needs new ones
            await tx.write(q.revoke_certificates_of, now, participant_id)
            await tx.write(q.drop_connection_providers_of, participant_id)
            await tx.write(q.drop_webhooks_of, participant_id)
            for interface_id, definition in channel_updates:
                await tx.write(q.update_channel, interface_id, definition, now)
        return deactivated > 0

    async def add_api_key(self, participant_id: str, key_hash: str, now: int) -> None:
        async with self._changing_state() as tx:
            await tx.write(self.q.insert_api_key, key_hash, participant_id, now)

    async def add_certificate(self, participant_id: str, fingerprint: str, pem: str, not_after: int,
                              now: int) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.insert_certificate, fingerprint, participant_id, pem, not_after, now) > 0

    async def revoke_api_key(self, participant_id: str, key_id: str, now: int) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.revoke_api_key, now, participant_id, key_id) > 0

    async def revoke_certificate(self, participant_id: str, fingerprint: str, now: int) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.revoke_certificate, now, participant_id, fingerprint) > 0

    async def retire_certificate(self, participant_id: str, fingerprint: str, at: int) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.retire_certificate, at, participant_id, fingerprint) > 0

    async def mark_issued_by_dip(self, fingerprint: str) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.mark_issued_by_dip, fingerprint)

    async def certificates_of(self, participant_id: str) -> list[CertificateRow]:
        return [CertificateRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4], r[5], bool(r[6]))
                for r in await self.db.fetch(self.q.certificates_of, participant_id)]

    async def api_keys_of(self, participant_id: str) -> list[tuple[str, int, int | None]]:
        return [(str(r[0]), int(r[1]), r[2]) for r in await self.db.fetch(self.q.api_keys_of, participant_id)]

    async def certificate_revoked(self, fingerprint: str) -> bool:
        return bool(await self.db.fetchval(self.q.certificate_revoked, fingerprint))

    async def certificate_holder(self, fingerprint: str) -> str | None:
        holder = await self.db.fetchval(self.q.certificate_holder, fingerprint)
        return None if holder is None else str(holder)

    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: tuple[str, ...],
                                      now: int) -> None:
        async with self._changing_state() as tx:
            if roles:
                await tx.write(self.q.put_connection_provider, participant_id, dcp_id, json.dumps(list(roles)), now)
            else:
                await tx.write(self.q.delete_connection_provider, participant_id, dcp_id)

    async def add_admin_key(self, key_hash: str, now: int) -> None:
        async with self._changing_state() as tx:
            await tx.write(self.q.insert_admin_key, key_hash, now)

    async def add_operator(self, operator_id: str, name: str, role: str, key_hash: str, now: int) -> None:
        async with self._changing_state() as tx:
            await tx.write(self.q.insert_operator, operator_id, name, role, key_hash, now)

    async def revoke_operator(self, operator_id: str, now: int) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.revoke_operator, now, operator_id) > 0

    async def operators(self) -> list[tuple[str, str, str, int, int | None]]:
        return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in await self.db.fetch(self.q.operators)]

    async def put_channel(self, interface_id: str, definition: bytes, now: int) -> bool:
        return await self._put(self.q.insert_channel, self.q.update_channel, interface_id, definition, now)

    async def delete_channel(self, interface_id: str) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.delete_channel, interface_id) > 0

    async def put_webhook(self, row: WebhookRow, now: int) -> bool:
        return await self._put(self.q.insert_webhook, self.q.update_webhook, *row, now)

    async def delete_webhook(self, participant_id: str, kind: str, interface_id: str) -> bool:
        async with self._changing_state() as tx:
            return await tx.execute(self.q.delete_webhook, participant_id, kind, interface_id) > 0

    async def dip_identity(self, key_pem: str, cert_pem: str, now: int) -> tuple[str, str]:
        async with self.db.transaction() as tx:
            await tx.write(self.q.insert_identity, key_pem, cert_pem, now)
            row = await tx.fetchrow(self.q.identity)
        assert row is not None
        return str(row[0]), str(row[1])

    async def rotate_identity(self, old_cert_pem: str, old_fingerprint: str, key_pem: str, cert_pem: str,
                              retires_at: int, now: int) -> bool:
        async with self._changing_state() as tx:
            if await tx.execute(self.q.rotate_identity, key_pem, cert_pem, now, old_cert_pem) != 1:
                return False  # another node rotated it first
            await tx.write(self.q.retire_signing_cert, old_fingerprint, old_cert_pem, retires_at)
            await tx.write(self.q.record_signing_certificate, fingerprint_of_pem(cert_pem), cert_pem, now)
        return True

    async def retired_certificates(self, now: int) -> list[tuple[str, int]]:
        return [(str(r[0]), int(r[1])) for r in await self.db.fetch(self.q.served_retired_certs, now)]

    async def dip_certificates(self) -> list[str]:
        row = await self.db.fetchrow(self.q.identity)
        recorded = [str(r[0]) for r in await self.db.fetch(self.q.signing_certificates)]
        return ([] if row is None else [str(row[1])]) + recorded

    async def record_signing_certificate(self, fingerprint: str, cert_pem: str, now: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.record_signing_certificate, fingerprint, cert_pem, now)

    # -- messages --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def message_batch(self) -> AsyncIterator[_Batch]:
        await self._ensure_data_key()  # before any transaction: SQLite has one writer
        if self.db.concurrent_writers:
            # each add() writes its rows at once inside the open transaction, so storing
            # overlaps checking (PostgreSQL COPYs a chunk while later chunks are validated)
            async with self.db.transaction() as tx:
                batch = _Batch(self, tx, check=False)
                yield batch
                await batch.finish(tx)
        else:
            # one writer: the references are checked as the rows come (reads) and everything is
            # written in one short transaction at the end, so a batch still being validated never
            # holds the write lock
            batch = _Batch(self, None)
            yield batch
            if batch:
                async with self.db.transaction() as tx:
                    await batch.finish(tx)

    async def insert_messages(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                              appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        """Check and write in one transaction. Two such transactions can still race for one new
        reference (PostgreSQL): the loser fails on the unique index and is run again, and then
        finds the winner's row."""
        if not rows:
            return []
        for attempt in range(_INSERT_ATTEMPTS):
            try:
                async with self.db.transaction() as tx:
                    batch = _Batch(self, tx)
                    skipped = await batch.add(rows, deliveries, appointments)
                    await batch.finish(tx)
                    return skipped
            except UniqueViolation:
                if attempt == _INSERT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def get_message(self, transaction_id: str) -> MessageRow | None:
        low, high = self._received([transaction_id])
        row = await self.db.fetchrow(self.q.message, transaction_id, low, high)
        if row is None and (low, high) != ALL_TIME:
            row = await self.db.fetchrow(self.q.message, transaction_id, *ALL_TIME)
        if row is None:
            return None
        (payload,) = await self._opened([bytes(row[11])])
        return MessageRow._make((*row[:11], payload, *row[12:]))

    async def count_messages(self) -> int:
        return int(await self.db.fetchval(self.q.count_messages))

    async def senders(self, transaction_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        rows = await self._hinted(self.q.senders, sorted(set(transaction_ids)))
        return {r[0]: (r[1], r[2]) for r in rows}

    # -- the MPAN registry ------------------------------------------------------------------------

    async def _put_appointments(self, tx: Connection, rows: Sequence[AppointmentRow]) -> int:
        seq = int(await tx.fetchval(self.q.next_registry_version))
        # the last row of a key wins, as in one load of the same file twice
        latest = {(r.mpan, r.role, r.effective_from): r for r in rows}
        await tx.upsert("mpan_appointments", APPOINTMENT_COLUMNS, [(*r, seq) for r in latest.values()],
                        self.q.appointment_conflict)
        return seq

    async def put_appointments(self, rows: list[AppointmentRow]) -> int:
        async with self.db.transaction() as tx:
            seq = await self._put_appointments(tx, rows)
        if len(rows) >= 10_000:  # a bulk load: plans for the registry queries need fresh statistics
            await self.db.refresh_statistics("mpan_appointments")
        return seq

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]:
        return [AppointmentRow._make(r) for r in await self.db.fetch(self.q.appointments, sorted(set(mpans)))]

    async def registry_version(self) -> int:
        return int(await self.db.fetchval(self.q.registry_version))

    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]:
        version = await self.registry_version()
        if since < 0 or version == since:
            return version, None if since < 0 else []
        mpans = [r[0] for r in await self.db.fetch(self.q.registry_changes, since, limit + 1)]
        return version, None if len(mpans) > limit else list(dict.fromkeys(mpans))

    # -- delivery queues ---------------------------------------------------------------------------

    async def _enqueue(self, tx: Connection, rows: Sequence[DeliveryRow] | Sequence[QueuedCopy], now: int) -> None:
        # Upsert (and so lock) the queue rows first, in a fixed order: a concurrent transaction
        # adding to the same queue waits here until this one commits, so delivery IDs, which the
        # worker serves in order, follow the commit order per queue.
        queues = {r.queue: r for r in rows}
        await tx.executemany(self.q.upsert_queue,
                             [(q, r.recipient_id, queue_interface(q), now) for q, r in sorted(queues.items())])
        await tx.copy("deliveries", COPY_COLUMNS if isinstance(rows[0], QueuedCopy) else DELIVERY_COLUMNS, rows)
        await tx.notify(DELIVERIES)

    async def enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        if rows:
            async with self.db.transaction() as tx:
                await self._enqueue(tx, rows, now)

    async def enqueue_once(self, rows: list[tuple[bytes, DeliveryRow]], expires_at: int, now: int) -> int:
        async with self.db.transaction() as tx:
            fresh = [row for digest, row in rows if await tx.execute(self.q.first_sight, digest, expires_at) == 1]
            if fresh:
                await self._enqueue(tx, fresh, now)
        return len(fresh)

    async def release_leases(self, owner: str) -> int:
        async with self.db.transaction() as tx:
            released = await tx.execute(self.q.release_leases, owner)
            if released:
                await tx.notify(DELIVERIES)  # the other nodes look at once
        return released

    async def release_jobs(self, owner: str) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.release_jobs, owner)

    async def listen_deliveries(self, wake: Callable[[], None]) -> bool:
        return await self.db.listen(DELIVERIES, wake)

    async def make_due(self, recipient_id: str, now: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.make_due, now, recipient_id)
            await tx.notify(DELIVERIES)

    async def claim(self, owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        async with self.db.transaction() as tx:
            rows = await tx.fetch(self.q.claim, owner, now + lease, now, limit)
        return [Claim._make(r) for r in rows]

    async def pending(self, queue: str, limit: int, cache: MessageCache | None = None,
                      since: int | None = None) -> list[PendingDelivery]:
        # planned for its values at each run (Database.dated): as a cached statement, its sixth run
        # on each connection had PostgreSQL build a generic plan over every partition to compare
        # (200-400 ms at 1,522 partitions: about 11 µs a message of a one-minute benchmark's
        # PostgreSQL CPU, docs/performance.md); the extra round trip is one per call of up to 5,000
        rows = await self.db.dated().fetch(self.q.pending, queue, limit, ALL_TIME[0] if since is None else since)
        # an original delivery's accepted_at is its message's received_at: the exact span to read
        # (a whole day's bounds made PostgreSQL hash the day's partition for each call: measured
        # 200 ms a call of 5,000 where the unpartitioned table took 70)
        originals = [r[5] for r in rows if r[8] is None]
        received = (min(originals), max(originals) + 1) if originals else None

        async def fetch(transaction_ids: list[str]) -> dict[str, StoredMessage]:
            return await self.stored_messages(transaction_ids, received)

        return await pending_from(rows, fetch, cache)

    async def stored_messages(self, transaction_ids: list[str],
                              received: tuple[int, int] | None = None) -> dict[str, StoredMessage]:
        rows = await self._hinted(self.q.stored_messages, transaction_ids, received=received, wide=False)
        payloads = await self._opened([bytes(r[1]) for r in rows])
        return {r[0]: StoredMessage(payload, *r[2:]) for r, payload in zip(rows, payloads, strict=True)}

    async def settle(self, queue: str, owner: str, settlements: list[Settlement], next_attempt_at: int,
                     retries: int, relay: list[DeliveryRow], now: int, since: int | None = None,
                     drained: int | None = None) -> bool:
        q = self.q
        async with self.db.transaction() as tx:
            if await tx.fetchval(q.lease_holder, queue) != owner:
                return False
            written, runs = by_outcome(settlements)
            for (state, status, error), ids in written.items():
                done_at = None if state == DeliveryState.PENDING else now
                await tx.write(q.settle_deliveries, state, status, error, done_at, ids,
                               ALL_TIME[0] if since is None else since)
            if runs:
                await tx.executemany(q.record_call, [(queue, r.last_id, r.first_id, r.messages, r.status, r.note, now)
                                                     for r in runs])
            await tx.write(q.release_queue, next_attempt_at, retries, max((r.last_id for r in runs), default=0),
                           queue, drained, IDLE, since or 0)
            if relay:
                await self._enqueue(tx, relay, now)
        return True

    # -- what became of messages --------------------------------------------------------------------

    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]:
        rows = await self._hinted(self.q.delivery_states, sorted(set(transaction_ids)), until=False)
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows if r[5] is None]  # not a requeued replay

    async def delivery_history(self, transaction_id: str) -> list[DeliveryHistory]:
        low = self._received([transaction_id])[0]
        rows = await self.db.fetch(self.q.delivery_history, transaction_id, low)
        if not rows and low != ALL_TIME[0]:
            rows = await self.db.fetch(self.q.delivery_history, transaction_id, ALL_TIME[0])
        return [DeliveryHistory._make(r) for r in rows]

    async def queue_overview(self, recipient_id: str | None = None) -> list[QueueState]:
        return [QueueState._make(r) for r in await self.db.fetch(self.q.queue_overview, recipient_id)]

    async def undelivered(self, state: str, after: int = 0, limit: int = 100, recipient_id: str | None = None,
                          interface_id: str | None = None) -> list[Undelivered]:
        if state not in UNDELIVERED:
            raise ValueError(f"not an undelivered state: {state!r}")
        rows = await self.db.fetch(self.q.undelivered, state, after, recipient_id, interface_id, limit)
        return [Undelivered._make(r) for r in rows]


    # -- the archive: replay, requeue, redrive (docs/archive.md) -------------------------------------

    @staticmethod
    def _driver(selection: Selection) -> str:
        """What reads ``selection`` best: its transaction IDs, its MPAN's index, or the queue's."""
        return "ids" if selection.transaction_ids else "mpan" if selection.mpan else "time"

    @staticmethod
    def _selection_args(s: Selection, after: tuple[int, int], limit: int) -> list[Any]:
        args = [s.queue, *after, s.start, s.end, s.event_code, s.mpan, s.version, limit]
        return [*args, sorted(set(s.transaction_ids))] if s.transaction_ids else args

    async def select(self, selection: Selection, after: tuple[int, int], limit: int) -> list[Selected]:
        driver = self._driver(selection)
        if driver == "time":
            return await self._select_by_time(selection, after, limit)
        if driver == "mpan":
            return await self._select_by_mpan(selection, after, limit)
        sql = getattr(self.q, f"selection_by_{driver}")
        return [Selected._make(r) for r in await self.db.fetch(sql, *self._selection_args(selection, after, limit))]

    async def _select_by_time(self, s: Selection, after: tuple[int, int], limit: int) -> list[Selected]:
        """The queue's originals in order, in steps: a step reads the next ones by the queue's
        archive index alone, then keeps those whose message is archived and matches the filters
        (one probe by transaction ID each, within the days the step spans)."""
        found: list[Selected] = []
        step = limit if s.event_code is None and s.version is None else max(limit, _FILTERED_STEP)
        while len(found) < limit:
            candidates = [Selected._make(r) for r in await self.db.fetch(
                self.q.queue_originals, s.queue, *after, s.start, s.end, step)]
            if not candidates:
                break
            matching = {r[0] for r in await self.db.fetch(
                self.q.selection_matching, [c.transaction_id for c in candidates], candidates[0].accepted_at,
                candidates[-1].accepted_at, s.event_code, s.mpan, s.version)}
            found += [c for c in candidates if c.transaction_id in matching][:limit - len(found)]
            if len(candidates) < step:
                break
            after = (candidates[-1].accepted_at, candidates[-1].id)
        return found

    async def _select_by_mpan(self, s: Selection, after: tuple[int, int], limit: int) -> list[Selected]:
        """The MPAN's messages in order, in steps: a step reads the next ones by the MPAN's index
        alone (all of the last microsecond it reaches, so a batch is never split), then their
        original deliveries to the queue, by transaction ID within the step's span."""
        assert s.mpan is not None
        found: list[Selected] = []
        low = max(s.start, after[0])  # the cursor's own microsecond may hold more after its delivery
        while len(found) < limit:
            messages = [(r[0], int(r[1])) for r in await self.db.fetch(
                self.q.mpan_messages, s.mpan, low, s.end, s.event_code, s.version, limit)]
            if not messages:
                break
            full = len(messages) == limit
            last = messages[-1][1]
            if full:
                messages = [m for m in messages if m[1] != last] + [(r[0], int(r[1])) for r in await self.db.fetch(
                    self.q.mpan_messages_at, s.mpan, last, s.event_code, s.version)]
            received = dict(messages)
            # a day at a time: each ID is looked for only in its own day's partitions (all of a
            # month's IDs over a month's partitions was 1.1 million index probes for 18,678)
            by_day: dict[int, list[tuple[str, int]]] = {}
            for m in messages:
                by_day.setdefault(m[1] // partitions.DAY, []).append(m)
            rows = [r for day in by_day.values() for r in await self.db.dated().fetch(
                self.q.queue_originals_of, s.queue, [m[0] for m in day], day[0][1], day[-1][1])]
            step = sorted((c for c in map(Selected._make, rows)
                           if c.accepted_at == received[c.transaction_id] and (c.accepted_at, c.id) > after),
                          key=lambda c: (c.accepted_at, c.id))
            found += step[:limit - len(found)]
            if not full or last >= s.end:
                break
            low = last + 1
        return found

    async def count_selected(self, selection: Selection) -> int:
        driver = self._driver(selection)
        if driver == "mpan":  # one MPAN's messages are few (tens of thousands in two years): read in two steps
            return len(await self._select_by_mpan(selection, START, _ALL))
        sql = getattr(self.q, f"count_by_{driver}")
        return int(await self.db.fetchval(sql, *self._selection_args(selection, START, _ALL)))

    async def search(self, driver: str, value: str, narrowing: Narrowing, after: tuple[int, str],
                     limit: int) -> list[Found]:
        if driver not in SEARCH_DRIVERS:
            raise ValueError(f"no search by {driver!r}")
        n = narrowing
        rows = await self.db.wide().fetch(getattr(self.q, f"search_by_{driver}"), *after, n.start, n.end,
                                          n.interface_id, n.event_code, n.mpan, n.correlation_id, n.sur, n.sur_sender,
                                          n.viewer, limit, value)
        return [Found._make(r) for r in rows]

    async def status_messages_for(self, queue: str, start: int, end: int, after: tuple[int, int],
                                  transaction_id: str | None, limit: int) -> list[StatusRecord]:
        rows = await self.db.fetch(self.q.status_messages_for, queue, *after, start, end, transaction_id, limit)
        return [StatusRecord(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def put_replay_page(self, token: str, page: ReplayPage) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.insert_replay_page, token, *page)

    async def replay_page(self, token: str) -> ReplayPage | None:
        row = await self.db.fetchrow(self.q.replay_page, token)
        return None if row is None else ReplayPage._make(row)

    async def drop_expired_replay_pages(self, now: int) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.drop_expired_replay_pages, now)

    # -- IF-021 submission limits -------------------------------------------------------------------

    async def submission_limits(self) -> list[LimitSetting]:
        rows = await self.db.fetch(self.q.submission_limits)
        return [LimitSetting(str(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]

    async def put_submission_limit(self, participant_id: str, mode: str, portfolio: int | None, now: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.put_submission_limit, participant_id, mode, portfolio, now)

    async def count_submission(self, participant_id: str, hour: int, messages: int, most: int) -> int | None:
        async with self.db.transaction() as tx:
            found = await tx.fetchval(self.q.count_submission, participant_id, hour, messages, most)
        return None if found is None else int(found)

    async def note_over_soft(self, participant_id: str, hour: int, messages: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.note_over_soft, participant_id, hour, messages)

    async def submitted_since(self, participant_id: str, hour: int) -> list[tuple[int, int, int]]:
        return [(int(r[0]), int(r[1]), int(r[2])) for r in await self.db.fetch(self.q.submitted_since, participant_id,
                                                                                hour)]

    async def measure_portfolios(self, interface_id: str, since: int, now: int) -> dict[str, int]:
        """Distinct MPANs each sender submitted on the channel since ``since``, recorded."""
        found = {str(r[0]): int(r[1]) for r in await self.db.fetch(self.q.measure_portfolios, interface_id, since)}
        async with self.db.transaction() as tx:
            for participant_id, count in found.items():
                await tx.write(self.q.record_portfolio, participant_id, "soft", count, now)
        return found

    async def forget_submission_counts(self, before_hour: int) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.forget_submission_counts, before_hour)

    # -- the API activity log ----------------------------------------------------------------------

    async def append_activity(self, rows: list[ActivityRow]) -> None:
        async with self.db.transaction() as tx:
            await tx.executemany(self.q.insert_activity, rows)

    async def activity_page(self, start: int, end: int, after: tuple[int, str, int],
                            limit: int) -> list[ActivityRow]:
        rows = await self.db.fetch(self.q.activity_page, start, end, *after, limit)
        return [_activity(r) for r in rows]

    async def activity_chains(self) -> list[ChainSpan]:
        return [ChainSpan(str(r[0]), int(r[1]), int(r[2]), int(r[3]))
                for r in await self.db.fetch(self.q.activity_chains)]

    async def activity_chain(self, chain: str, after_seq: int, limit: int) -> list[ActivityRow]:
        return [_activity(r) for r in await self.db.fetch(self.q.activity_chain, chain, after_seq, limit)]

    async def activity_cuts(self) -> list[ActivityCut]:
        return [ActivityCut(str(r[0]), int(r[1]), bytes(r[2]), int(r[3]), bytes(r[4]))
                for r in await self.db.fetch(self.q.activity_cuts)]

    async def activity_due(self, before: int) -> list[tuple[str, int, bytes]]:
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in await self.db.fetch(self.q.activity_due, before)]

    async def cut_activity(self, cut: ActivityCut, chunk: int = 10_000) -> int:
        async with self.db.transaction() as tx:
            await tx.write(self.q.put_activity_cut, *cut)
            first = await tx.fetchval(self.q.first_activity, cut.chain)
        deleted = 0
        start = int(first) - 1 if first is not None else cut.through_seq
        while start < cut.through_seq:  # in chunks: a long purge never holds one long transaction
            end = min(start + chunk, cut.through_seq)
            async with self.db.transaction() as tx:
                deleted += await tx.execute(self.q.drop_activity, cut.chain, start, end)
            start = end
        return deleted

    async def take_tokens(self, key: str, count: float, rate: float, burst: float, now: int) -> float:
        per_micro = rate / 1_000_000
        async with self.db.transaction() as tx:
            if await tx.fetchval(self.q.take_tokens, key, float(count), per_micro, float(burst), now) is not None:
                return 0.0
            row = await tx.fetchrow(self.q.bucket, key)
        if row is None:  # (a bucket is made by its first take, which a count within the burst passes)
            return 1.0
        tokens = min(float(burst), float(row[0]) + (now - int(row[1])) * per_micro)
        return max(0.0, (count - tokens) / rate)

    async def first_sight(self, digest: bytes, expires_at: int) -> bool:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.first_sight, digest, expires_at) == 1

    async def forget_sights(self, now: int) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.forget_sights, now)

    async def create_requeue(self, requeue_id: str, selection: Selection, recipient_id: str, interface_id: str,
                             requested_by: str, request: str, total: int, now: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.insert_requeue, requeue_id, selection.queue, recipient_id, interface_id,
                           requested_by, request, total, now)

    async def claim_requeue(self, owner: str, now: int, lease: int) -> RequeueClaim | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(self.q.claim_requeue, owner, now + lease, now)
        return None if row is None else RequeueClaim._make(row)

    async def append_requeue(self, claim: RequeueClaim, owner: str, copies: list[QueuedCopy],
                             after: tuple[int, int], done: bool, lease_until: int, now: int) -> bool:
        async with self.db.transaction() as tx:
            # the lease is checked first: the requeue row stays locked until the chunk commits
            if not await tx.execute(self.q.advance_requeue, claim.id, owner, len(copies), *after, done, lease_until):
                return False
            if copies:
                await self._enqueue(tx, copies, now)
        return True

    async def requeue_state(self, requeue_id: str) -> RequeueState | None:
        async with self.db.snapshot() as r:
            row = await r.fetchrow(self.q.requeue, requeue_id)
            if row is None:
                return None
            progress = await r.fetchrow(self.q.requeue_progress, requeue_id, row[4])  # queued since it was made
        assert progress is not None
        return RequeueState(row[0], int(row[1]), int(row[2]), bool(row[3]), *(int(v) for v in progress))

    async def redrive(self, redrive: Redrive, limit: int, now: int) -> int:
        r = redrive
        async with self.db.transaction() as tx:
            found = await tx.fetch(self.q.redrive_candidates, sorted(set(r.states)), r.recipient_id, r.interface_id,
                                   r.start, r.end, limit)
            if not found:
                return 0
            await tx.write(self.q.mark_redriven, now, [f[0] for f in found], r.start, r.end)
            await self._enqueue(tx, [QueuedCopy(f[1], f[2], f[3], f[4], f[5], now, f[6], f[7], f[8], f[0], f[9])
                                     for f in found], now)
        return len(found)


    # -- retention and jobs ----------------------------------------------------------------------

    async def retention_classes(self) -> list[int]:
        return [int(r[0]) for r in await self.db.fetch(self.q.retention_classes)]

    async def add_retention_class(self, days: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.add_retention_class, days)
        if self.db.partitioned:  # its partitions before its first message
            start, end = _days_around(_now())
            await partitions.prepare(self.db, {days}, start, end)

    async def prepare_archive(self, start: int, end: int) -> int:
        if not self.db.partitioned:
            return 0
        return await partitions.prepare(self.db, set(await self.retention_classes()), start, end)

    async def purge_expired(self, days: int, before: int, limit: int) -> tuple[int, int]:
        if self.db.partitioned:  # every expired day at once, a day's partitions together: no row is deleted
            await partitions.drop_leftovers(self.db)
            purged = {table: 0 for table in partitions.TABLES}
            for names in (await partitions.expired(self.db, days, before)).values():
                for name, rows in (await partitions.drop(self.db, names)).items():
                    purged[name.split("_", 1)[0]] += max(0, rows)
            return purged["messages"], purged["deliveries"]
        async with self.db.transaction() as tx:
            messages = await tx.execute(self.q.purge_messages, days, before, limit)
            deliveries = await tx.execute(self.q.purge_deliveries, days, before, limit)
        return messages, deliveries

    async def sweep_stale(self, start: int, end: int, now: int) -> int:
        swept = 0
        for queue, watermark in await self.db.fetch(self.q.queue_watermarks):
            while stale := [r[0] for r in await self.db.fetch(self.q.stale_deliveries, queue, watermark, start, end,
                                                               _SWEEP_BATCH)]:
                async with self.db.transaction() as tx:
                    swept += await tx.execute(self.q.dead_letter_stale, now, stale, start, end)
        return swept

    async def _purge_up_to(self, horizon_sql: str, purge_sql: str, before: int, limit: int) -> int:
        async with self.db.transaction() as tx:
            horizon = await tx.fetchval(horizon_sql, before, limit)
            return 0 if horizon is None else await tx.execute(purge_sql, horizon)

    async def purge_references(self, before: int, limit: int) -> int:
        return await self._purge_up_to(self.q.reference_horizon, self.q.purge_references, before, limit)

    async def purge_calls(self, before: int, limit: int) -> int:
        return await self._purge_up_to(self.q.call_horizon, self.q.purge_calls, before, limit)

    async def purge_requeues(self, before: int) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.purge_requeues, before)

    async def add_job(self, name: str, first_run_at: int) -> None:
        async with self.db.transaction() as tx:
            await tx.write(self.q.add_job, name, first_run_at)

    async def claim_job(self, name: str, owner: str, now: int, lease: int) -> bool:
        async with self.db.transaction() as tx:
            return await tx.fetchrow(self.q.claim_job, name, owner, now + lease, now) is not None

    async def finish_job(self, name: str, owner: str, next_run_at: int, now: int, result: str) -> bool:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.finish_job, name, owner, next_run_at, now, result) > 0

    async def make_job_due(self, name: str, now: int) -> bool:
        async with self.db.transaction() as tx:
            return await tx.execute(self.q.job_due_now, name, now) > 0

    async def job_states(self) -> list[JobState]:
        return [JobState._make(r) for r in await self.db.fetch(self.q.job_states)]


class _Batch:
    """Messages added a chunk at a time, with their deliveries and registry changes.

    ``add`` leaves out the rows whose (sender, reference) is already stored. Inside an open
    transaction (``tx``) the kept rows are written at once; without one they are gathered and
    ``finish`` writes them. ``finish`` writes the deliveries and the registry changes last, so
    the queue rows it locks stay locked only briefly.

    Without ``check`` the references are not looked up first: their unique index refuses a
    taken one as it is written (UniqueViolation), and the caller stores the batch again with
    the check (``insert_messages``). A sender's references are random in the index, so on a
    large archive each lookup lands on a page of its own; looking 1,250 up before writing them
    cost 21 ms where writing them cost 8 (10 µs a message on the 11-million archive,
    docs/performance.md), and a batch with a taken reference is rare (a sender's resend).
    """

    def __init__(self, store: SqlStore, tx: Connection | None, check: bool = True) -> None:
        self._store = store
        self._tx = tx
        self._check = check
        self.rows: list[MessageRow] = []
        self.deliveries: list[DeliveryRow] = []
        self.appointments: list[AppointmentRow] = []

    def __bool__(self) -> bool:
        return bool(self.rows or self.deliveries or self.appointments)

    async def _taken(self, rows: Sequence[MessageRow]) -> set[tuple[str, str]]:
        reader: Reader = self._tx if self._tx is not None else self._store.db
        by_sender: dict[str, list[str]] = {}
        for r in rows:
            by_sender.setdefault(r.sender_id, []).append(r.sur)
        taken: set[tuple[str, str]] = set()
        for sender_id, surs in by_sender.items():
            found = await reader.fetch(self._store.q.existing_references, sender_id, surs)
            taken.update((sender_id, r[0]) for r in found)
        return taken

    async def add(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                  appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        """Add rows to the batch, except those whose (sender_id, sur) already exists.

        ``deliveries[i]`` and ``appointments[i]`` (when given) are the routing outcome and the
        MPAN registry changes of ``rows[i]``; they are stored with it, or left out with it.
        Returns the indexes (into ``rows``) of the rows left out.
        """
        if not rows:
            return []
        taken = await self._taken(rows) if self._check else set()
        skipped = [i for i, r in enumerate(rows) if (r.sender_id, r.sur) in taken] if taken else []
        kept: Sequence[int] = range(len(rows))
        records: Sequence[MessageRow] = rows
        if skipped:
            left_out = set(skipped)
            kept = [i for i in range(len(rows)) if i not in left_out]
            records = [rows[i] for i in kept]
        if self._tx is not None:
            if records:
                await self._tx.copy("messages", MESSAGE_COLUMNS, self._store._sealed(records))
                await self._tx.copy("sender_references", REFERENCE_COLUMNS, _references(records))
        else:
            self.rows.extend(records)
        if deliveries:
            self.deliveries.extend(d for i in kept for d in deliveries[i])
        if appointments:
            self.appointments.extend(a for i in kept for a in appointments[i])
        return skipped

    async def finish(self, tx: Connection) -> None:
        """Write what is left: gathered rows, then the deliveries, then the registry changes."""
        if self.rows:
            await tx.copy("messages", MESSAGE_COLUMNS, self._store._sealed(self.rows))
            await tx.copy("sender_references", REFERENCE_COLUMNS, _references(self.rows))
        if self.deliveries:
            await self._store._enqueue(tx, self.deliveries, max(d.accepted_at for d in self.deliveries))
        if self.appointments:
            await self._store._put_appointments(tx, self.appointments)


def _references(rows: Sequence[MessageRow]) -> list[tuple[str, str, str, int]]:
    return [(r.sender_id, r.sur, r.transaction_id, r.received_at) for r in rows]


def _activity(r: Row) -> ActivityRow:
    return ActivityRow(str(r[0]), int(r[1]), int(r[2]), str(r[3]), r[4], int(r[5]), int(r[6]), bytes(r[7]),
                       bytes(r[8]))
