"""The DIP calls webhooks over TLS (issue 17): it verifies the recipient's server certificate
(a CA bundle for private CAs) and presents its own client certificate. Real handshakes, on SQLite
and PostgreSQL."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from dip.signing import fingerprint, load_certificate_pem
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import consumption, items, onboard_all
from tests.tls import TestCA


def _server_context(ca: TestCA, folder: Path, trusted_client_pem: bytes) -> ssl.SSLContext:
    key, cert = ca.issue("127.0.0.1", server=True)
    (folder / f"{id(ca)}.key").write_bytes(key)
    (folder / f"{id(ca)}.pem").write_bytes(cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(folder / f"{id(ca)}.pem"), str(folder / f"{id(ca)}.key"))
    context.verify_mode = ssl.CERT_REQUIRED  # the recipient wants to know it is the DIP calling
    context.load_verify_locations(cadata=trusted_client_pem.decode())
    return context


def test_webhooks_are_called_over_tls_with_the_dips_client_certificate(dip_factory: Callable[..., RunningDip],
                                                                      tmp_path: Path) -> None:
    recipients_ca, stranger_ca = TestCA.make("Recipients' private CA"), TestCA.make("Nobody's CA")
    (tmp_path / "bundle.pem").write_bytes(recipients_ca.pem)
    dip = dip_factory(webhook_ca_bundle=tmp_path / "bundle.pem", delivery_poll_seconds=0.05)
    dip_cert = httpx.get(dip.url + "/dip/certificate").content  # what a recipient trusts the DIP by
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
    trusted = WebhookReceiver(tls=_server_context(recipients_ca, tmp_path, dip_cert))
    untrusted = WebhookReceiver(tls=_server_context(stranger_ca, tmp_path, dip_cert))
    with trusted as mds_hook, untrusted as sup_hook:
        assert DipClient(dip.url, cast["MDS"]).register_webhook("IF-021", mds_hook.url).status_code == 201
        assert DipClient(dip.url, cast["SUP"]).register_webhook("IF-021", sup_hook.url).status_code == 201
        sds = DipClient(dip.url, cast["SDS"])
        sent = sds.send("IF-021", consumption(sds, 1))
        tid = items(sent)[0]["transactionID"]
        (call,) = mds_hook.wait_for(lambda calls: len(calls) == 1)
        assert call.client_cert == fingerprint(load_certificate_pem(dip_cert))  # SHA-256 of its DER
        # the server certificate SUP's webhook shows is from a CA the DIP does not trust: no call
        with AdminClient(dip.url, dip.admin_key) as admin:
            deadline = time.monotonic() + 15
            while True:
                deliveries = admin.http.get(f"/admin/transactions/{tid}").json()["deliveries"]
                sup = [d for d in deliveries if d["role"] == "SUP"]
                if (sup and sup[0]["lastError"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert sup[0]["state"] == "pending" and "certificate" in sup[0]["lastError"].lower(), sup
        assert sup_hook.calls == []
