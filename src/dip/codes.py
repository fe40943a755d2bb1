"""The DIP's response codes (official list: ResponseCodes DI-999, MSG range) and their texts."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    SUCCESS = "MSG0000"
    PROCESSING_FAILED = "MSG1000"
    SCHEMA_FAILURE = "MSG1001"
    INTERFACE_INVALID = "MSG1002"
    SUR_DUPLICATED = "MSG1006"
    SENDER_TIMESTAMP_INVALID = "MSG1007"
    SENDER_INVALID = "MSG1009"
    SENDER_ROLE_INVALID = "MSG1010"
    CONNECTION_PROVIDER_INVALID = "MSG1011"
    SENDER_CORRELATION_INVALID = "MSG1012"
    ROUTING_ERROR = "MSG1030"
    PRIMARY_PARTICIPANT_INVALID = "MSG1031"
    PRIMARY_ROLE_INVALID = "MSG1032"
    SECONDARY_PARTICIPANT_INVALID = "MSG1033"
    SECONDARY_ROLE_INVALID = "MSG1034"
    ALWAYS_PARTICIPANT_INVALID = "MSG1035"
    ALWAYS_ROLE_INVALID = "MSG1036"
    SECONDARY_MISSING_MPAN = "MSG1037"
    SECONDARY_UNRESOLVED = "MSG1038"


TEXTS: dict[Code, str] = {
    Code.SUCCESS: "Success",
    Code.PROCESSING_FAILED: "Message Processing Failed",
    Code.SCHEMA_FAILURE: "Schema Failure",
    Code.INTERFACE_INVALID: "Interface ID Invalid",
    Code.SUR_DUPLICATED: "Sender Unique Reference Duplicated",
    Code.SENDER_TIMESTAMP_INVALID: "Sender Timestamp Invalid",
    Code.SENDER_INVALID: "Sender DIP ID Invalid",
    Code.SENDER_ROLE_INVALID: "Sender Role Invalid",
    Code.CONNECTION_PROVIDER_INVALID: "Connection Provider ID Invalid",
    Code.SENDER_CORRELATION_INVALID: "Sender Correlation ID Invalid",
    Code.ROUTING_ERROR: "Msg Addressing / Routing Error",
    Code.PRIMARY_PARTICIPANT_INVALID: "Primary Recipient(s) DIP Participant ID Invalid",
    Code.PRIMARY_ROLE_INVALID: "Primary Recipient(s) DIP Role ID Invalid",
    Code.SECONDARY_PARTICIPANT_INVALID: "Secondary Recipient(s) DIP Participant ID Invalid",
    Code.SECONDARY_ROLE_INVALID: "Secondary Recipient(s) DIP Role ID Invalid",
    Code.ALWAYS_PARTICIPANT_INVALID: "Always Recipient(s) DIP Participant ID Invalid",
    Code.ALWAYS_ROLE_INVALID: "Always Recipient(s) DIP Role ID Invalid",
    Code.SECONDARY_MISSING_MPAN: "Cannot Resolve Secondary Recipient(s) for Missing MPAN",
    Code.SECONDARY_UNRESOLVED: "Cannot Resolve Secondary Recipient(s) for MPAN/Party/Event Combination",
}


def message_text(code: Code) -> str:
    """``"MSG0000 - Success"``: the form every StandardResponseBodyType.message takes."""
    return f"{code.value} - {TEXTS[code]}"
