"""Test seams shipped with the package: run a real DIP server in-process, on-board participants.

    with RunningDip(settings) as dip:
        admin = AdminClient(dip.url, dip.admin_key)
        sds = admin.onboard("1300000001", ["SDS"])
        with DipClient(dip.url, sds) as client:
            client.send("IF-021", [...])
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
import ssl
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import certifi
import httpx
import uvicorn

from dip.config import Settings
from dip.ingress.app import create_app
from dip.ingress.server import server_config
from dip.node import Node
from dip.signing import generate_identity
from dip.store.encryption import new_kek_file
from dip.tools.client import Identity

ADMIN_KEY = "test-admin-key"


def free_port() -> int:
    """A port free now, for a server in another process. Another process may take it before that
    server binds: a server in this process should listen on ``listening_socket()`` instead."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_socket(port: int = 0) -> socket.socket:
    """A socket bound on 127.0.0.1 (a free port unless ``port``), handed to the server that will
    listen on it: no other test can take the port between choosing it and binding it."""
    # IPPROTO_TCP said, not 0: asyncio sets TCP_NODELAY only on connections accepted from a socket
    # that says it is TCP (with proto 0 every small answer waited 40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


class _PromptServer(uvicorn.Server):
    """uvicorn's server, leaving its main loop as soon as ``stop`` is called (uvicorn itself looks
    at ``should_exit`` every 0.1 s: a test suite starting a thousand DIPs waits minutes for it)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def main_loop(self) -> None:
        stopping = asyncio.Event()
        self._running = (asyncio.get_running_loop(), stopping)
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stopping.wait()

    def stop(self) -> None:
        """From any thread."""
        self.should_exit = True
        if self._running is not None:
            loop, stopping = self._running
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)


class RunningDip:
    """A real DIP (uvicorn, real sockets, real store) in a background thread."""

    def __init__(self, settings: Settings, admin_key: str = ADMIN_KEY, start_timeout: float = 30,
                 port: int | None = None, overrides: dict[str, Any] | None = None) -> None:
        """``overrides``: settings to change, applied once the port is known (a public base URL is
        then set to the server's own URL outside DEV, unless given)."""
        self._socket = listening_socket(port or 0)
        port = int(self._socket.getsockname()[1])
        overrides = dict(overrides or {})
        tls = overrides.get("tls_cert", settings.tls_cert)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        if overrides.get("environment", settings.environment) != "DEV" and not (
                overrides.get("public_base_url") or settings.public_base_url):
            overrides["public_base_url"] = self.url  # required outside DEV: the URL it listens on
        if overrides.get("environment", settings.environment) != "DEV" and not (
                overrides.get("kek_file") or settings.kek_file):
            kek = Path(overrides.get("data_dir", settings.data_dir)) / "kek"  # required outside DEV too
            if not kek.exists():
                new_kek_file(kek)
            overrides["kek_file"] = kek
        self.settings = replace(settings, host="127.0.0.1", port=port, admin_api_key=admin_key, **overrides)
        self.admin_key = admin_key
        self.node = Node(self.settings)
        self._server = _PromptServer(server_config(create_app(self.settings, self.node), self.settings,
                                                   log_level="warning", loop="asyncio", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"dip-{port}", daemon=True)
        self._timeout = start_timeout

    def __enter__(self) -> RunningDip:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError("the DIP server failed to start")
            time.sleep(0.02)
        raise TimeoutError("the DIP server did not start in time")

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
        self._thread.join(timeout=30)
        self._socket.close()
        if self._thread.is_alive():  # say where it is stuck: a DIP that will not stop is a bug
            frame = sys._current_frames().get(self._thread.ident or -1)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"
            loop = self.node.loop
            for task in list(asyncio.all_tasks(loop)) if loop is not None else []:
                where += f"\n{task!r}:\n" + "".join(traceback.format_stack(task.get_stack()[-1]))
            warnings.warn(f"the DIP on {self.url} did not stop within 30 s; its thread is at:\n{where}",
                          ResourceWarning, stacklevel=2)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every AdminClient, as httpx builds by default (certifi's CA bundle):
    building one per client takes 50-90 ms."""
    return ssl.create_default_context(cafile=certifi.where())


class AdminClient:
    """The operator API, for tests and scripts."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"X-API-Key": admin_key}, timeout=60, verify=_tls())

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put_participant(self, participant_id: str, roles: list[str], name: str | None = None) -> httpx.Response:
        return self.http.put(f"/admin/participants/{participant_id}",
                             json={"name": name or f"Participant {participant_id}", "roles": roles})

    def onboard(self, participant_id: str, roles: list[str], role: str | None = None,
                environment: str = "DEV", name: str | None = None) -> Identity:
        """On-board a participant with a new API key and signing certificate; return its identity."""
        self.put_participant(participant_id, roles, name).raise_for_status()
        key_pem, cert_pem = generate_identity(participant_id)
        self.http.post(f"/admin/participants/{participant_id}/certificates",
                       json={"certificatePem": cert_pem.decode()}).raise_for_status()
        api_key = self.http.post(f"/admin/participants/{participant_id}/api-keys").json()["apiKey"]
        return Identity(participant_id, role or roles[0], api_key, key_pem, cert_pem, self.url, environment)

    def load_registry(self, appointments: list[dict[str, Any]]) -> httpx.Response:
        """POST /admin/mpan-registry: rows like dip.tools.samples.sample_appointments makes."""
        return self.http.post("/admin/mpan-registry", json={"appointments": appointments})

    def put_channel(self, interface_id: str, definition: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"/admin/channels/{interface_id}", json=definition)

    def get_channel(self, interface_id: str) -> dict[str, Any]:
        response = self.http.get(f"/admin/channels/{interface_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


class WebhookReceiver:
    """A real HTTP server that records what the DIP pushes to it and answers as scripted.

        with WebhookReceiver() as hook:
            hook.respond(503, times=2)            # the next two calls get 503, then the default 201
            ... register hook.url, send messages ...
            calls = hook.wait_for(lambda calls: len(calls) >= 3, timeout=10)

    Each recorded call keeps the method, path, headers and body (decoded JSON when it parses).
    Answers: a status code (201 by default, with a StandardResponse accepting every message),
    an optional body and headers, a delay (to provoke timeouts) or ``"reset"`` to drop the
    connection without an answer.
    """

    def __init__(self, default_status: int = 201, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: serve HTTPS with this server context (which may ask for client certificates)."""
        import asyncio as _asyncio

        self._asyncio = _asyncio
        self._tls = tls
        self._transports: set[Any] = set()  # connections seen: closed at once when the receiver stops
        self._socket = listening_socket()
        self.port = int(self._socket.getsockname()[1])
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hook"
        self.calls: list[RecordedCall] = []
        self._script: list[Answer] = []
        self._default = Answer(default_status)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: Any = None
        self._thread = threading.Thread(target=self._serve, name=f"webhook-{self.port}", daemon=True)
        self._ready = threading.Event()
        self._stop: Any = None

    # -- scripting ---------------------------------------------------------------------------

    def respond(self, status: int, times: int = 1, body: Any = None, headers: dict[str, str] | None = None,
                delay: float = 0.0, reset: bool = False) -> None:
        """Answer the next ``times`` calls like this (after any answers already scripted)."""
        with self._lock:
            self._script.extend(Answer(status, body, headers or {}, delay, reset) for _ in range(times))

    def always(self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0,
               reset: bool = False) -> None:
        """Answer every call not otherwise scripted like this."""
        with self._lock:
            self._default = Answer(status, body, headers or {}, delay, reset)

    def wait_for(self, condition: Any, timeout: float = 10.0) -> list[RecordedCall]:
        """Block until ``condition(calls)`` holds (polling on every new call) or fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(list(self.calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s; {len(self.calls)} call(s) recorded")
                self._changed.wait(left)
            return list(self.calls)

    # -- server ------------------------------------------------------------------------------

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    async def _handle(self, request: Any) -> Any:
        import orjson
        from aiohttp import web

        body = await request.read()
        try:
            decoded = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            decoded = None
        if request.transport is not None:
            self._transports.add(request.transport)
        tls = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        call = RecordedCall(request.method, request.path, dict(request.headers), body, decoded, time.monotonic(),
                            hashlib.sha256(der).hexdigest() if der else None)
        answer = self._next_answer()
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if answer.delay:
            await self._asyncio.sleep(answer.delay)
        if answer.reset:
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise web.HTTPInternalServerError  # never reaches the client: the connection is gone
        payload = answer.body
        if payload is None and answer.status in (201, 207) and isinstance(decoded, list):
            payload = _accept_all(decoded)
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload) if payload is not None else b""
        return web.Response(status=answer.status, body=data, headers=answer.headers,
                            content_type="application/json" if data else None)

    def _serve(self) -> None:
        from aiohttp import web

        loop = self._asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.SockSite(runner, self._socket, ssl_context=self._tls)
        loop.run_until_complete(site.start())
        self._stop = loop.create_future()
        self._ready.set()
        loop.run_until_complete(self._stop)
        for transport in self._transports:  # a TLS connection closed politely outlives the loop
            transport.abort()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("webhook receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float  # time.monotonic() when it arrived
    client_cert: str | None = None  # SHA-256 (hex) of the caller's TLS client certificate, over HTTPS


def _accept_all(messages: list[Any]) -> dict[str, Any]:
    """A StandardResponse accepting every message of a DIPMessageEgressArray."""
    from dip import ids
    from dip.codes import Code
    from dip.responses import item as response_item

    stamp = ids.timestamp(ids.utc_now())
    items = []
    for entry in messages:
        payload = entry.get("payload", {}) if isinstance(entry, dict) else {}
        d0 = payload.get("CommonBlock", {}).get("D0", {}) if isinstance(payload, dict) else {}
        s1 = payload.get("CommonBlock", {}).get("S1", {}) if isinstance(payload, dict) else {}
        items.append(response_item(code=Code.SUCCESS, sent_timestamp=stamp, sender_id="0000000000",
                                   recipient_id=s1.get("senderDIPID"), transaction_id=d0.get("transactionID")))
    import msgspec

    listed = items or [response_item(code=Code.SUCCESS, sent_timestamp=stamp, sender_id="0000000000",
                                     recipient_id=None)]
    return {"messageArray": msgspec.to_builtins(listed), "timestamp": stamp}
