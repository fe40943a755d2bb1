"""Revoking one API key or one certificate, and off-boarding that revokes for good (issue 17;
API contract section 5), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from dip.signing import fingerprint, generate_identity, load_certificate_pem
from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import MDS, items

HOOK = "http://127.0.0.1:9/status"


def _works(dip: RunningDip, who: Identity) -> bool:
    """Whether a signed call with these credentials gets through (a status webhook registration)."""
    with DipClient(dip.url, who) as client:
        answer = client.register_webhook(None, HOOK)
    if answer.status_code == 401:
        return False
    assert answer.status_code in (200, 201), answer.text
    return True


def _help(dip: RunningDip, who: Identity) -> str:
    with DipClient(dip.url, who) as client:
        return str(items(client.register_webhook(None, HOOK))[0]["help"])


def test_one_api_key_is_revoked_and_the_others_stay_in_force(dip: RunningDip, admin: AdminClient) -> None:
    mds = admin.onboard(MDS, ["MDS"])
    second = admin.http.post(f"/admin/participants/{MDS}/api-keys").json()
    assert set(second) == {"apiKey", "keyId"} and len(second["keyId"]) == 16
    other = replace(mds, api_key=second["apiKey"])
    assert _works(dip, mds) and _works(dip, other)

    assert admin.http.delete(f"/admin/participants/{MDS}/api-keys/{second['keyId']}").status_code == 204
    assert not _works(dip, other) and "unknown or revoked API key" in _help(dip, other)
    assert _works(dip, mds)
    listed = {k["keyId"]: k for k in admin.http.get(f"/admin/participants/{MDS}/api-keys").json()}
    assert listed[second["keyId"]]["revokedAt"] is not None and len(listed) == 2
    assert all("apiKey" not in k for k in listed.values())  # never the key itself
    # again, or a key it never had: 404
    assert admin.http.delete(f"/admin/participants/{MDS}/api-keys/{second['keyId']}").status_code == 404
    assert admin.http.delete(f"/admin/participants/{MDS}/api-keys/0123456789abcdef").status_code == 404


def test_one_certificate_is_revoked_for_good(dip: RunningDip, admin: AdminClient) -> None:
    mds = admin.onboard(MDS, ["MDS"])
    key_pem, cert_pem = generate_identity(MDS)
    assert admin.http.post(f"/admin/participants/{MDS}/certificates",
                           json={"certificatePem": cert_pem.decode()}).status_code == 201
    second = replace(mds, key_pem=key_pem, cert_pem=cert_pem)
    assert _works(dip, second)
    sha256 = fingerprint(load_certificate_pem(cert_pem))
    assert admin.http.delete(f"/admin/participants/{MDS}/certificates/{sha256}").status_code == 204
    assert not _works(dip, second) and "not registered" in _help(dip, second)
    assert _works(dip, mds)  # its first certificate is still in force
    again = admin.http.post(f"/admin/participants/{MDS}/certificates", json={"certificatePem": cert_pem.decode()})
    assert again.status_code == 409 and "revoked" in again.text
    assert admin.http.delete(f"/admin/participants/{MDS}/certificates/{sha256}").status_code == 404


def test_off_boarding_revokes_every_credential_for_good(dip: RunningDip, admin: AdminClient) -> None:
    old = admin.onboard(MDS, ["MDS"])
    assert _works(dip, old)
    assert admin.http.delete(f"/admin/participants/{MDS}").status_code == 204
    assert admin.put_participant(MDS, ["MDS"]).status_code in (200, 201)  # on-boarded again
    assert admin.http.get(f"/admin/participants/{MDS}").json()["active"] is True
    assert not _works(dip, old)  # neither its old key nor its old certificate came back
    fresh_key = admin.http.post(f"/admin/participants/{MDS}/api-keys").json()["apiKey"]
    assert not _works(dip, replace(old, api_key=fresh_key))  # a new key, but the old certificate
    assert admin.http.post(f"/admin/participants/{MDS}/certificates",
                           json={"certificatePem": old.cert_pem.decode()}).status_code == 409
    renewed = admin.onboard(MDS, ["MDS"])  # new key and new certificate
    assert _works(dip, renewed)
