"""What the operator's views read, the same SQL on both stores (placeholders added by each).

A delivery's state comes from the ``delivery_status`` view (a delivered row still says
'pending' in ``deliveries``; its queue's watermark says it was delivered). A queue's backlog is
its pending rows above the watermark, counted on the pending index.
"""

from __future__ import annotations

from typing import NamedTuple


class DeliveryHistory(NamedTuple):
    """What became of one message (or a status message about it) for one recipient."""

    recipient_id: str
    role: str
    kind: str  # "primary" | "secondary" | "always" | "status" (a status message to the sender)
    state: str  # "pending" | "delivered" | "rejected" | "failed" | "dead"
    attempts: int
    accepted_at: int  # microseconds since the epoch
    done_at: int | None
    last_status: int | None
    last_error: str | None


class QueueState(NamedTuple):
    """One recipient webhook's queue: its backlog, its head, its backoff and who holds it."""

    queue: str
    recipient_id: str
    interface_id: str  # "status" for the status-message queue
    pending: int
    retries: int  # consecutive failed attempts of the head
    next_attempt_at: int
    lease_owner: str | None
    lease_until: int | None
    head_accepted_at: int | None  # the oldest pending delivery's acceptance (None: nothing pending)
    head_attempts: int | None
    head_status: int | None  # what the last attempt at the head got
    head_error: str | None


class Undelivered(NamedTuple):
    """A delivery that ended without reaching its recipient: dead-lettered, failed or rejected."""

    id: int  # the delivery's position in the DIP's queues: the listing's cursor
    transaction_id: str
    interface_id: str | None  # of the message (None: a status message about no stored message)
    sender_id: str | None  # the message's sender
    recipient_id: str
    role: str
    kind: str  # "primary" | "secondary" | "always" | "status"
    state: str  # "dead" | "failed" | "rejected"
    attempts: int
    accepted_at: int  # microseconds since the epoch
    done_at: int | None
    last_status: int | None
    last_error: str | None


UNDELIVERED_STATES = ("dead", "failed", "rejected")


def undelivered_sql(state: str, placeholders: list[str], recipient: bool, interface: bool) -> str:
    """The undelivered deliveries in one state, above a cursor, oldest first.

    ``placeholders`` are the store's, in the order: cursor, [recipient], [interface], limit. The
    state is written into the statement (it is one of UNDELIVERED_STATES) so that the planner
    can use the partial index on these states with any plan.
    """
    if state not in UNDELIVERED_STATES:
        raise ValueError(f"not an undelivered state: {state!r}")
    marks = iter(placeholders)
    where = [f"d.state = '{state}'", f"d.id > {next(marks)}"]
    if recipient:
        where.append(f"d.recipient_id = {next(marks)}")
    if interface:
        where.append(f"m.interface_id = {next(marks)}")
    return ("SELECT d.id, d.transaction_id, m.interface_id, m.sender_id, d.recipient_id, d.role, d.kind, d.state,"
            " d.attempts, d.accepted_at, d.done_at, d.last_status, d.last_error FROM deliveries d"
            " LEFT JOIN messages m ON m.transaction_id = d.transaction_id"
            f" WHERE {' AND '.join(where)} ORDER BY d.id LIMIT {next(marks)}")


HISTORY_SQL = ("SELECT recipient_id, role, kind, state, attempts, accepted_at, done_at, last_status, last_error"
               " FROM delivery_status WHERE transaction_id = {0} ORDER BY id")

_PENDING = "d.queue = q.queue AND d.state = 'pending' AND d.id > q.delivered_through"
QUEUES_SQL = (
    "SELECT o.queue, o.recipient_id, o.interface_id, o.pending, o.retries, o.next_attempt_at, o.lease_owner,"
    " o.lease_until, h.accepted_at, h.attempts, h.last_status, h.last_error FROM ("
    " SELECT q.queue, q.recipient_id, q.interface_id, q.retries, q.next_attempt_at, q.lease_owner, q.lease_until,"
    f" (SELECT count(*) FROM deliveries d WHERE {_PENDING}) AS pending,"
    f" (SELECT d.id FROM deliveries d WHERE {_PENDING} ORDER BY d.id LIMIT 1) AS head"
    " FROM queues q{0}) o LEFT JOIN deliveries h ON h.id = o.head ORDER BY o.queue"
)


def queues_sql(placeholder: str | None) -> str:
    """QUEUES_SQL for every queue, or (with the store's placeholder) for one recipient's."""
    return QUEUES_SQL.format(f" WHERE q.recipient_id = {placeholder}" if placeholder else "")
