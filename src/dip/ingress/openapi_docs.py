"""OpenAPI fragments for routes that read raw bodies (kept off pydantic for speed)."""

from __future__ import annotations

from typing import Any

from dip.schemas import A0, D0, M0, R0, S1

STANDARD_RESPONSE_ITEM: dict[str, Any] = {
    "type": "object",
    "required": [
        "transactionID", "senderUniqueReference", "correlationID", "sentTimestamp", "senderID",
        "recipientID", "DIPConnectionProviderID", "message", "help", "serviceTicketURL",
    ],
    "properties": {
        "transactionID": {"type": "string", "nullable": True, "maxLength": 65},
        "senderUniqueReference": {"type": "string", "nullable": True, "maxLength": 200},
        "correlationID": {"type": "string", "nullable": True, "maxLength": 60},
        "sentTimestamp": {"type": "string", "minLength": 25, "maxLength": 25},
        "senderID": {"type": "string", "minLength": 10, "maxLength": 10},
        "recipientID": {"type": "string", "nullable": True, "minLength": 10, "maxLength": 10},
        "DIPConnectionProviderID": {"type": "string", "nullable": True, "minLength": 10, "maxLength": 10},
        "message": {"type": "string", "nullable": True, "maxLength": 200, "example": "MSG0000 - Success"},
        "help": {"type": "string", "nullable": True, "maxLength": 500},
        "serviceTicketURL": {"type": "string", "nullable": True, "maxLength": 250},
    },
}

STANDARD_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "messageArray": {"type": "array", "items": STANDARD_RESPONSE_ITEM},
        "timestamp": {"type": "string", "minLength": 25, "maxLength": 25},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


MESSAGE_ARRAY: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 50000,
    "items": {
        "type": "object",
        "required": ["payload"],
        "properties": {
            "payload": {
                "type": "object",
                "required": ["CommonBlock", "CustomBlock"],
                "properties": {
                    "CommonBlock": {
                        "type": "object",
                        "required": ["S0", "S1"],
                        "properties": {
                            "S0": {
                                "type": "object",
                                "required": ["interfaceID", "schemaVersion", "eventCode"],
                                "properties": {
                                    "interfaceID": {"type": "string", "example": "IF-021"},
                                    "schemaVersion": {"type": "string", "example": "011"},
                                    "eventCode": {"type": "string", "example": "[ActivePower]"},
                                },
                            },
                            "S1": S1, "A0": A0, "M0": M0, "R0": R0, "D0": D0,
                        },
                    },
                    "CustomBlock": {"type": "object"},
                },
            }
        },
    },
}

SIGNATURE_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
    for name in ("X-DIP-Signature", "X-DIP-Signature-Date", "X-DIP-Content-Hash", "X-DIP-Signature-Certificate")
]

SEND_DOCS: dict[str, Any] = {
    "parameters": SIGNATURE_PARAMETERS,
    "requestBody": {"required": True, "content": {"application/json": {"schema": MESSAGE_ARRAY}}},
    "responses": {
        "201": _json(STANDARD_RESPONSE, "All messages accepted (MSG0000), each with its transactionID"),
        "207": _json(STANDARD_RESPONSE, "Some messages accepted; the others carry an MSG10xx code"),
        "400": _json(STANDARD_RESPONSE, "Batch rejected whole: not an array of payloads, schema failure "
                     "(MSG1001) or wrong interface (MSG1002)"),
        "401": _json(STANDARD_RESPONSE, "API key or signature missing or invalid"),
        "403": _json(STANDARD_RESPONSE, "The caller may not send on this channel"),
        "404": _json(STANDARD_RESPONSE, "Unknown channel (MSG1002)"),
        "413": _json(STANDARD_RESPONSE, "Too many messages or too many bytes in one call"),
        "429": _json(STANDARD_RESPONSE, "Rate limit; see Retry-After"),
    },
}

VALIDATE_DOCS: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": MESSAGE_ARRAY}}},
    "responses": {
        "201": _json({"type": "string"}, "Message OK"),
        "400": _json({"type": "string"}, "Bad Request: what is wrong with which message"),
    },
}


_DESCRIPTIONS = {
    "201": "Created",
    "400": "Bad request: the body or a parameter is not acceptable (the reason is in the answer)",
    "401": "Unauthorised: API key missing or unknown, or the request's signature does not verify",
    "403": "Forbidden: the caller may not do this",
    "404": "Not found",
    "409": "Conflict with what is registered already",
    "413": "Payload too large",
    "429": "Too many requests: retry after the seconds in Retry-After",
    "503": "The DIP cannot reach its database: nothing was changed; retry with back-off",
}


def _answers(path: str, method: str) -> tuple[str, ...]:
    """The status codes an operation can answer besides its success (one place for the table)."""
    if path in ("/healthz", "/dip/certificate"):
        return ()
    if path.startswith("/admin/"):
        return ("400", "401", "404", "409", "413", "503")
    if "/replay/" in path or path.startswith("/statusmessage/replay/"):
        return ("400", "401", "403", "404", "413", "429", "503")
    if "/requeue/" in path:
        return ("400", "401", "403", "404", "409", "413", "429", "503")
    if path == "/messages":
        return ("400", "401", "429", "503")
    if "/pubconfig/" in path or path.startswith("/statusmessage/config/"):
        return ("201", "400", "401", "403", "404", "503") if method == "post" else ("400", "401", "403", "404", "503")
    return ("400", "401", "403", "404", "413", "503")


def complete_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation lists each status code it can answer, and not FastAPI's 422: a request
    that fails parameter validation is answered 400 (api/app.py)."""
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code in _answers(path, method):
                responses.setdefault(code, {"description": _DESCRIPTIONS[code]})
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return declare_security(schema)


PUBLIC_PATHS = ("/healthz", "/dip/certificate")
SECURITY_SCHEMES = {
    "participantApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                          "description": "A participant's API key. Every request is also signed: the X-DIP-Signature, "
                                         "X-DIP-Signature-Date, X-DIP-Content-Hash and X-DIP-Signature-Certificate "
                                         "headers (docs/api.md, \"Signing a request\"), by a certificate "
                                         "registered to the key's participant or to a connection provider it "
                                         "appointed."},
    "operatorApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "An operator's API key (routes under /admin)."},
}


def declare_security(schema: dict[str, Any]) -> dict[str, Any]:
    """The security schemes, and which each operation takes: the operator's key under /admin,
    none on the public probes, a participant's key (and signature) everywhere else."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        scheme: list[dict[str, list[str]]] = [] if path in PUBLIC_PATHS else (
            [{"operatorApiKey": []}] if path.startswith("/admin") else [{"participantApiKey": []}])
        for operation in operations.values():
            operation["security"] = scheme
    return schema
