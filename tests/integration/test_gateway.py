"""Behind a TLS-terminating gateway that forwards the verified client certificate (issue 17),
on SQLite and PostgreSQL: believed from the gateway's addresses only."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import MDS, SUP, items

HOOK = "http://127.0.0.1:9/status"


def _register(dip: RunningDip, who: Identity, forwarded: Identity | None) -> tuple[int, str]:
    """A signed call by ``who``, as the gateway would pass it on with ``forwarded``'s certificate."""
    headers = {"X-Client-Cert": urllib.parse.quote(forwarded.cert_pem.decode())} if forwarded else {}
    body = b'{"callbackURL": "' + HOOK.encode() + b'"}'
    with DipClient(dip.url, who) as client:
        answer = client.post(f"/statusmessage/config/{who.participant_id}", body, headers)
    return answer.status_code, "" if answer.status_code < 300 else str(items(answer)[0]["help"])


def test_the_forwarded_certificate_must_be_the_key_holders(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(client_cert_header="X-Client-Cert", trusted_proxies=("127.0.0.1/32",))
    with AdminClient(dip.url, dip.admin_key) as admin:
        mds, sup = admin.onboard(MDS, ["MDS"]), admin.onboard(SUP, ["SUP"])
    assert _register(dip, mds, mds)[0] == 201
    status, why = _register(dip, mds, None)
    assert status == 401 and "client certificate" in why
    status, why = _register(dip, mds, sup)
    assert status == 403 and f"belongs to '{SUP}'" in why


def test_a_forwarded_certificate_from_elsewhere_than_the_gateway_is_refused(
        dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(client_cert_header="X-Client-Cert", trusted_proxies=("10.20.0.0/16",))
    with AdminClient(dip.url, dip.admin_key) as admin:
        mds = admin.onboard(MDS, ["MDS"])
    status, why = _register(dip, mds, mds)  # from 127.0.0.1, not the gateway
    assert status == 403 and "only from the gateway" in why
