"""The narrow store interface. The store persists and reports; it decides nothing.

One implementation (sql_store.SqlStore) over two dialects (SQLite, PostgreSQL) runs the
contract tests (tests/integration/test_store_contract.py) on both.
Every change to participants, credentials or channels bumps ``state_version`` in the same
transaction, which is how other nodes notice that their caches are stale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from dip.catalogue import DEFAULT_RETENTION_DAYS
from dip.queue import DeliveryState
from dip.store.activity import ActivityStore
from dip.store.archive import ArchiveStore, JobStore, RetentionStore
from dip.store.encryption import Keyring
from dip.store.limits import LimitSetting

if TYPE_CHECKING:
    from dip.store.message_cache import MessageCache
    from dip.store.reports import DeliveryHistory, QueueState, Undelivered


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    id: str
    name: str
    roles: tuple[str, ...]
    active: bool


class WebhookRow(NamedTuple):
    participant_id: str
    kind: str  # a directory.WebhookKind
    interface_id: str  # "" for the status-message webhook
    url: str
    max_message_count: int
    max_payload_kb: int
    registered_by: str


class DeliveryRow(NamedTuple):
    """A message (or status message) to hand to one recipient."""

    queue: str  # the recipient webhook: "{participant}|{interface}" or "{participant}|status"
    transaction_id: str
    recipient_id: str
    role: str
    kind: str  # a DeliveryKind
    accepted_at: int  # microseconds since the epoch: the dead-letter clock starts here
    body: bytes | None = None  # status messages carry their StandardResponseBodyType JSON
    # kept this long from accepted_at: its message's retention (status messages: the default)
    retention_days: int = DEFAULT_RETENTION_DAYS


class Claim(NamedTuple):
    queue: str
    recipient_id: str
    interface_id: str
    retries: int  # consecutive failed attempts of the head so far
    arrivals: int  # enqueues the queue had counted when claimed: settle(drained=) compares them
    pending_floor: int = 0  # no pending delivery of the queue was accepted before this (less the skew)


class PendingDelivery(NamedTuple):
    id: int
    transaction_id: str
    recipient_id: str
    role: str
    kind: str
    accepted_at: int
    attempts: int
    body: bytes | None
    payload: bytes | None  # the stored message (None for status messages about unknown ones)
    correlation_id: str | None
    received_at: int | None
    a0_secondary: str | None  # as on MessageRow
    a0_always: str | None
    common_start: int | None = None  # as on MessageRow
    common_end: int | None = None
    replay_id: str | None = None  # a requeued replay: the transaction ID of its new wrapper


class Settlement(NamedTuple):
    """What became of one delivery after a call."""

    id: int
    state: DeliveryState  # PENDING: tried again later
    status: int | None
    error: str | None


class DeliveredRun(NamedTuple):
    """Deliveries one call delivered: a contiguous run of its queue, ``first_id`` to ``last_id``."""

    first_id: int
    last_id: int
    messages: int
    status: int | None
    note: str | None  # e.g. "answered 200, not 201"


Outcomes = dict[tuple[str, int | None, str | None], list[int]]


def by_outcome(settlements: Sequence[Settlement]) -> tuple[Outcomes, list[DeliveredRun]]:
    """A call's settlements as the store writes them: delivery IDs by outcome, so the rows that
    must be written take one UPDATE per distinct outcome; and the delivered ones as runs, which
    move the queue's ``delivered_through`` watermark instead of writing each row.

    A queue is served strictly in order, so what one call delivered is a contiguous run of the
    queue's pending rows (rejected and dead-lettered rows inside it are written explicitly)."""
    groups: Outcomes = {}
    for st in settlements:
        groups.setdefault((st.state, st.status, st.error), []).append(st.id)
    runs = [DeliveredRun(min(ids), max(ids), len(ids), status, error)
            for (state, status, error), ids in groups.items() if state == DeliveryState.DELIVERED]
    return {k: v for k, v in groups.items() if k[0] != DeliveryState.DELIVERED}, runs


class CertificateRow(NamedTuple):
    fingerprint: str
    pem: str
    not_after: int
    created_at: int
    revoked_at: int | None
    retires_at: int | None
    issued_by_dip: bool


@dataclass(frozen=True, slots=True)
class DirectoryRows:
    participants: list[ParticipantRow]
    api_keys: list[tuple[str, str]]  # (key hash, participant)
    certificates: list[tuple[str, str]]  # (fingerprint, participant)
    providers: list[tuple[str, str, tuple[str, ...]]]  # (participant, dcp, roles)
    admin_keys: list[str]
    webhooks: list[WebhookRow]
    operators: list[tuple[str, str, str, str]] = field(default_factory=list)  # (key hash, id, name, role)
    retiring: list[tuple[str, int]] = field(default_factory=list)  # (fingerprint, works until): rotated away


class AppointmentRow(NamedTuple):
    mpan: str
    role: str
    effective_from: str  # YYYY-MM-DD
    participant_id: str
    effective_to: str | None  # inclusive; None = open-ended


class MessageRow(NamedTuple):
    """One accepted message. A tuple, so batches go to executemany/COPY without conversion."""

    transaction_id: str
    interface_id: str
    event_code: str
    schema_version: str
    sender_id: str
    sender_role: str
    dcp_id: str | None
    sur: str
    correlation_id: str | None
    mpan: str | None
    received_at: int  # microseconds since the epoch, UTC
    payload: bytes  # the payload object as JSON
    a0_secondary: str = ""  # the secondary recipients the DIP found (A0.secondaryRecipients), comma-separated
    a0_always: str = ""  # the always recipients (A0.always), comma-separated
    common_start: int | None = None  # the CommonBlock object is payload[common_start:common_end]
    common_end: int | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS  # the channel's retentionDays when it was accepted: kept that long


class MessageBatch(Protocol):
    async def add(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                  appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        """Add rows to the open batch, except those whose (sender_id, sur) already exists.

        ``deliveries[i]`` and ``appointments[i]`` (when given) are the routing outcome and the
        MPAN registry changes of ``rows[i]``; they are stored with it, or left out with it.
        Returns the indexes (into ``rows``) of the rows left out. Nothing is durable until the
        batch's context exits without an exception; an exception discards it.

        Where rows are written as they are added (PostgreSQL), the references' unique index
        does the check as they are written: a row whose reference is taken raises
        UniqueViolation instead of being left out, and the caller stores the batch again with
        ``insert_messages``, which leaves such rows out.
        """


class DirectoryStore(Protocol):
    """Participants, credentials, channels, webhooks and the DIP's identity: the state every
    node caches (dip.state). Every change bumps ``state_version`` in its transaction."""

    async def state_version(self) -> int: ...

    async def load_directory(self) -> DirectoryRows: ...

    async def load_channels(self) -> list[tuple[str, bytes]]: ...

    async def put_participant(self, row: ParticipantRow, now: int) -> bool:
        """Insert or update; True when created."""

    async def offboard_participant(self, participant_id: str, channel_updates: list[tuple[str, bytes]],
                                   now: int) -> bool:
        """Deactivate, drop its connection-provider grants, rewrite the given channels; one transaction."""

    async def add_api_key(self, participant_id: str, key_hash: str, now: int) -> None: ...

    async def add_certificate(self, participant_id: str, fingerprint: str, pem: str, not_after: int,
                              now: int) -> bool:
        """True when newly registered (False: already registered to this participant)."""

    async def certificate_holder(self, fingerprint: str) -> str | None: ...

    async def revoke_api_key(self, participant_id: str, key_id: str, now: int) -> bool:
        """Revoke the participant's key named ``key_id`` (dip.directory.key_id); False when it has
        no such key in force."""

    async def revoke_certificate(self, participant_id: str, fingerprint: str, now: int) -> bool: ...

    async def retire_certificate(self, participant_id: str, fingerprint: str, at: int) -> bool:
        """The certificate stops working at ``at`` (a rotation's overlap); False if not in force."""

    async def mark_issued_by_dip(self, fingerprint: str) -> None: ...

    async def certificates_of(self, participant_id: str) -> list[CertificateRow]:
        """Every certificate ever registered to the participant, oldest first."""

    async def api_keys_of(self, participant_id: str) -> list[tuple[str, int, int | None]]:
        """(key ID, created at, revoked at) of each key the participant was ever given."""

    async def certificate_revoked(self, fingerprint: str) -> bool: ...

    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: tuple[str, ...],
                                      now: int) -> None: ...

    async def add_admin_key(self, key_hash: str, now: int) -> None: ...

    async def add_operator(self, operator_id: str, name: str, role: str, key_hash: str, now: int) -> None: ...

    async def revoke_operator(self, operator_id: str, now: int) -> bool: ...

    async def operators(self) -> list[tuple[str, str, str, int, int | None]]:
        """(id, name, role, created at, revoked at) of every operator, in the order they were added."""

    async def put_channel(self, interface_id: str, definition: bytes, now: int) -> bool:
        """Insert or replace; True when created."""

    async def delete_channel(self, interface_id: str) -> bool: ...

    async def put_webhook(self, row: WebhookRow, now: int) -> bool:
        """Insert or replace a webhook registration; True when created."""

    async def delete_webhook(self, participant_id: str, kind: str, interface_id: str) -> bool: ...

    async def dip_identity(self, key_pem: str, cert_pem: str, now: int) -> tuple[str, str]:
        """The stored signing identity; the given one is stored first if there is none yet."""

    async def rotate_identity(self, old_cert_pem: str, old_fingerprint: str, key_pem: str, cert_pem: str,
                              retires_at: int, now: int) -> bool:
        """Sign with a new key from now on; the old certificate stays published until ``retires_at``.
        False when the stored identity is no longer ``old_cert_pem`` (rotated meanwhile)."""

    async def retired_certificates(self, now: int) -> list[tuple[str, int]]:
        """(certificate, published until) the DIP signed with before, still in their overlap."""

    async def dip_certificates(self) -> list[str]:
        """The DIP's signing certificates (PEM) the store knows, to check what it signed."""

    async def record_signing_certificate(self, fingerprint: str, cert_pem: str, now: int) -> None:
        """Note a certificate the DIP signs with (kept when it is rotated away)."""


class MessageStore(Protocol):
    """Accepted messages, written with their deliveries and registry changes."""

    def message_batch(self) -> AbstractAsyncContextManager[MessageBatch]:
        """A batch of message inserts committed as one transaction when the context exits.

        Raises UniqueViolation at ``add`` or at exit when a concurrent batch stored the same
        sender unique reference first; nothing of this batch is then stored.
        """

    async def insert_messages(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                              appointments: Sequence[Sequence[AppointmentRow]] = ()) -> list[int]:
        """Store the rows (with their deliveries and appointments, as ``MessageBatch.add``) in one
        transaction, except those whose (sender_id, sur) already exists.

        Returns the indexes (into ``rows``) of the rows not stored for that reason. Commits
        durably before returning.
        """

    async def get_message(self, transaction_id: str) -> MessageRow | None: ...

    async def senders(self, transaction_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """transaction ID -> (sender, correlation ID) for the stored messages among these."""

    async def count_messages(self) -> int: ...


class RegistryStore(Protocol):
    """The MPAN registry: appointments with effective dates, versioned."""

    async def put_appointments(self, rows: list[AppointmentRow]) -> int:
        """Insert or replace MPAN appointments (key: MPAN, role, effective-from) in one transaction.

        Returns the registry version (``seq``) the rows were written under.
        """

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]:
        """Every appointment, past and present, of the given MPANs."""

    async def registry_version(self) -> int: ...

    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]:
        """The registry version now, and the MPANs written after version ``since`` (None when
        ``since`` is negative or more than ``limit`` MPANs changed)."""


class QueueStore(Protocol):
    """The delivery queues: what delivery claims, reads and settles."""

    async def enqueue(self, rows: list[DeliveryRow], now: int) -> None:
        """Add deliveries; a queue's next attempt moves to ``now`` unless its head is backing off.

        Per queue, deliveries are served in the order of their commits: concurrent writers to one
        queue are serialised (PostgreSQL locks the queue rows before inserting)."""

    async def listen_deliveries(self, wake: Callable[[], None]) -> bool:
        """Have ``wake`` called when another node commits deliveries; False when not supported."""

    async def make_due(self, recipient_id: str, now: int) -> None:
        """The recipient's queues that are not backing off become due at ``now`` (a webhook was registered)."""

    async def claim(self, owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        """Lease up to ``limit`` queues that are due and not leased, the longest due first.

        A due queue may turn out empty (work arrived and was taken while it was leased); a queue
        settled as drained is idle and never due until something is enqueued on it. Two owners
        never hold the same queue: on PostgreSQL the rows are taken with ``FOR UPDATE SKIP
        LOCKED``; SQLite has one writer.
        """

    async def pending(self, queue: str, limit: int, cache: MessageCache | None = None,
                      since: int | None = None) -> list[PendingDelivery]:
        """The queue's next pending deliveries (queued since ``since``), oldest first, with their
        stored messages (taken from ``cache`` when there, and added to it when read)."""

    async def settle(self, queue: str, owner: str, settlements: list[Settlement], next_attempt_at: int,
                     retries: int, relay: list[DeliveryRow], now: int, since: int | None = None,
                     drained: int | None = None) -> bool:
        """Record a call's outcome, enqueue ``relay`` (status messages) and release the lease, atomically.
        ``since`` is the oldest acceptance among the deliveries the call read (every settled one
        was queued since), and becomes the queue's ``pending_floor`` (it never moves back: every
        later delivery of the queue was accepted after, less ``dip.egress.retry.ENQUEUE_SKEW``).
        ``drained`` is the claim's
        ``arrivals`` when the caller took everything that was pending: the queue then goes idle
        (dip.queue.IDLE) unless something was enqueued on it since the claim.

        Changes nothing and returns False when ``owner`` no longer holds the queue's lease.
        """

    async def release_leases(self, owner: str) -> int:
        """Hand back every queue ``owner`` holds (a stopping node): other nodes may take them at once."""


class ReportStore(Protocol):
    """What became of messages: the operator's views and the status-message checks."""

    async def delivery_states(self, transaction_ids: list[str]) -> list[tuple[str, str, str, str, str]]:
        """(transaction ID, recipient, role, kind, state) of every delivery of these messages."""

    async def delivery_history(self, transaction_id: str) -> list[DeliveryHistory]:
        """Every delivery of the message (status messages about it to its sender included), in order."""

    async def queue_overview(self, recipient_id: str | None = None) -> list[QueueState]:
        """Every queue (or one recipient's) by name, with its backlog and head."""

    async def undelivered(self, state: str, after: int = 0, limit: int = 100, recipient_id: str | None = None,
                          interface_id: str | None = None) -> list[Undelivered]:
        """Deliveries in ``state`` (one of dip.queue.UNDELIVERED) with an id above ``after``,
        oldest first, at most ``limit``; optionally one recipient's, or one channel's."""


class Store(DirectoryStore, MessageStore, RegistryStore, QueueStore, ReportStore, ArchiveStore, RetentionStore,
            JobStore, ActivityStore, Protocol):
    """All of it: what a node opens. Each use case takes only the part it needs."""

    async def take_tokens(self, key: str, count: float, rate: float, burst: float, now: int) -> float:
        """Take ``count`` tokens from the bucket ``key`` (``burst`` at most, refilled at ``rate`` a
        second), shared by every node on the database: 0 when taken, else the seconds until
        there would be enough."""

    async def submission_limits(self) -> list[LimitSetting]:
        """The IF-021 submission-limit settings of the data services that have one."""

    async def put_submission_limit(self, participant_id: str, mode: str, portfolio: int | None, now: int) -> None: ...

    async def count_submission(self, participant_id: str, hour: int, messages: int, most: int) -> int | None:
        """Add ``messages`` to the hour's count unless an existing count would pass ``most``: the new
        count, or None when refused."""

    async def note_over_soft(self, participant_id: str, hour: int, messages: int) -> None: ...

    async def submitted_since(self, participant_id: str, hour: int) -> list[tuple[int, int, int]]:
        """(hour, messages, of them over a soft limit) from ``hour`` on."""

    async def measure_portfolios(self, interface_id: str, since: int, now: int) -> dict[str, int]:
        """Distinct MPANs each sender submitted on the channel since ``since`` (recorded)."""

    async def forget_submission_counts(self, before_hour: int) -> int: ...

    async def enqueue_once(self, rows: list[tuple[bytes, DeliveryRow]], expires_at: int, now: int) -> int:
        """Enqueue each row whose digest was not seen before ``expires_at`` passes (recording
        it, in the same transaction); how many were enqueued."""

    async def first_sight(self, digest: bytes, expires_at: int) -> bool:
        """Record a signed request (by its signature's digest) until ``expires_at``: False when it
        was recorded already, by this node or another."""

    def protect(self, keyring: Keyring, sensitive: Callable[[str], bool]) -> None:
        """Encrypt at rest the payloads of the channels ``sensitive`` names (dip.store.encryption)."""

    async def rewrap_data_keys(self) -> tuple[int, int]:
        """Wrap every data key with the keyring's current KEK: (re-wrapped now, already)."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations run under a lock)."""

    async def close(self) -> None: ...


def open_store(database_url: str | None, data_dir: Path) -> Store:
    """SQLite under ``data_dir`` unless a postgresql:// URL is given."""
    from dip.store.sql_store import SqlStore

    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        from dip.store.postgres import PostgresDatabase

        return SqlStore(PostgresDatabase(database_url))
    if database_url and not database_url.startswith("sqlite:"):
        from dip.exceptions import ConfigurationError

        raise ConfigurationError(f"unsupported database URL '{database_url}' (postgresql://... or sqlite:PATH)")
    path = Path(database_url[len("sqlite:"):]) if database_url else data_dir / "dip.sqlite3"
    from dip.store.sqlite import SqliteDatabase

    return SqlStore(SqliteDatabase(path))
