"""What the archive's use cases (dip.archive) ask of the store, and the rows they exchange.

The archive is the messages table with each recipient's original delivery rows: replay and
requeue read a recipient's originals on one channel (a ``Selection``), requeue and redrive put
copies of them back on the queue (``QueuedCopy``). docs/archive.md says what each is for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from dip.store.message_cache import StoredMessage

START = (-1, -1)  # a cursor before every delivery: (accepted_at, id) of the last one read


class Selection(NamedTuple):
    """Which of a recipient's original deliveries on one channel (its queue): accepted from
    ``start`` to ``end`` (microseconds, inclusive), optionally only these transaction IDs, and
    narrowed by event code, MPAN and schema version."""

    queue: str
    start: int
    end: int
    transaction_ids: tuple[str, ...] = ()
    event_code: str | None = None
    mpan: str | None = None
    version: str | None = None


class Selected(NamedTuple):
    """One original delivery a selection found, in acceptance order."""

    id: int
    accepted_at: int  # the message's received_at
    transaction_id: str
    role: str  # the role the recipient had it in: decides what is masked
    kind: str  # a DeliveryKind
    retention_days: int  # its message's


class QueuedCopy(NamedTuple):
    """A delivery put back on a queue: a requeued replay or a redriven delivery."""

    queue: str
    transaction_id: str
    recipient_id: str
    role: str
    kind: str
    accepted_at: int  # when it was queued: its dead-letter clock
    body: bytes | None
    replay_id: str | None  # a requeued replay's new transaction ID
    requeue_id: str | None
    redrive_of: int | None  # the delivery a redriven copy stands in for
    retention_days: int  # its message's: kept that long from accepted_at


class ReplayPage(NamedTuple):
    """Where the next page of a replay starts (X-Continuation-Token)."""

    caller_id: str
    queue: str
    request_hash: str
    after_at: int
    after_id: int
    expires_at: int


class RequeueClaim(NamedTuple):
    """A requeue whose selection is still being appended, leased to one node."""

    id: str
    queue: str
    recipient_id: str
    interface_id: str
    selection: str  # the MessageRequest as JSON (dip.archive.selection)
    after_at: int
    after_id: int


class RequeueState(NamedTuple):
    queue: str
    total: int
    appended: int
    done: bool  # the whole selection is on the queue
    queued: int  # deliveries of the requeue on the queue
    settled: int  # ... of them delivered, refused or given up
    given_up: int  # ... of them dead-lettered or failed


class Redrive(NamedTuple):
    """Which undelivered deliveries go back on their queues."""

    states: tuple[str, ...]  # of dip.queue.UNDELIVERED
    recipient_id: str | None
    interface_id: str | None
    start: int
    end: int


class Narrowing(NamedTuple):
    """What a search keeps of what its driver finds (None: no such filter)."""

    start: int
    end: int
    interface_id: str | None = None
    event_code: str | None = None
    mpan: str | None = None
    correlation_id: str | None = None
    sur: str | None = None
    sur_sender: str | None = None  # the sender the reference names
    viewer: str | None = None  # only what this participant sent, sent for another, or received


class Found(NamedTuple):
    """A message a search found."""

    transaction_id: str
    interface_id: str
    event_code: str
    sender_id: str
    sur: str
    correlation_id: str | None
    mpan: str | None
    received_at: int
    sender_role: str
    dcp_id: str | None


class StatusRecord(NamedTuple):
    """A status message kept for a participant (the StandardResponseBodyType it was sent)."""

    id: int
    accepted_at: int
    transaction_id: str
    body: bytes


SEARCH_DRIVERS = ("transaction", "reference", "correlation", "mpan", "channel")


class ArchiveStore(Protocol):
    async def select(self, selection: Selection, after: tuple[int, int], limit: int) -> list[Selected]:
        """The selection's deliveries after ``after`` (accepted_at, id), oldest first, at most ``limit``."""

    async def count_selected(self, selection: Selection) -> int: ...

    async def search(self, driver: str, value: str, narrowing: Narrowing, after: tuple[int, str],
                     limit: int) -> list[Found]:
        """Messages whose ``driver`` (one of SEARCH_DRIVERS) is ``value``, narrowed, after the cursor
        (received_at, transaction ID), oldest first, at most ``limit``."""

    async def stored_messages(self, transaction_ids: list[str]) -> dict[str, StoredMessage]:
        """The stored messages with these IDs (those still archived)."""

    async def status_messages_for(self, queue: str, start: int, end: int, after: tuple[int, int],
                                  transaction_id: str | None, limit: int) -> list[StatusRecord]: ...

    async def put_replay_page(self, token: str, page: ReplayPage) -> None: ...

    async def replay_page(self, token: str) -> ReplayPage | None: ...

    async def drop_expired_replay_pages(self, now: int) -> int: ...

    async def create_requeue(self, requeue_id: str, selection: Selection, recipient_id: str, interface_id: str,
                             requested_by: str, request: str, total: int, now: int) -> None: ...

    async def claim_requeue(self, owner: str, now: int, lease: int) -> RequeueClaim | None:
        """Lease the oldest requeue still being appended that no live node holds."""

    async def append_requeue(self, claim: RequeueClaim, owner: str, copies: list[QueuedCopy],
                             after: tuple[int, int], done: bool, lease_until: int, now: int) -> bool:
        """Put a chunk of the requeue on its queue and record how far it got, atomically; False
        (and nothing written) when ``owner`` lost the lease."""

    async def requeue_state(self, requeue_id: str) -> RequeueState | None: ...

    async def redrive(self, redrive: Redrive, limit: int, now: int) -> int:
        """Put up to ``limit`` of the matching undelivered deliveries back at the end of their
        queues, as they were, and mark them redriven; how many."""


class JobState(NamedTuple):
    name: str
    next_run_at: int
    lease_owner: str | None
    lease_until: int | None
    last_run_at: int | None
    last_result: str | None


class RetentionStore(Protocol):
    """What the purge (dip.archive.retention) and the job schedule (dip.jobs) ask of the store."""

    async def retention_classes(self) -> list[int]:
        """Every retention (days) a message was accepted with."""

    async def add_retention_class(self, days: int) -> None: ...

    async def prepare_archive(self, start: int, end: int) -> int:
        """Where the archive is partitioned (PostgreSQL): every class's partitions for the days
        from ``start`` to ``end``, and the rows a default partition caught moved into theirs;
        how many partitions were made (0 where there are none)."""

    async def purge_expired(self, days: int, before: int, limit: int) -> tuple[int, int]:
        """Purge the messages and deliveries of retention class ``days`` from before ``before``
        (each by its own time); how many of each. Partitioned (PostgreSQL): drops every day
        partition that ended by ``before``, deleting no row. Else up to ``limit`` of each, the
        oldest, in one transaction: called again while there is more."""

    async def sweep_stale(self, start: int, end: int, now: int) -> int:
        """Dead-letter the pending deliveries queued from ``start`` to ``end`` that no worker did
        (RetryPolicy.oldest_pending); how many."""

    async def purge_references(self, before: int, limit: int) -> int:
        """Delete about ``limit`` of the oldest sender references taken before ``before``; how many."""

    async def purge_calls(self, before: int, limit: int) -> int: ...

    async def purge_requeues(self, before: int) -> int: ...

    async def drop_expired_replay_pages(self, now: int) -> int: ...

    async def forget_sights(self, now: int) -> int:
        """Forget the signed requests (first_sight) whose window ended before ``now``; how many."""


class JobStore(Protocol):
    async def add_job(self, name: str, first_run_at: int) -> None:
        """Schedule ``name`` unless it is already."""

    async def claim_job(self, name: str, owner: str, now: int, lease: int) -> bool:
        """Take the job when it is due and no live node holds it."""

    async def finish_job(self, name: str, owner: str, next_run_at: int, now: int, result: str) -> bool: ...

    async def make_job_due(self, name: str, now: int) -> bool:
        """The job runs at the next poll of any node (False: no such job)."""

    async def job_states(self) -> list[JobState]: ...

    async def release_jobs(self, owner: str) -> int:
        """Hand back the jobs ``owner`` runs (a stopping node): another node may run them when due."""
