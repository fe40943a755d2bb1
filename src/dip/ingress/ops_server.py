"""The metrics port (``--metrics-port``; API contract section 6): ``/metrics``, ``/healthz`` and
``/readyz`` on a small HTTP server of their own, for a delivery-only node (``--no-api``), which has
no API port to answer them on, or for an API node whose operators keep metrics off the API port.
The same rules as the API port's routes (dip.ingress.metrics, dip.ingress.probes)."""

from __future__ import annotations

import socket

import orjson
from aiohttp import web

from dip.ingress.metrics import may_read
from dip.metrics import CONTENT_TYPE
from dip.node import Node

JSON = "application/json"


class OpsServer:
    def __init__(self, dip: Node, host: str, port: int) -> None:
        self._dip = dip
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self.port = int(sock.getsockname()[1])  # the one given, or the one the system chose for 0
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        if not may_read(self._dip, request.remote, request.headers.get("x-api-key")):
            return web.Response(status=403, body=orjson.dumps({"detail": "metrics are for --metrics-allow addresses "
                                                                        "or an operator's key"}), content_type=JSON)
        return web.Response(body=self._dip.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "ok", "environment": self._dip.settings.environment}),
                            content_type=JSON)

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = await self._dip.readiness()
        return web.Response(status=503 if problems else 200, content_type=JSON, body=orjson.dumps(
            {"status": "ready" if not problems else "not ready", "problems": problems}))
