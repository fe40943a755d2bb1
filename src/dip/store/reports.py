"""What the operator's views read (the statements are in sql/queries.sql).

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
    kind: str  # a dip.queue.DeliveryKind (STATUS: a status message to the sender)
    state: str  # a dip.queue.DeliveryState
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
    kind: str  # a dip.queue.DeliveryKind
    state: str  # one of dip.queue.UNDELIVERED
    attempts: int
    accepted_at: int  # microseconds since the epoch
    done_at: int | None
    last_status: int | None
    last_error: str | None

