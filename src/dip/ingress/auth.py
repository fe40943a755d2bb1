"""Who is calling: the API key's participant, the signature, the certificate's owner (401 otherwise)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from dip.accept.level1 import Caller
from dip.catalogue import Channel
from dip.codes import Code
from dip.config import Settings
from dip.directory import Participant
from dip.exceptions import SignatureError
from dip.ingress.activity import capture_of
from dip.ingress.errors import Refusal
from dip.ingress.paths import SENT_PATH
from dip.ingress.server import CLIENT_CERT
from dip.node import Node
from dip.signing import API_KEY, SIGNATURE, verify_request


def node(request: Request) -> Node:
    """The node serving this app (its use cases, its state, its settings)."""
    found: Node = request.app.state.node
    return found


def signed_urls(settings: Settings, request: Request) -> list[str]:
    """The URLs the caller may have signed, under the configured public base URL if any: first
    exactly as sent (percent-encoding and all), then, if different, decoded (a client that signs
    the URL before its HTTP library percent-encodes it)."""
    base = (settings.public_base_url.rstrip("/") if settings.public_base_url
            else f"{request.url.scheme}://{request.url.netloc}")
    scope = request.scope
    sent = scope.get(SENT_PATH) or scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    as_sent = base + sent.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    decoded = base + urllib.parse.unquote(sent.decode("latin-1"))
    decoded += "?" + urllib.parse.unquote(query.decode("latin-1")) if query else ""
    return [as_sent] if decoded == as_sent else [as_sent, decoded]


def key_holder(dip: Node, request: Request) -> Participant:
    """The API key's participant (a 401 Refusal when the key is missing, unknown or revoked)."""
    key = request.headers.get(API_KEY)
    if not key:
        raise Refusal(401, Code.PROCESSING_FAILED, f"401 Unauthorised: missing {API_KEY} header")
    directory = dip.state.directory
    principal = directory.participant_for_key(key)
    if principal is None:
        raise Refusal(401, Code.PROCESSING_FAILED, "401 Unauthorised: unknown or revoked API key")
    capture = capture_of(request.scope)
    if capture is not None:
        capture.identify("participant", principal.id)
    if dip.settings.requires_client_cert:
        _client_certificate_fits(dip, request, principal)
    return principal


def _client_certificate_fits(dip: Node, request: Request, principal: Participant) -> None:
    """Mutual TLS: the connection's client certificate (verified against the client CA in the
    handshake) must be registered to the API key's participant or to a connection provider it
    appointed: the same registration serves TLS and signatures (API contract section 5)."""
    fingerprint = request.scope.get(CLIENT_CERT)
    if fingerprint is None:
        raise Refusal(401, Code.PROCESSING_FAILED, "401 Unauthorised: this route needs a client certificate "
                      "(mutual TLS) issued by the DIP's client CA", principal.id)
    directory = dip.state.directory
    owner = directory.certificate_owner(fingerprint)
    if owner is None:
        raise Refusal(403, Code.PROCESSING_FAILED, f"403 Forbidden: the client certificate (SHA-256 "
                      f"{fingerprint[:16]}...) is not registered with the DIP, or was revoked", principal.id)
    if owner.id != principal.id and not directory.provider_roles(principal.id, owner.id):
        raise Refusal(403, Code.PROCESSING_FAILED, f"403 Forbidden: the client certificate belongs to '{owner.id}', "
                      f"which is neither the API key's participant '{principal.id}' nor one of its connection "
                      "providers", principal.id)


class KeyFirst(APIRoute):
    """A participant route: the API key is checked before anything else. A caller without a
    valid key makes the DIP read nothing of its body (not even compare its declared length with
    the limit: that comes next, in read_body) and learns nothing else (not which channels or
    participants exist). The signature, which covers the body, is checked once the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def key_first(request: Request) -> Response:
            key_holder(node(request), request)
            return await handler(request)

        return key_first


def authenticate(dip: Node, request: Request, body: bytes, require_signature: bool = True) -> Caller:
    """API key, then signature headers, then whose certificate it is (a 401 Refusal on any failure)."""
    directory = dip.state.directory
    principal = key_holder(dip, request)
    if not require_signature:
        return Caller(principal, principal)
    now = datetime.now(UTC)
    try:
        signer = verify_request(request.headers, request.method, signed_urls(dip.settings, request), body, now,
                                max_skew=timedelta(seconds=dip.settings.signature_max_skew_seconds),
                                body_sha256=getattr(request.state, "body_sha256", None))
    except SignatureError as exc:
        raise Refusal(401, Code.PROCESSING_FAILED, f"401 Unauthorised: {exc}", principal.id) from exc
    owner = directory.certificate_owner(signer.fingerprint)
    if owner is None:
        raise Refusal(
            401, Code.PROCESSING_FAILED,
            f"401 Unauthorised: the signing certificate (SHA-256 {signer.fingerprint[:16]}...) is not "
            "registered with the DIP",
            principal.id,
        )
    if owner.id != principal.id and not directory.provider_roles(principal.id, owner.id):
        raise Refusal(
            401, Code.PROCESSING_FAILED,
            f"401 Unauthorised: the signing certificate belongs to '{owner.id}', which is neither the API "
            f"key's participant '{principal.id}' nor one of its connection providers",
            principal.id,
        )
    capture = capture_of(request.scope)
    if capture is not None and owner.id != principal.id:
        capture.signer = owner.id
    return Caller(principal, owner)


async def once(dip: Node, request: Request, caller: Caller) -> None:
    """A signed request that changes state is taken once (dip.accept.replay_guard): a 401 Refusal
    for a byte-identical copy of one taken before."""
    now = int(datetime.now(UTC).timestamp() * 1_000_000)
    if not await dip.replay_guard.first_time(request.headers.get(SIGNATURE, ""), now):
        raise Refusal(401, Code.PROCESSING_FAILED, "401 Unauthorised: this signed request was received already; "
                      "sign it again to repeat it", caller.principal.id)


def authenticate_for(dip: Node, request: Request, recipient_id: str, channel: Channel | None, body: bytes) -> Caller:
    """The caller, when it may act for ``recipient_id`` on ``channel`` (its webhooks, replay,
    requeue): the recipient itself, or a connection provider it appointed for a role that receives
    the channel (a role it holds, for the status-message webhook: ``channel`` None); else a Refusal."""
    caller = authenticate(dip, request, body)
    directory = dip.state.directory
    recipient = directory.active(recipient_id)
    if recipient is None:
        raise Refusal(404, Code.PROCESSING_FAILED, f"404 Not Found: no on-boarded participant '{recipient_id}'",
                      caller.principal.id)
    receiving = channel.receiving_roles() if channel is not None else recipient.roles
    named = channel is not None and recipient_id in channel.definition.routing.always.participants
    if channel is not None and not recipient.roles & receiving and not named:
        raise Refusal(403, Code.PROCESSING_FAILED,
                      f"403 Forbidden: '{recipient_id}' holds no role that receives {channel.publication_id}",
                      caller.principal.id)
    if recipient_id in (caller.principal.id, caller.physical.id):
        return caller
    if directory.provider_roles(recipient_id, caller.physical.id) & receiving:
        return caller
    raise Refusal(
        403, Code.PROCESSING_FAILED,
        f"403 Forbidden: '{caller.physical.id}' is neither '{recipient_id}' nor a connection provider it appointed "
        "for this channel",
        caller.principal.id,
    )
