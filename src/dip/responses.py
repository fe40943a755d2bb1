"""StandardResponse bodies (v2.1.0 StandardResponse / StandardResponseBodyType).

Every item carries all ten fields, null where unknown (DIN-1031).
"""

from __future__ import annotations

from typing import Any

import orjson

from dip.codes import Code, message_text


def item(
    *,
    code: Code,
    sent_timestamp: str,
    sender_id: str,
    recipient_id: str | None,
    transaction_id: str | None = None,
    sur: str | None = None,
    correlation_id: str | None = None,
    dcp_id: str | None = None,
    help_text: str | None = None,
    service_ticket_url: str | None = None,
) -> dict[str, Any]:
    return {
        "transactionID": transaction_id,
        "senderUniqueReference": sur,
        "correlationID": correlation_id,
        "sentTimestamp": sent_timestamp,
        "senderID": sender_id,
        "recipientID": recipient_id,
        "DIPConnectionProviderID": dcp_id,
        "message": message_text(code),
        "help": help_text[:500] if help_text else None,
        "serviceTicketURL": service_ticket_url,
    }


def standard_response(items: list[dict[str, Any]], timestamp: str) -> bytes:
    return orjson.dumps({"messageArray": items, "timestamp": timestamp})
