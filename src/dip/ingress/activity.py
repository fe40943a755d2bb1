"""Every request into the API activity log (DIP FS 5.8.1; dip.audit), and counted in the
node's metrics (``dip_http_requests_total``): what was asked, by whom
(filled in by the checks that identify the caller), and what was answered, handed to the node's
log once the answer is sent. Probes (``/healthz``, ``/readyz``) are not logged: a load balancer
asks every few seconds, and they carry nothing of anyone's."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dip.audit.entries import Capture
from dip.ingress.paths import REQUEST_ID
from dip.node import Node

ACTIVITY = "dip.activity"  # scope key: this request's Capture
_NOT_LOGGED = frozenset({"/healthz", "/readyz"})


def capture_of(scope: Scope) -> Capture | None:
    found: Capture | None = scope.get(ACTIVITY)
    return found


class ActivityLogging:
    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self.node.activity
        if scope["type"] != "http" or scope["path"] in _NOT_LOGGED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        capture = Capture(scope.get(REQUEST_ID, ""), time.time_ns(), scope["method"], scope["path"],
                          (scope.get("query_string") or b"").decode("latin-1"), client[0] if client else None)
        started = time.perf_counter()

        async def capturing(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type":
                        capture.content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                capture.add_body(message.get("body", b""))
            await send(message)

        try:
            await self.app(dict(scope, **{ACTIVITY: capture}), receive, capturing)
        finally:
            capture.duration_ms = (time.perf_counter() - started) * 1000
            if not capture.status:
                capture.status = 500  # no answer was sent (the server answers 500 or drops it)
            self.node.metrics.http_requests.labels(capture.method, str(capture.status)).inc()
            if log is not None:
                log.record(capture)
