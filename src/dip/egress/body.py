"""What a recipient receives: the stored message plus A0 and D0, masked for its role (pure).

E2E 4.6.4: the common block is augmented with the D0 block (transaction ID and timestamp,
publication ID, the workflow correlation ID, replay indicator, service ticket URL); A0 carries the
secondary and always recipients the DIP found; fields the channel hides from the recipient's
role are masked (dip.egress.obfuscation). The archive keeps the original.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
import orjson

from dip import ids
from dip.egress.obfuscation import mask


class Replayed(NamedTuple):
    """The new wrapper of a replayed message (E2E 4.9; docs/archive.md)."""

    transaction_id: str
    at: int  # microseconds since the epoch: the replay's (or the requeue's) moment
    correlation_id: str  # reply-prefixed (dip.ids.reply_correlation_id)


class Publication(NamedTuple):
    """One stored message on its way to one recipient (participant, role)."""

    transaction_id: str
    publication_id: str
    payload: bytes  # as stored: the validated payload object
    received_at: int  # microseconds since the epoch
    correlation_id: str | None
    role: str  # the recipient's role: decides what is masked
    secondary_ids: Sequence[str] = ()
    always_ids: Sequence[str] = ()
    replay: Replayed | None = None  # a replay: sent under this new wrapper, the original beside it
    common_span: tuple[int, int] | None = None  # where CommonBlock lies in payload, found at ingest


@functools.lru_cache(maxsize=4096)
def _stamp(received_at: int) -> str:
    """The transaction timestamp (the messages of one batch share it)."""
    return ids.timestamp(datetime.fromtimestamp(received_at / 1_000_000, UTC))


def _augment(common: dict[str, Any], p: Publication, ticket_url: str | None) -> dict[str, Any]:
    a0 = dict(common.get("A0") or {"primaryRecipients": []})
    a0.setdefault("primaryRecipients", [])
    a0["secondaryRecipients"] = list(p.secondary_ids)
    a0["always"] = list(p.always_ids)
    common["A0"] = a0
    common["D0"] = _d0(p, ticket_url) if p.replay is None else {
        "transactionID": p.replay.transaction_id,
        "transactionTimestamp": _stamp(p.replay.at),
        "publicationID": p.publication_id,
        "initialCorrelationID": p.replay.correlation_id,
        "replayIndicator": True,
        "serviceTicketURL": ticket_url,
    }
    return common


def _d0(p: Publication, ticket_url: str | None) -> dict[str, Any]:
    """The message's own wrapper, as first sent."""
    return {
        "transactionID": p.transaction_id,
        "transactionTimestamp": _stamp(p.received_at),
        "publicationID": p.publication_id,
        "initialCorrelationID": p.correlation_id,
        "replayIndicator": False,
        "serviceTicketURL": ticket_url,
    }


def egress_payload(p: Publication, masked: Sequence[str], ticket_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(p.payload)
    payload["CommonBlock"] = _augment(payload.get("CommonBlock") or {}, p, ticket_url)
    return mask(payload, masked) if masked else payload


_shallow = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder()


def _egress_object(p: Publication, masked: Sequence[str], ticket_url: str | None) -> dict[str, Any]:
    """``egress_payload``, for encoding. Without masking only A0 is decoded: the custom block
    (most of a message) and the rest of the common block are copied as stored (``msgspec.Raw``)."""
    if masked:
        return egress_payload(p, masked, ticket_url)
    top: dict[str, Any] = dict(_shallow.decode(p.payload))
    common = top.get("CommonBlock")
    top["CommonBlock"] = _augmented_common(common, p, ticket_url) if common is not None else _augment({}, p, ticket_url)
    return top


def _augmented_common(common: bytes | memoryview | msgspec.Raw, p: Publication, ticket_url: str | None,
                      ) -> dict[str, Any]:
    block: dict[str, Any] = dict(_shallow.decode(common))
    a0 = block.get("A0")
    if a0 is not None:
        block["A0"] = msgspec.json.decode(a0)
    return _augment(block, p, ticket_url)


_ELEMENT_START, _ELEMENT_END = b'{"payload":', b"}"


def egress_element(p: Publication, masked: Sequence[str], ticket_url: str | None) -> bytes:
    """One element of a DIPMessageEgressArray, ``{"payload": ...}``, as JSON; a replay's carries
    its original wrapper beside the payload: ``{"payload": ..., "originalWrapper": {"D0": ...}}``
    (the official element allows keys beside ``payload``; ``CommonBlock`` and ``D0`` do not).

    Unmasked, with the common block's place in the stored payload known (found at ingest), only
    the common block is read: the rest of the message is copied around it as stored.
    """
    element = _element(p, masked, ticket_url)
    if p.replay is None:
        return element
    return b"".join((element[:-1], b',"originalWrapper":', _encode.encode({"D0": _d0(p, ticket_url)}), b"}"))


def _element(p: Publication, masked: Sequence[str], ticket_url: str | None) -> bytes:
    span = p.common_span
    if span is not None and not masked:
        start, end = span
        payload = memoryview(p.payload)  # pieces joined without copies of their own
        try:
            common = _encode.encode(_augmented_common(payload[start:end], p, ticket_url))
        except (msgspec.DecodeError, TypeError):
            pass  # not the object it should be: read the whole payload below
        else:
            return b"".join((_ELEMENT_START, payload[:start], common, payload[end:], _ELEMENT_END))
    return _encode.encode({"payload": _egress_object(p, masked, ticket_url)})


def egress_array(elements: Sequence[bytes]) -> bytes:
    """``[e1,e2,...]`` in one copy (a call is tens of megabytes)."""
    if not elements:
        return b"[]"
    parts = [b"["]
    for element in elements:
        parts += (element, b",")
    parts[-1] = b"]"
    return b"".join(parts)


def egress_body(items: Sequence[tuple[Publication, Sequence[str], str | None]]) -> bytes:
    """A DIPMessageEgressArray: ``[(publication, masked pointers, ticket URL), ...]`` in order."""
    return egress_array([egress_element(p, masked, ticket) for p, masked, ticket in items])
