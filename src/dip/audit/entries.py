"""An API activity log entry (DIP FS 5.8.1): what one request was, who made it, what it was
answered, with personal data and secrets masked. Pure: the writer (dip.audit.writer) builds
entries off the event loop.

An entry is a JSON object in the shape of an OpenTelemetry log record (the "standard open
framework" FS 5.8.1 asks for; OTLP/JSON field names, HTTP semantic-convention attributes):

    {"timeUnixNano": "...", "severityText": "INFO", "body": <the response body, masked>,
     "attributes": {"dip.audit.chain": ..., "dip.audit.seq": ..., "dip.request_id": ...,
                    "http.request.method": ..., "url.path": ..., "url.query": ...,
                    "client.address": ..., "http.response.status_code": ..., "dip.duration_ms": ...,
                    "user.id": ..., "dip.caller.kind": ..., "dip.caller.role": ..., "dip.signer": ...,
                    "dip.refused": [{"transactionID", "senderUniqueReference", "message"}, ...]}}

What is masked (docs/security.md, "API activity log"):
- MPANs: any run of exactly 13 digits in the URL or in a text value of the body keeps its first
  two digits (the distributor) and loses the rest (``12***********``), except in the DIP's own
  identifiers (transaction, correlation, sender reference), which are kept whole so that a
  refused message can be found by them;
- a message payload in a response (``"payload"``) is replaced by its size and SHA-256: the
  archive holds the message, the log says which one was returned;
- secrets (an API key just issued, and anything named like a key, token or password) by ``***``.
Bodies larger than ``MAX_BODY`` are kept as their size and SHA-256 only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from dip.codes import Code

MAX_BODY = 32 * 1024 * 1024
_MPAN = re.compile(r"(?<!\d)(\d{2})\d{11}(?!\d)")
_MPAN_BYTES = re.compile(rb"(?<!\d)\d{13}(?!\d)")
_IDENTIFIERS = frozenset({"transactionID", "senderUniqueReference", "correlationID", "requeueId", "jobId"})
_SECRETS = re.compile(r"(api_?key|secret|token|password|private_?key)$", re.IGNORECASE)
_SECRET_KEY_BYTES = re.compile(rb'(?i)(api_?key|secret|token|password|private_?key)"\s*:')
_SUCCESS = f'"message":"{Code.SUCCESS.value}'.encode()
_MESSAGE = b'"message":"'


@dataclass
class Capture:
    """What the ingress saw of one request (dip.ingress.activity); the caller is filled in by
    whichever check identified it."""

    request_id: str
    started_ns: int
    method: str
    path: str
    query: str
    client: str | None
    status: int = 0
    duration_ms: float = 0.0
    content_type: str = ""
    chunks: list[bytes] = field(default_factory=list)  # the body, while within MAX_BODY
    size: int = 0
    digest: Any = None  # hashlib.sha256 of a body past MAX_BODY
    caller: str | None = None
    caller_kind: str | None = None  # participant | operator
    caller_role: str | None = None
    signer: str | None = None  # the certificate's owner, when another (a connection provider)
    omit_body: str | None = None  # why the body is not logged (it is the log itself)

    def identify(self, kind: str, caller: str, role: str | None = None) -> None:
        self.caller_kind, self.caller, self.caller_role = kind, caller, role

    def add_body(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.digest is None and self.size <= MAX_BODY:
            self.chunks.append(chunk)
            return
        if self.digest is None:
            self.digest = hashlib.sha256()
            for held in self.chunks:
                self.digest.update(held)
            self.chunks = []
        self.digest.update(chunk)


def mask_text(text: str) -> str:
    return _MPAN.sub(lambda m: m.group(1) + "*" * 11, text)


def mask(value: Any, key: str = "") -> Any:
    """A JSON value with MPANs, payloads and secrets masked (see the module's docstring)."""
    if isinstance(value, str):
        if key in _IDENTIFIERS:
            return value
        if _SECRETS.search(key):
            return "***"
        return mask_text(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "payload" and v is not None:
                raw = orjson.dumps(v)
                out[k] = {"masked": "message payload", "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
            elif _SECRETS.search(k) and v is not None:
                out[k] = "***"
            else:
                out[k] = mask(v, k)
        return out
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    return value


def _summary(size: int, digest: str, why: str) -> dict[str, Any]:
    return {"logged": False, "why": why, "bytes": size, "sha256": digest}


def body_of(capture: Capture) -> tuple[Any, list[dict[str, Any]]]:
    """The body as logged, and the messages it refused (a StandardResponse's items not MSG0000)."""
    if capture.digest is not None:
        return _summary(capture.size, capture.digest.hexdigest(), f"larger than {MAX_BODY} bytes"), []
    raw = b"".join(capture.chunks)
    if capture.omit_body is not None:
        return _summary(len(raw), hashlib.sha256(raw).hexdigest(), capture.omit_body), []
    if not raw:
        return None, []
    if "json" not in capture.content_type:
        return mask_text(raw.decode("utf-8", "replace")), []
    # the common case, a send's StandardResponse all MSG0000 with nothing to mask, is kept as it
    # came: scanned, not parsed (a 50,000-message answer is 15 MB)
    # (the DIP's own JSON answers: a Fragment is embedded as it is)
    if (not _MPAN_BYTES.search(raw) and b'"payload"' not in raw and not _SECRET_KEY_BYTES.search(raw)
            and raw.count(_MESSAGE) == raw.count(_SUCCESS)):
        return orjson.Fragment(raw), []
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return mask_text(raw.decode("utf-8", "replace")), []
    return mask(parsed), _refused(parsed)


def _refused(parsed: Any) -> list[dict[str, Any]]:
    items = parsed.get("messageArray") if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        return []
    return [{"transactionID": i.get("transactionID"), "senderUniqueReference": i.get("senderUniqueReference"),
             "message": i.get("message")}
            for i in items if isinstance(i, dict) and not str(i.get("message", "")).startswith(Code.SUCCESS.value)]


def entry_json(capture: Capture, chain: str, seq: int) -> tuple[bytes, int]:
    """The entry (see the module's docstring) and how many messages the response refused."""
    body, refused = body_of(capture)
    attributes: dict[str, Any] = {
        "dip.audit.chain": chain,
        "dip.audit.seq": seq,
        "dip.request_id": capture.request_id,
        "http.request.method": capture.method,
        "url.path": mask_text(capture.path),
        "url.query": mask_text(capture.query),
        "client.address": capture.client,
        "http.response.status_code": capture.status,
        "dip.duration_ms": round(capture.duration_ms, 3),
        "user.id": capture.caller,
        "dip.caller.kind": capture.caller_kind,
        "dip.caller.role": capture.caller_role,
        "dip.signer": capture.signer,
        "dip.refused": refused,
    }
    entry = {"timeUnixNano": str(capture.started_ns), "severityText": "INFO", "body": body, "attributes": attributes}
    return orjson.dumps(entry), len(refused)
