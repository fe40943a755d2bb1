"""Test seams shipped with the package: run a real DIP server in-process, on-board participants.

    with RunningDip(settings) as dip:
        admin = AdminClient(dip.url, dip.admin_key)
        sds = admin.onboard("1300000001", ["SDS"])
        with DipClient(dip.url, sds) as client:
            client.send("IF-021", [...])
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import uvicorn

from dip.api import create_app
from dip.client import Identity
from dip.config import Settings
from dip.service import DipService
from dip.signing import generate_identity

ADMIN_KEY = "test-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningDip:
    """A real DIP (uvicorn, real sockets, real store) in a background thread."""

    def __init__(self, settings: Settings, admin_key: str = ADMIN_KEY, start_timeout: float = 30,
                 port: int | None = None) -> None:
        port = port or free_port()
        self.settings = replace(settings, host="127.0.0.1", port=port, admin_api_key=admin_key)
        self.admin_key = admin_key
        self.url = f"http://127.0.0.1:{port}"
        self.service = DipService(self.settings)
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(self.settings, self.service), host="127.0.0.1", port=port, log_level="warning",
            loop="asyncio", http="h11", lifespan="on",
        ))
        self._thread = threading.Thread(target=self._server.run, name=f"dip-{port}", daemon=True)
        self._timeout = start_timeout

    def __enter__(self) -> RunningDip:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("the DIP server failed to start")
            time.sleep(0.02)
        raise TimeoutError("the DIP server did not start in time")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


class AdminClient:
    """The operator API, for tests and scripts."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"X-API-Key": admin_key}, timeout=60)

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
                environment: str = "DEV") -> Identity:
        """On-board a participant with a new API key and signing certificate; return its identity."""
        self.put_participant(participant_id, roles).raise_for_status()
        key_pem, cert_pem = generate_identity(participant_id)
        self.http.post(f"/admin/participants/{participant_id}/certificates",
                       json={"certificatePem": cert_pem.decode()}).raise_for_status()
        api_key = self.http.post(f"/admin/participants/{participant_id}/api-keys").json()["apiKey"]
        return Identity(participant_id, role or roles[0], api_key, key_pem, cert_pem, self.url, environment)

    def put_channel(self, interface_id: str, definition: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"/admin/channels/{interface_id}", json=definition)

    def get_channel(self, interface_id: str) -> dict[str, Any]:
        response = self.http.get(f"/admin/channels/{interface_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
