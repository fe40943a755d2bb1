"""Helpers shared by the route modules: reading bodies within limits, error bodies, callers."""

from __future__ import annotations

import hashlib
import urllib.parse
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from dip import ids
from dip.api.paths import SENT_PATH
from dip.codes import Code
from dip.exceptions import SignatureError
from dip.ingest import Caller
from dip.responses import item, standard_response
from dip.service import DipService
from dip.signing import API_KEY, verify_request

JSON = "application/json"


class BodyTooLarge(Exception):
    pass


def service(request: Request) -> DipService:
    dip: DipService = request.app.state.dip
    return dip


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) past ``limit`` bytes without reading it all.

    The SHA-256 the signature check needs is computed chunk by chunk while the body arrives and
    kept on ``request.state.body_sha256``, so a 200 MB batch is not hashed again afterwards.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    digest = hashlib.sha256()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        digest.update(chunk)
        chunks.append(chunk)
    request.state.body_sha256 = digest.digest()
    return b"".join(chunks)


def error_response(dip: DipService, status: int, code: Code, help_text: str, recipient_id: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    stamp = ids.timestamp(datetime.now(UTC))
    body = standard_response(
        [item(code=code, sent_timestamp=stamp, sender_id=dip.settings.dip_id, recipient_id=recipient_id,
              help_text=help_text)],
        stamp,
    )
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def signed_urls(dip: DipService, request: Request) -> list[str]:
    """The URLs the caller may have signed, under the configured public base URL if any: first
    exactly as sent (percent-encoding and all), then, if different, decoded (a client that signs
    the URL before its HTTP library percent-encodes it)."""
    base = (dip.settings.public_base_url.rstrip("/") if dip.settings.public_base_url
            else f"{request.url.scheme}://{request.url.netloc}")
    scope = request.scope
    sent = scope.get(SENT_PATH) or scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    as_sent = base + sent.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    decoded = base + urllib.parse.unquote(sent.decode("latin-1"))
    decoded += "?" + urllib.parse.unquote(query.decode("latin-1")) if query else ""
    return [as_sent] if decoded == as_sent else [as_sent, decoded]


def authenticate(dip: DipService, request: Request, body: bytes, require_signature: bool = True,
                 ) -> Caller | Response:
    """API key, then signature headers, then whose certificate it is (401 on any failure)."""
    key = request.headers.get(API_KEY)
    if not key:
        return error_response(dip, 401, Code.PROCESSING_FAILED, f"401 Unauthorised: missing {API_KEY} header")
    directory = dip.directory
    principal = directory.participant_for_key(key)
    if principal is None:
        return error_response(dip, 401, Code.PROCESSING_FAILED, "401 Unauthorised: unknown or revoked API key")
    if not require_signature:
        return Caller(principal, principal)
    now = datetime.now(UTC)
    try:
        signer = verify_request(request.headers, request.method, signed_urls(dip, request), body, now,
                                max_skew=timedelta(seconds=dip.settings.signature_max_skew_seconds),
                                body_sha256=getattr(request.state, "body_sha256", None))
    except SignatureError as exc:
        return error_response(dip, 401, Code.PROCESSING_FAILED, f"401 Unauthorised: {exc}", principal.id)
    owner = directory.certificate_owner(signer.fingerprint)
    if owner is None:
        return error_response(
            dip, 401, Code.PROCESSING_FAILED,
            f"401 Unauthorised: the signing certificate (SHA-256 {signer.fingerprint[:16]}...) is not "
            "registered with the DIP",
            principal.id,
        )
    if owner.id != principal.id and not directory.provider_roles(principal.id, owner.id):
        return error_response(
            dip, 401, Code.PROCESSING_FAILED,
            f"401 Unauthorised: the signing certificate belongs to '{owner.id}', which is neither the API "
            f"key's participant '{principal.id}' nor one of its connection providers",
            principal.id,
        )
    return Caller(principal, owner)


def is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == JSON or (content_type.startswith("application/") and content_type.endswith("+json"))
