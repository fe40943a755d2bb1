"""The egress table (E2E 4.6.6.1), as data: what a webhook's answer means, and what follows.

``classify`` turns an answer into an ``Outcome``; ``EGRESS`` says, for each outcome, what the
deliveries of the call become, whether the queue's head is tried again, whether the message's
sender is told, and whether the answer counts against the endpoint's circuit breaker. Every part
of delivery that acts on an answer (settling, dead-lettering, status messages, the breaker)
reads this table; nothing else decides.

| answer                               | outcome       | deliveries become     | retry | sender told   | breaker |
|--------------------------------------|---------------|-----------------------|-------|---------------|---------|
| 201 (other 2xx: noted)               | DELIVERED     | delivered             | no    | no            | success |
| 207                                  | PARTIAL       | delivered; named: rejected | no | named: relayed | success |
| 400                                  | REJECTED      | named (all if none): rejected | no | named: relayed | success |
| 405, 406                             | FAILED_NOTIFY | failed                | no    | by the DIP    | success |
| 401, 403, 404, 413, 505, other 4xx; a non-public address | FAILED | failed | no | no          | success |
| 408, 429, 5xx but 505; no answer     | RETRY         | pending (head held)   | yes   | no            | failure |
| the dead-letter deadline passed      | DEAD_LETTER   | dead                  | no    | by the DIP    | -       |

"Named" messages are those a 207 or 400 answer lists with a code other than RCP0000/MSG0000
(``NAMED``); a 400 naming none refused the whole call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dip.queue import DeliveryState


class Outcome(StrEnum):
    DELIVERED = "delivered"
    PARTIAL = "partial"
    REJECTED = "rejected"
    FAILED = "failed"
    FAILED_NOTIFY = "failed-notify"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"  # not an answer: the deadline passed


class Notice(StrEnum):
    """Whether, and how, the message's sender hears of it (a status message on its queue)."""

    NONE = "none"
    RELAY = "relay"  # the recipient's own StandardResponse item, relayed (E2E 4.7)
    DIP = "dip"  # a status message from the DIP itself, saying what happened


@dataclass(frozen=True)
class Consequence:
    state: DeliveryState  # what the deliveries of the call become
    retry: bool  # the queue's head is held and tried again after a backoff
    notice: Notice
    endpoint_failed: bool  # counts against the URL's circuit breaker


EGRESS: dict[Outcome, Consequence] = {
    Outcome.DELIVERED: Consequence(DeliveryState.DELIVERED, retry=False, notice=Notice.NONE, endpoint_failed=False),
    Outcome.PARTIAL: Consequence(DeliveryState.DELIVERED, retry=False, notice=Notice.NONE, endpoint_failed=False),
    Outcome.REJECTED: Consequence(DeliveryState.DELIVERED, retry=False, notice=Notice.NONE, endpoint_failed=False),
    Outcome.FAILED: Consequence(DeliveryState.FAILED, retry=False, notice=Notice.NONE, endpoint_failed=False),
    Outcome.FAILED_NOTIFY: Consequence(DeliveryState.FAILED, retry=False, notice=Notice.DIP, endpoint_failed=False),
    Outcome.RETRY: Consequence(DeliveryState.PENDING, retry=True, notice=Notice.NONE, endpoint_failed=True),
    Outcome.DEAD_LETTER: Consequence(DeliveryState.DEAD, retry=False, notice=Notice.DIP, endpoint_failed=False),
}
# a message a 207 or 400 answer names as refused, whatever the rest of the call became
NAMED = Consequence(DeliveryState.REJECTED, retry=False, notice=Notice.RELAY, endpoint_failed=False)

_RETRY_STATUSES = frozenset({408, 429})
_NOTIFY_STATUSES = frozenset({405, 406})


def classify(status: int | None) -> Outcome:
    """What a webhook's answer means. ``None`` stands for no answer (timeout, reset, refused)."""
    if status is None:
        return Outcome.RETRY
    if status == 201:
        return Outcome.DELIVERED
    if status == 207:
        return Outcome.PARTIAL
    if 200 <= status < 300:
        # "Participant systems should only send 201 or 207": the call was received, so it is
        # not repeated; the odd status is recorded with the attempt.
        return Outcome.DELIVERED
    if status == 400:
        return Outcome.REJECTED
    if status in _RETRY_STATUSES or (500 <= status < 600 and status != 505):
        return Outcome.RETRY
    if status in _NOTIFY_STATUSES:
        return Outcome.FAILED_NOTIFY
    return Outcome.FAILED


def names_messages(outcome: Outcome) -> bool:
    """Whether the answer's body may name the messages it refused (207, 400)."""
    return outcome in (Outcome.PARTIAL, Outcome.REJECTED)
