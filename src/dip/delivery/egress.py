"""What a recipient receives: the stored message plus A0 and D0, masked for its role (pure).

E2E 4.6.4: the common block is augmented with the D0 block (transaction ID and timestamp,
publication ID, the workflow correlation ID, replay indicator, service ticket URL); A0 carries the
secondary and always recipients the DIP found; fields the channel hides from the recipient's
role are masked (dip.obfuscation). The archive keeps the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dip import ids
from dip.obfuscation import mask


@dataclass(frozen=True, slots=True)
class Publication:
    """One stored message on its way to one recipient (participant, role)."""

    transaction_id: str
    publication_id: str
    payload: bytes  # as stored: the validated payload object
    received_at: int  # microseconds since the epoch
    correlation_id: str | None
    role: str  # the recipient's role: decides what is masked
    secondary_ids: Sequence[str] = field(default_factory=tuple)
    always_ids: Sequence[str] = field(default_factory=tuple)
    replay: bool = False


def egress_payload(p: Publication, masked: Sequence[str], ticket_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(p.payload)
    common = payload.setdefault("CommonBlock", {})
    a0 = dict(common.get("A0") or {"primaryRecipients": []})
    a0.setdefault("primaryRecipients", [])
    a0["secondaryRecipients"] = list(p.secondary_ids)
    a0["always"] = list(p.always_ids)
    common["A0"] = a0
    common["D0"] = {
        "transactionID": p.transaction_id,
        "transactionTimestamp": ids.timestamp(datetime.fromtimestamp(p.received_at / 1_000_000, UTC)),
        "publicationID": p.publication_id,
        "initialCorrelationID": p.correlation_id,
        "replayIndicator": p.replay,
        "serviceTicketURL": ticket_url,
    }
    return mask(payload, masked) if masked else payload


def egress_body(items: Sequence[tuple[Publication, Sequence[str], str | None]]) -> bytes:
    """A DIPMessageEgressArray: ``[(publication, masked pointers, ticket URL), ...]`` in order."""
    return orjson.dumps([{"payload": egress_payload(p, masked, ticket)} for p, masked, ticket in items])
