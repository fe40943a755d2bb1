"""The certificate service (issue 17 item 2): the DIP as the test environments' CA issues
participants' certificates from CSRs, which then serve mutual TLS (real handshakes, the DIP's CA
as the client CA) and request signatures; list, revoke, rotate with an overlap; never in
production, never another environment's CA; the DIP's own signing key from files, rotated with
an overlap in which GET /dip/certificate serves both. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dip.config import Settings
from dip.exceptions import ConfigurationError
from dip.node import Node
from dip.signing import fingerprint, generate_identity, load_certificate_pem
from dip.tools import cli
from dip.tools.client import DipClient, Identity
from dip.tools.testing import RunningDip
from tests.helpers import MDS, items
from tests.tls import TestCA, client_context

HOOK = "http://127.0.0.1:9/status"


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, name: str = "whatever I like") -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _make_ca(folder: Path, environment: str = "DEV") -> Path:
    assert cli.main(["ca", "init", "--environment", environment, "--out", str(folder)]) == 0
    return folder


@dataclass
class World:
    dip: RunningDip
    folder: Path
    server_ca: Path

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.dip.url, verify=ssl.create_default_context(cafile=str(self.server_ca)),
                            headers={"X-API-Key": self.dip.admin_key}, timeout=30)

    def issue(self, participant_id: str, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
        with self.admin() as admin:
            answer = admin.post(f"/admin/participants/{participant_id}/certificates/issue",
                                json={"csrPem": _csr(key), "days": 30})
        assert answer.status_code == 201, answer.text
        issued: dict[str, str] = answer.json()
        return issued

    def onboard(self, participant_id: str, role: str) -> Identity:
        """On-boarded with an API key and a certificate the DIP issued from the participant's CSR."""
        key = ec.generate_private_key(ec.SECP256R1())
        with self.admin() as admin:
            assert admin.put(f"/admin/participants/{participant_id}",
                             json={"name": participant_id, "roles": [role]}).status_code == 201
            api_key = admin.post(f"/admin/participants/{participant_id}/api-keys").json()["apiKey"]
        issued = self.issue(participant_id, key)
        return Identity(participant_id, role, api_key, _key_pem(key), issued["certificatePem"].encode(), self.dip.url)

    def client(self, who: Identity) -> DipClient:
        context = client_context(self.server_ca, who.cert_pem, who.key_pem, self.folder)
        return DipClient(self.dip.url, who, ssl_context=context)


@pytest.fixture
def world(dip_factory: Callable[..., RunningDip], tmp_path: Path) -> World:
    server_ca = TestCA.make("Test server CA")
    key, cert = server_ca.issue("127.0.0.1", server=True)
    for name, data in {"server.key": key, "server.pem": cert, "server-ca.pem": server_ca.pem}.items():
        (tmp_path / name).write_bytes(data)
    ca = _make_ca(tmp_path / "ca")
    dip = dip_factory(tls_cert=tmp_path / "server.pem", tls_key=tmp_path / "server.key",
                      tls_client_ca=ca / "ca.pem", ca_cert=ca / "ca.pem", ca_key=ca / "ca.key")
    return World(dip, tmp_path, tmp_path / "server-ca.pem")


def test_a_certificate_issued_from_a_csr_serves_mutual_tls_and_signatures(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    cert = load_certificate_pem(mds.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == MDS  # named by the DIP, not the CSR
    assert cert.issuer.rfc4514_string() == "CN=DIP DEV participant CA"
    with world.client(mds) as client:
        assert client.register_webhook(None, HOOK).status_code == 201
    with world.admin() as admin:
        listed = admin.get(f"/admin/participants/{MDS}/certificates").json()
        assert admin.get("/admin/ca").text.startswith("-----BEGIN CERTIFICATE-----")
    assert [(c["fingerprint"], c["issuedByDip"], c["revokedAt"]) for c in listed] == [
        (fingerprint(cert), True, None)]


def test_bad_requests_for_certificates_are_refused(world: World) -> None:
    world.onboard(MDS, "MDS")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    other = ec.generate_private_key(ec.SECP256R1())
    der = x509.load_pem_x509_csr(_csr(other).encode()).public_bytes(serialization.Encoding.DER)
    tampered = x509.load_der_x509_csr(der.replace(b"whatever I like", b"whatever I love")).public_bytes(
        serialization.Encoding.PEM).decode()  # the signed subject changed: the signature no longer verifies
    with world.admin() as admin:
        for body, why in (({"csrPem": "hello"}, "not a PEM"), ({"csrPem": _csr(weak)}, "2048"),
                          ({"csrPem": tampered}, "not signed by the key")):
            answer = admin.post(f"/admin/participants/{MDS}/certificates/issue", json=body)
            assert answer.status_code in (400, 422) and why in answer.text, answer.text
        nobody = admin.post("/admin/participants/1999999999/certificates/issue", json={"csrPem": _csr(other)})
        assert nobody.status_code == 404


def test_revoking_an_issued_certificate_ends_its_handshakes_use(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    fp = fingerprint(load_certificate_pem(mds.cert_pem))
    with world.admin() as admin:
        assert admin.delete(f"/admin/participants/{MDS}/certificates/{fp}").status_code == 204
    with world.client(mds) as client:
        answer = client.register_webhook(None, HOOK)
    assert answer.status_code == 403 and "revoked" in items(answer)[0]["help"]


def test_rotation_with_an_overlap_then_without(world: World) -> None:
    mds = world.onboard(MDS, "MDS")
    old = fingerprint(load_certificate_pem(mds.cert_pem))
    key = ec.generate_private_key(ec.SECP256R1())
    with world.admin() as admin:
        rotated = admin.post(f"/admin/participants/{MDS}/certificates/{old}/rotate",
                             json={"csrPem": _csr(key), "overlapDays": 7})
    assert rotated.status_code == 201, rotated.text
    new = Identity(MDS, "MDS", mds.api_key, _key_pem(key), rotated.json()["certificatePem"].encode(), mds.url)
    with world.client(new) as client, world.client(mds) as before:  # both work during the overlap
        assert client.register_webhook(None, HOOK).status_code == 201
        assert before.register_webhook(None, HOOK).status_code == 200  # (200: the same registration again)
    with world.admin() as admin:
        states = {c["fingerprint"]: c for c in admin.get(f"/admin/participants/{MDS}/certificates").json()}
        assert states[old]["retiresAt"] is not None and states[rotated.json()["fingerprint"]]["retiresAt"] is None
        # rotating again with no overlap: the replaced certificate stops at once
        key2 = ec.generate_private_key(ec.SECP256R1())
        again = admin.post(f"/admin/participants/{MDS}/certificates/{rotated.json()['fingerprint']}/rotate",
                           json={"csrPem": _csr(key2), "overlapDays": 0})
        assert again.status_code == 201
        gone = admin.post(f"/admin/participants/{MDS}/certificates/{rotated.json()['fingerprint']}/rotate",
                          json={"csrPem": _csr(key2)})
        assert gone.status_code == 404  # no longer in force
    with world.client(new) as client:
        answer = client.register_webhook(None, HOOK)
    assert answer.status_code == 403


def test_no_ca_in_production_nor_another_environments(tmp_path: Path) -> None:
    dev = _make_ca(tmp_path / "dev")
    with pytest.raises(ConfigurationError, match="production"):
        Settings(environment="PRD", public_base_url="https://dip.example", ca_cert=dev / "ca.pem",
                 ca_key=dev / "ca.key")
    assert cli.main(["ca", "init", "--environment", "PRD", "--out", str(tmp_path / "prd")]) == 2
    from dip.admin.certificate_authority import CertificateAuthority

    sit = _make_ca(tmp_path / "sit", "SIT")
    with pytest.raises(ConfigurationError, match="each environment has a CA of its own"):
        CertificateAuthority.from_files(sit / "ca.pem", sit / "ca.key", "UAT")


def test_the_dips_signing_key_from_files_and_its_rotation_overlap(dip_factory: Callable[..., RunningDip],
                                                                  tmp_path: Path) -> None:
    old_key, old_cert = generate_identity("DIP DEV old")
    new_key, new_cert = generate_identity("DIP DEV new")
    for name, data in {"old.key": old_key, "old.pem": old_cert, "new.key": new_key, "new.pem": new_cert}.items():
        (tmp_path / name).write_bytes(data)
    dip = dip_factory(signing_key=tmp_path / "new.key", signing_cert=tmp_path / "new.pem",
                      previous_signing_certs=(tmp_path / "old.pem",))
    published = httpx.get(dip.url + "/dip/certificate").content
    assert published.startswith(new_cert) and old_cert in published  # both, the current first
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": dip.admin_key}) as admin:
        deadline = time.monotonic() + 10
        while not admin.get("/admin/audit").json()["entries"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    dip.__exit__(None, None, None)
    # the activity log's checkpoints were signed with the key from the file, and verify finds its
    # certificate recorded in the database (or pinned)
    args = ["audit", "verify", "--data-dir", str(dip.settings.data_dir),
            *(["--database-url", dip.settings.database_url] if dip.settings.database_url else [])]
    assert cli.main(args) == 0
    assert cli.main([*args, "--certificate", str(tmp_path / "new.pem")]) == 0
    assert cli.main([*args, "--certificate", str(tmp_path / "old.pem")]) == 1  # not the key that signed
    mismatched = Node(Settings(data_dir=tmp_path / "x", signing_key=tmp_path / "old.key",
                               signing_cert=tmp_path / "new.pem"))
    with pytest.raises(ConfigurationError, match="not the certificate of"):  # a key and another key's certificate
        asyncio.run(mismatched._load_identity())


def test_the_credentials_cli(dip_factory: Callable[..., RunningDip], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    ca = _make_ca(tmp_path / "ca")
    dip = dip_factory(ca_cert=ca / "ca.pem", ca_key=ca / "ca.key")
    common = ["--url", dip.url, "--admin-key", dip.admin_key]
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": dip.admin_key}) as admin:
        assert admin.put(f"/admin/participants/{MDS}", json={"name": "M", "roles": ["MDS"]}).status_code == 201
    capsys.readouterr()
    assert cli.main(["api-key", "new", MDS, *common]) == 0
    key_id = orjson.loads(capsys.readouterr().out)["keyId"]
    assert cli.main(["api-key", "revoke", MDS, key_id, *common]) == 0
    assert cli.main(["api-key", "revoke", MDS, key_id, *common]) == 1  # not in force any more
    capsys.readouterr()
    assert cli.main(["api-key", "list", MDS, *common]) == 0
    assert orjson.loads(capsys.readouterr().out)[0]["revokedAt"] is not None
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "mds.csr").write_text(_csr(key))
    assert cli.main(["certificate", "issue", MDS, "--csr", str(tmp_path / "mds.csr"), *common]) == 0
    fp = orjson.loads(capsys.readouterr().out)["fingerprint"]
    key2 = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "mds2.csr").write_text(_csr(key2))
    assert cli.main(["certificate", "rotate", MDS, fp, "--csr", str(tmp_path / "mds2.csr"), "--overlap-days", "0",
                     *common]) == 0
    new_fp = orjson.loads(capsys.readouterr().out)["fingerprint"]
    assert cli.main(["certificate", "revoke", MDS, new_fp, *common]) == 0
    capsys.readouterr()
    assert cli.main(["certificate", "list", MDS, *common]) == 0
    listed = {c["fingerprint"]: c for c in orjson.loads(capsys.readouterr().out)}
    assert listed[fp]["retiresAt"] is not None and listed[new_fp]["revokedAt"] is not None


def test_rotating_the_database_held_signing_key_with_an_overlap(dip_factory: Callable[..., RunningDip],
                                                                tmp_path: Path) -> None:
    from dip.signing import SIGNATURE_CERTIFICATE, certificate_header
    from dip.tools.testing import AdminClient, WebhookReceiver
    from tests.helpers import consumption, onboard_all

    dip = dip_factory()
    with AdminClient(dip.url, dip.admin_key) as admin, WebhookReceiver() as hook:
        cast = onboard_all(admin)
        shown = admin.http.get("/admin/signing-key").json()
        assert shown["source"] == "database" and shown["published"] == [shown["fingerprint"]]
        rotated = admin.http.post("/admin/signing-key/rotate", json={"overlapDays": 7})
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        assert new["fingerprint"] != shown["fingerprint"]
        served = x509.load_pem_x509_certificates(httpx.get(dip.url + "/dip/certificate").content)
        assert [fingerprint(c) for c in served] == [new["fingerprint"], shown["fingerprint"]]  # the new one first
        # the DIP's calls are signed with the new key at once
        with DipClient(dip.url, cast["SUP"]) as sup:
            assert sup.register_webhook("IF-021", hook.url).status_code == 201
        with DipClient(dip.url, cast["SDS"]) as sds:
            assert sds.send("IF-021", consumption(sds, 1)).status_code == 201
        (call,) = hook.wait_for(lambda calls: len(calls) == 1)
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert headers[SIGNATURE_CERTIFICATE.lower()] == certificate_header(new["certificatePem"].encode())
        # with no overlap the replaced certificate is no longer published (the first is, for its 7 days)
        again = admin.http.post("/admin/signing-key/rotate", json={"overlapDays": 0}).json()
        served = x509.load_pem_x509_certificates(httpx.get(dip.url + "/dip/certificate").content)
        assert [fingerprint(c) for c in served] == [again["fingerprint"], shown["fingerprint"]]
    dip.__exit__(None, None, None)
    args = ["audit", "verify", "--data-dir", str(dip.settings.data_dir),
            *(["--database-url", dip.settings.database_url] if dip.settings.database_url else [])]
    assert cli.main(args) == 0  # checkpoints signed before and after the rotations all verify


def test_a_key_from_files_is_not_rotated_through_the_api(dip_factory: Callable[..., RunningDip],
                                                         tmp_path: Path) -> None:
    key, cert = generate_identity("DIP DEV files")
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "c.pem").write_bytes(cert)
    dip = dip_factory(signing_key=tmp_path / "k.pem", signing_cert=tmp_path / "c.pem")
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": dip.admin_key}) as admin:
        assert admin.get("/admin/signing-key").json()["source"] == "files"
        refused = admin.post("/admin/signing-key/rotate", json={})
        assert refused.status_code == 409 and "--previous-signing-cert" in refused.text
