"""The delivery queue between accepting and delivering: what a delivery is, and its states.

A delivery is one message (or status message) for one recipient. Deliveries wait in queues,
one per recipient webhook: ``{participant}|{interface}`` for a channel's publications and
``{participant}|status`` for status messages, each served in the order its deliveries were
committed (dip.store holds them; dip.egress serves them).
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryKind(StrEnum):
    """Why the recipient gets the message (A0 and routing, E2E 4.6.4)."""

    PRIMARY = "primary"  # named by the sender
    SECONDARY = "secondary"  # found by MPAN in the registry
    ALWAYS = "always"  # the channel always sends it there
    STATUS = "status"  # a status message to a message's sender
    INTERNAL = "internal"  # the DIP answers it itself (dip.catalogue.ANSWERED_BY_DIP)


class DeliveryState(StrEnum):
    """What became of a delivery (dip.egress.outcomes says which answer leads to which)."""

    PENDING = "pending"  # waiting, or its queue's head backing off
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the recipient refused it as invalid (400, or named in a 207)
    FAILED = "failed"  # the webhook refused the call for good (401, 403, 404, ...)
    DEAD = "dead"  # not delivered before the dead-letter deadline
    REDRIVEN = "redriven"  # was undelivered; the operator put a copy back on the queue (dip.archive.redrive)


UNDELIVERED = (DeliveryState.DEAD, DeliveryState.FAILED, DeliveryState.REJECTED)
STATUS_QUEUE = "status"  # the interface part of a status-message queue's name
# next_attempt_at of a queue the worker found drained: never due until something is enqueued
# (or its recipient's webhook changes); the claim then reads the queues table alone
IDLE = 2**63 - 1


def publication_queue(participant_id: str, interface_id: str) -> str:
    return f"{participant_id}|{interface_id}"


def status_queue(participant_id: str) -> str:
    return f"{participant_id}|{STATUS_QUEUE}"


def queue_interface(queue: str) -> str:
    """The interface part of a queue's name (``STATUS_QUEUE`` for a status-message queue)."""
    return queue.split("|", 1)[1]
