"""Calling a recipient's webhook once: sign, POST, and say what the answer means.

Everything a recipient can do wrong ends up as a CallResult, never an exception: hanging (the
timeout counts as a retryable failure), resetting the connection, answering garbage, answering
200 instead of 201, or a 207 naming transactions it was never sent. What to do next (retry,
relay rejections, give up) is decided from the result by dip.egress.outcomes' table.

Outside DEV the connection can only go to public addresses: the resolver drops every address
that dip.egress.url_safety does not accept, so a name re-pointed after registration (DNS rebinding)
still cannot reach internal services.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from dip.egress.outcomes import EGRESS, Outcome, classify, names_messages
from dip.egress.retry import parse_retry_after
from dip.egress.url_safety import is_public_address
from dip.signing import MPO, Signer, sign_headers

_ACCEPTED_PREFIXES = ("RCP0000", "MSG0000")


@dataclass(frozen=True)
class CallResult:
    status: int | None  # None: no HTTP answer (timeout, refused, reset)
    outcome: Outcome
    retry_after: float | None = None
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)  # transaction ID -> the recipient's item
    unknown: tuple[str, ...] = ()  # transaction IDs the recipient named that were not in the call
    error: str | None = None  # what went wrong, for the delivery record
    seconds: float = 0.0


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the system resolver, then keeps only public addresses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if is_public_address(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _items(body: bytes) -> list[dict[str, Any]] | None:
    """The StandardResponse items of an answer, or None when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    items = data.get("messageArray") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return None
    return [i for i in items if isinstance(i, dict)]


def interpret(status: int | None, body: bytes, headers: dict[str, str], sent: set[str], now: float,
              error: str | None = None, seconds: float = 0.0) -> CallResult:
    """The meaning of one answer to a call that carried the transactions ``sent`` (pure)."""
    outcome = classify(status)
    retry_after = parse_retry_after(headers.get("retry-after"), now) if EGRESS[outcome].retry else None
    rejected: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    if names_messages(outcome):
        items = _items(body)
        if items is None and outcome is Outcome.PARTIAL:
            error = "207 with a body that is not a StandardResponse: nothing known to be rejected"
        for entry in items or []:
            tid = entry.get("transactionID")
            message = entry.get("message")
            if not isinstance(tid, str):
                continue
            if tid not in sent:
                unknown.append(tid)
            elif not (isinstance(message, str) and message.startswith(_ACCEPTED_PREFIXES)):
                rejected[tid] = entry
        if outcome is Outcome.REJECTED and not rejected:
            # a 400 that names no message: the whole call was refused
            rejected = {tid: {} for tid in sent}
    elif status is not None and status not in (201, 207) and 200 <= status < 300:
        error = f"answered {status}; participants should answer 201 or 207"
    return CallResult(status, outcome, retry_after, rejected, tuple(unknown), error, seconds)


PER_HOST = 16  # concurrent calls to one host


class WebhookSender:
    """Signs and posts egress bodies with one shared aiohttp session."""

    def __init__(self, signer: Signer, timeout: float, public_only: bool,
                 tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._signer = signer  # read at each call: a key rotation takes effect at once
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._public_only = public_only
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # no shared cap on connections (a hanging host would hold the slots others need), a cap
            # per host instead: one recipient's queues share PER_HOST connections (dip.egress.worker)
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=PER_HOST, resolver=PublicOnlyResolver() if self._public_only else None,
                ttl_dns_cache=60, ssl=self._tls if self._tls is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, transactions: set[str], mpo: str | None = None) -> CallResult:
        if self._public_only:
            host = urlsplit(url).hostname or ""
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                literal = None  # a name: the resolver filters its addresses
            if literal is not None and not is_public_address(str(literal)):
                return CallResult(None, Outcome.FAILED, error=f"{host} is not a public address")
        headers = sign_headers(self._signer.key, self._signer.cert_pem, "POST", url, body)
        headers["Content-Type"] = "application/json"
        if mpo:
            headers[MPO] = mpo
        started = time.monotonic()
        http = await self._http()
        try:
            async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
                answer = await response.read()
                return interpret(response.status, answer, {k.lower(): v for k, v in response.headers.items()},
                                 transactions, time.time(), seconds=time.monotonic() - started)
        except TimeoutError:
            return CallResult(None, Outcome.RETRY, error=f"no answer within {self._timeout.total} s",
                              seconds=time.monotonic() - started)
        except (aiohttp.ClientError, OSError) as exc:
            return CallResult(None, Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:500],
                              seconds=time.monotonic() - started)
