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
- MPANs: 13 digits standing alone (not inside a longer word) in the URL or in a text of the body
  keep their first two digits (the distributor) and lose the rest (``12***********``), except in
  the DIP's own identifiers (transaction, correlation, sender reference), which are kept whole
  so that a refused message can be found by them;
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
# 13 digits standing alone (not inside a longer word: a hex identifier may hold such a run)
_MPAN = re.compile(r"(?<![0-9A-Za-z])(\d{2})\d{11}(?![0-9A-Za-z])")
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_RUN = b"0" * 13
_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_IDENTIFIERS = frozenset({"transactionID", "senderUniqueReference", "correlationID", "requeueId", "jobId"})
_SECRETS = re.compile(r"(api_?key|secret|token|password|private_?key)$", re.IGNORECASE)
_SECRET_NAMES = (b'key"', b'secret"', b'token"', b'password"')  # lower-cased ends of the names _SECRETS matches
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
    try:
        if capture.path.startswith("/admin") and (b'"payload"' in raw or _has_secret_key(raw)):
            # an operator's answer holding a message or a secret (small): masked value by value
            parsed = orjson.loads(raw)
            return mask(parsed), _refused(parsed)
        # (the participant routes answer StandardResponses and configurations: neither payloads nor secrets)
        # everything else, a send's StandardResponse of 50,000 items (15 MB) above all, is masked
        # as bytes and embedded as it is (the DIP's own JSON), and parsed only when it refused some
        refused = [] if raw.count(_MESSAGE) == raw.count(_SUCCESS) else _refused(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return mask_text(raw.decode("utf-8", "replace")), []
    return orjson.Fragment(_mask_bytes(raw)), refused


def _has_secret_key(raw: bytes) -> bool:
    """Whether the JSON may name a secret (a cheap test of bytes; ``mask`` decides key by key)."""
    lowered = raw.lower()
    return any(name in lowered for name in _SECRET_NAMES)


def _mpans_in(raw: bytes) -> list[int]:
    """Where 13 digits stand alone in ``raw``. Hand-written for speed: a regular expression
    takes 250 ms over a 15 MB answer; digits mapped to one value and found by ``bytes.find``
    take 20 ms (a hex identifier's long digit runs are the few candidates looked at one by one)."""
    shaped = raw.translate(_DIGITS)
    found, start, end = [], shaped.find(_RUN), len(raw)
    while start != -1:
        stop = start + 13
        while stop < end and shaped[stop] == 48:
            stop += 1
        if stop - start == 13 and (start == 0 or raw[start - 1] not in _WORD) and (stop == end or raw[stop] not in
                                                                                     _WORD):
            found.append(start)
        start = shaped.find(_RUN, stop)
    return found


def _mask_bytes(raw: bytes) -> bytes:
    """MPANs masked in JSON text, except in the values of the DIP's identifiers."""
    starts = _mpans_in(raw)
    if not starts:
        return raw
    out, done = [], 0
    for start in starts:
        key_end = raw.rfind(b'":', 0, start)
        key = raw[raw.rfind(b'"', 0, key_end) + 1:key_end].decode("ascii", "replace")
        if key not in _IDENTIFIERS:
            out += [raw[done:start + 2], b"*" * 11]
            done = start + 13
    out.append(raw[done:])
    return b"".join(out)


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
