"""The HTTP server: uvicorn (httptools), with the limits it leaves to its user.

uvicorn bounds neither the size nor the count of a request's headers (httptools buffers a header
value of any length), and times out only idle keep-alive connections: a connection that never
sends a byte, sends its headers a byte at a time (slowloris) or its body a byte a minute is held
for ever, and enough of them exhaust the process's file descriptors, so that health checks,
sends and the DIP's own database and webhook connections fail (docs/security.md, "Connections").
``GuardedHttp`` adds, per connection:

- a connection cap: past ``max_connections`` open connections a new one is closed at once,
  leaving descriptors for the database and webhook calls;
- an idle timeout: a new connection must start its request within ``idle_seconds`` (uvicorn's
  keep-alive timeout, the same figure, covers the time between requests);
- a header-read timeout and limits: the request line and headers within ``header_seconds`` of
  their first byte, at most ``max_header_bytes`` and ``max_headers`` of them (431 otherwise);
- a body-read rate: once ``body_grace_seconds`` have passed, the body must have come at
  ``min_body_rate`` bytes a second on average since the headers (408 otherwise), so a
  slow-body client is cut off while a large batch on a slow line is not.

A request that breaks a limit before its route answered gets the status alone, with
``Connection: close``; one the route has already answered is just closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dip.config import Settings

_RESERVED_DESCRIPTORS = 512  # kept for the database pool, webhook calls, files and logs


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 10_000
    idle_seconds: float = 5.0
    header_seconds: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    body_grace_seconds: float = 10.0
    min_body_rate: float = 64 * 1024  # bytes a second, averaged since the headers

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(max_connections=connection_cap(settings.max_connections), idle_seconds=settings.idle_timeout_seconds,
                   header_seconds=settings.header_timeout_seconds, max_header_bytes=settings.max_header_bytes,
                   max_headers=settings.max_headers, body_grace_seconds=settings.body_grace_seconds,
                   min_body_rate=settings.min_body_rate)


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to what the descriptor limit allows once the soft limit is raised to the
    hard one (a process may do that itself), less a reserve for the DIP's own connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(16, min(wanted, soft - _RESERVED_DESCRIPTORS))


_IDLE, _HEAD, _BODY, _APP, _REFUSED = range(5)
CLIENT_CERT = "dip.client_cert"  # scope key: the SHA-256 (hex) of the verified TLS client certificate, or None
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 400: b"Bad Request"}


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (``limits`` is set by ``guarded``)."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes received while the head was incomplete
        self._parsed_head = 0  # the request line and headers as parsed
        self._header_count = 0
        self._body_started = 0.0
        self._body_bytes = 0
        self._client_cert: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.abort()
            return
        # over TLS the handshake is done by now: the client certificate, if any, was verified
        tls = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        self._client_cert = hashlib.sha256(der).hexdigest() if der else None
        self._arm(self.limits.idle_seconds)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CLIENT_CERT] = self._client_cert  # type: ignore[literal-required]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _IDLE:
            self._phase, self._head_bytes, self._parsed_head, self._header_count = _HEAD, 0, 0, 0
            self._arm(self.limits.header_seconds)
        heading = self._phase == _HEAD
        if heading:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        # httptools holds an unfinished header in memory: one chunk past the limit at most
        if self._phase == _REFUSED or (
                heading and self._phase == _HEAD and self._head_bytes > self.limits.max_header_bytes):
            self._refuse(431)

    def on_url(self, url: bytes) -> None:
        self._parsed_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_head += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers or self._parsed_head > self.limits.max_header_bytes:
            self._phase = _REFUSED  # no route sees the request; data_received answers once the chunk is parsed
        if self._phase != _REFUSED:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._phase == _REFUSED:
            return
        super().on_headers_complete()
        if self._phase != _HEAD:
            return
        if self._expects_body():
            self._phase, self._body_started, self._body_bytes = _BODY, time.monotonic(), 0
            self._arm(self.limits.body_grace_seconds)
        else:
            self._phase = _APP
            self._disarm()

    def on_body(self, body: bytes) -> None:
        if self._phase == _REFUSED:
            return
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._phase == _REFUSED:
            return
        super().on_message_complete()
        self._phase = _APP
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase == _APP:
            self._phase = _IDLE  # uvicorn's keep-alive timeout takes over until the next request

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._check)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == _BODY:
            elapsed = time.monotonic() - self._body_started
            owed = self.limits.min_body_rate * (elapsed - self.limits.body_grace_seconds)
            if self._body_bytes >= owed:  # on pace: look again when it would next fall behind
                due = self.limits.body_grace_seconds + self._body_bytes / self.limits.min_body_rate
                self._arm(max(due - elapsed, 0.5))
                return
        if self._phase == _IDLE:
            self.transport.close()  # nothing was asked: nothing to answer
            return
        self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` (unless the route already answered) and close the connection."""
        self._disarm()
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True  # the route, if it is still reading, sees the client gone
            cycle.message_event.set()
        if cycle is None or not cycle.response_started:
            reason = _REASONS[status]
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\nx-request-id: %s\r\n\r\n"
                                 % (status, reason, uuid.uuid4().hex.encode()))
        self.transport.close()


def guarded(limits: ServerLimits) -> type[GuardedHttp]:
    """The protocol class for a server with these limits (uvicorn makes one instance a connection)."""
    return type("GuardedHttp", (GuardedHttp,), {"limits": limits})


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """How every DIP serves HTTP (``dip serve`` and the test harness alike). With a client CA,
    a client certificate is asked for and, when one is presented, must chain to that CA (else
    the handshake fails); the routes that need one say so (``dip.ingress.auth``), so probes and
    the public certificate stay reachable without."""
    limits = ServerLimits.from_settings(settings)
    if settings.tls_cert is not None:
        options.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
        if settings.tls_client_ca is not None:
            options.update(ssl_ca_certs=str(settings.tls_client_ca), ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return uvicorn.Config(app, host=settings.host, port=settings.port, http=guarded(limits),  # type: ignore[arg-type]
                          timeout_keep_alive=max(1, round(limits.idle_seconds)), **options)
