"""The DIP's own JSON Schema (draft 2020-12) for the common blocks of a payload.

Used for channels that carry no imported official schema (``payloadSchemas``): it mirrors the
v2.1.0 common block definitions (RealCommonBlocks S1, A0, M0, M1, R0, D0) field for field, with
the channel's event codes and schema versions as S0 enumerations. The custom block is checked
with the channel's ``customBlockSchema`` (any object when null).
"""

from __future__ import annotations

from typing import Any

from dip.catalogue import WITHOUT_CUSTOM_BLOCK, Channel
from dip.ids import SUR_PATTERN

ENVIRONMENT_TAGS = ("PRD", "SITB", "SIT", "UIT", "DEV")
GSP_GROUPS = tuple(f"_{c}" for c in "ABCDEFGHJKLMNP")


def _string(min_length: int | None = None, max_length: int | None = None, nullable: bool = False,
            **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    schema.update(extra)
    return schema


_DIP_ID = _string(10, 10)
_DIP_ID_N = _string(10, 10, nullable=True)
_DATETIME = _string(25, 25)


def _block(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


S1 = _block({
    "environmentTag": {"type": "string", "enum": list(ENVIRONMENT_TAGS)},
    "subText": _string(1, 500, nullable=True),
    "senderUniqueReference": _string(1, 200, pattern=SUR_PATTERN),
    "senderTimestamp": _DATETIME,
    "senderDIPID": _DIP_ID,
    "senderRoleID": _string(3, 5),
    "senderCorrelationID": _string(1, 60, nullable=True),
    "DIPConnectionProviderID": _DIP_ID_N,
})
A0 = _block({
    "primaryRecipients": {"type": "array", "items": _DIP_ID_N},
    "secondaryRecipients": {"type": "array", "items": _DIP_ID_N},
    "always": {"type": "array", "items": _DIP_ID_N},
})
M0 = _block({
    "MPANCore": _string(13, 13, pattern=r"^\d{13}?$"),
    "distributorDIPID": _DIP_ID,
    "GSPGroupID": {"type": "string", "enum": list(GSP_GROUPS)},
})
M1 = _block({
    "principalMPAN": _string(13, 13, pattern=r"^\d{13}?$"),
    "distributorDIPID": _DIP_ID,
    "GSPGroupID": {"type": "string", "enum": list(GSP_GROUPS)},
})
R0 = _block({
    "responseCode": {"type": "string", "enum": ["A", "R", "L", "W", "x"]},
    "responseMessages": {"type": "array", "items": _string(1, 200, nullable=True)},
})
D0 = _block({
    "transactionID": _string(max_length=65),
    "transactionTimestamp": _DATETIME,
    "publicationID": _string(7, 8),
    "initialCorrelationID": _string(1, 60, nullable=True),
    "replayIndicator": {"type": "boolean"},
    "serviceTicketURL": _string(1, 250, nullable=True),
})


def payload_schema(channel: Channel) -> dict[str, Any]:
    """The whole-payload schema for a channel without imported official schemas."""
    d = channel.definition
    s0 = _block({
        "interfaceID": {"type": "string", "enum": [channel.interface_id]},
        "schemaVersion": {"type": "string", "enum": list(d.schemaVersions)},
        "eventCode": {"type": "string", "enum": list(d.eventCodes)},
    })
    common = _block(
        {"S0": s0, "S1": S1, "A0": A0, "M0": M0, "M1": M1, "R0": R0, "D0": D0},
        required=["S0", "S1"],
    )
    custom: dict[str, Any] = {"type": "object"}
    if d.customBlockSchema is not None:
        # Its own resource, so the operator's "#/$defs/..." references resolve inside it.
        custom = {"$id": f"urn:dip:channel:{channel.interface_id}:custom-block", **d.customBlockSchema}
    if channel.interface_id in WITHOUT_CUSTOM_BLOCK:
        blocks: dict[str, Any] = {"CommonBlock": common}
    else:
        blocks = {"CommonBlock": common, "CustomBlock": custom}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": list(blocks),
        "properties": blocks,
    }


# A status message item (StandardResponseBodyType) as a recipient sends it to POST /statusmessage:
# the official field constraints, with only the fields the DIP needs required (the DIP fills in
# recipient, correlation and timestamp when they are left out; docs/api.md).
STATUS_MESSAGE_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "transactionID": _string(1, 65),
        "senderUniqueReference": _string(1, 200, nullable=True, pattern=SUR_PATTERN),
        "correlationID": _string(1, 60, nullable=True),
        "sentTimestamp": _string(25, 25, nullable=True),
        "senderID": _DIP_ID,
        "recipientID": _DIP_ID_N,
        "DIPConnectionProviderID": _DIP_ID_N,
        "message": _string(1, 200),
        "help": _string(1, 500, nullable=True),
        "serviceTicketURL": _string(1, 250, nullable=True),
    },
    "required": ["transactionID", "senderID", "message"],
}
