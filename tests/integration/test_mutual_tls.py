"""Mutual TLS on the participant API (issue 17; API contract section 5): real handshakes, with
certificates issued in the test by a test CA, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dip.signing import fingerprint, generate_identity, load_certificate_pem
from dip.tools.client import DipClient, Identity
from dip.tools.testing import RunningDip
from tests.helpers import MDS, SUP, items
from tests.tls import TestCA, client_context

HOOK = "http://127.0.0.1:9/status"


@dataclass
class World:
    dip: RunningDip
    folder: Path
    server_ca: Path
    client_ca: TestCA

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.dip.url, verify=ssl.create_default_context(cafile=str(self.server_ca)),
                            headers={"X-API-Key": self.dip.admin_key}, timeout=30)

    def onboard(self, participant_id: str, role: str) -> Identity:
        key_pem, cert_pem = self.client_ca.issue(participant_id)
        with self.admin() as admin:
            assert admin.put(f"/admin/participants/{participant_id}",
                             json={"name": participant_id, "roles": [role]}).status_code == 201
            assert admin.post(f"/admin/participants/{participant_id}/certificates",
                              json={"certificatePem": cert_pem.decode()}).status_code == 201
            api_key = admin.post(f"/admin/participants/{participant_id}/api-keys").json()["apiKey"]
        return Identity(participant_id, role, api_key, key_pem, cert_pem, self.dip.url)

    def client(self, who: Identity, presenting: Identity | None) -> DipClient:
        """``who``'s requests, over a connection presenting ``presenting``'s certificate (or none)."""
        context = client_context(self.server_ca, presenting.cert_pem if presenting else None,
                                 presenting.key_pem if presenting else None, self.folder)
        return DipClient(self.dip.url, who, ssl_context=context)


@pytest.fixture
def world(dip_factory: Callable[..., RunningDip], tmp_path: Path) -> World:
    server_ca, client_ca = TestCA.make("Test server CA"), TestCA.make("Test DIP client CA")
    key, cert = server_ca.issue("127.0.0.1", server=True)
    for name, data in {"server.key": key, "server.pem": cert, "server-ca.pem": server_ca.pem,
                       "client-ca.pem": client_ca.pem}.items():
        (tmp_path / name).write_bytes(data)
    dip = dip_factory(tls_cert=tmp_path / "server.pem", tls_key=tmp_path / "server.key",
                      tls_client_ca=tmp_path / "client-ca.pem")
    assert dip.url.startswith("https://")
    return World(dip, tmp_path, tmp_path / "server-ca.pem", client_ca)


def test_a_participant_with_its_own_client_certificate_gets_through(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    with world.client(mds, presenting=mds) as client:
        assert client.register_webhook(None, HOOK).status_code == 201


def test_no_client_certificate_is_refused_on_participant_routes_but_probes_answer(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    with world.client(mds, presenting=None) as client:
        answer = client.register_webhook(None, HOOK)
    assert answer.status_code == 401 and "client certificate" in items(answer)[0]["help"]
    context = ssl.create_default_context(cafile=str(world.server_ca))
    assert httpx.get(world.dip.url + "/healthz", verify=context).status_code == 200
    assert httpx.get(world.dip.url + "/dip/certificate", verify=context).status_code == 200


def test_another_participants_certificate_is_refused(world: World) -> None:
    mds, sup = world.onboard(MDS, "MDS"), world.onboard(SUP, "SUP")
    with world.client(mds, presenting=sup) as client:
        answer = client.register_webhook(None, HOOK)
    assert answer.status_code == 403 and f"belongs to '{SUP}'" in items(answer)[0]["help"]


def test_a_certificate_from_another_ca_fails_the_handshake(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    key_pem, cert_pem = generate_identity(MDS)  # self-signed: not issued by the client CA
    stranger = Identity(MDS, "MDS", mds.api_key, key_pem, cert_pem, world.dip.url)
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)), \
            world.client(mds, presenting=stranger) as client:
        client.register_webhook(None, HOOK)


def test_an_expired_client_certificate_fails_the_handshake(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    key_pem, cert_pem = world.client_ca.issue(MDS, expired=True)  # the right CA, a month too old
    stale = Identity(MDS, "MDS", mds.api_key, key_pem, cert_pem, world.dip.url)
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)), \
            world.client(mds, presenting=stale) as client:
        client.register_webhook(None, HOOK)


def test_a_revoked_client_certificate_is_refused(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    with world.admin() as admin:
        sha256 = fingerprint(load_certificate_pem(mds.cert_pem))
        assert admin.delete(f"/admin/participants/{MDS}/certificates/{sha256}").status_code == 204
    with world.client(mds, presenting=mds) as client:
        answer = client.register_webhook(None, HOOK)
    assert answer.status_code == 403 and "revoked" in items(answer)[0]["help"]
