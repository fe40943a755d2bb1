"""Webhook registration (pubconfig, statusmessage/config) and the DIP's certificate."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from dip.signing import load_certificate_pem
from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import DCP, MDS, SDS, items, onboard_all


@pytest.fixture
def cast(admin: AdminClient) -> dict[str, Identity]:
    return onboard_all(admin)


def hooks(admin: AdminClient, participant: str) -> list[dict[str, object]]:
    response = admin.http.get(f"/admin/participants/{participant}/webhooks")
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()
    return result


def test_recipient_registers_replaces_and_removes_its_channel_webhook(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]
) -> None:
    mds = DipClient(dip.url, cast["MDS"])
    response = mds.register_webhook("IF-021", "http://127.0.0.1:9/consumption", max_message_count=500)
    assert response.status_code == 201, response.text
    assert response.json() == {"recipientID": MDS, "publicationID": "PUB-021",
                               "callbackURL": "http://127.0.0.1:9/consumption", "maxMessageCount": 500,
                               "maxPayloadSize": 100000}
    assert mds.register_webhook("IF-021", "http://127.0.0.1:9/v2").status_code == 200
    assert hooks(admin, MDS) == [{"kind": "publication", "interfaceID": "IF-021", "callbackURL": "http://127.0.0.1:9/v2",
                                  "maxMessageCount": 50000, "maxPayloadSize": 100000, "registeredBy": MDS}]
    assert mds.request("DELETE", f"/dip-channel/IF-021/pubconfig/{MDS}").status_code == 204
    assert hooks(admin, MDS) == []
    assert mds.request("DELETE", f"/dip-channel/IF-021/pubconfig/{MDS}").status_code == 404


def test_status_message_webhook(dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    assert sds.register_webhook(None, "http://localhost:8999/status").status_code == 201
    assert hooks(admin, SDS)[0]["kind"] == "status"
    assert sds.request("DELETE", f"/StatusMessage/Config/{SDS}").status_code == 204


def test_only_the_recipient_or_its_connection_provider(dip: RunningDip, admin: AdminClient,
                                                       cast: dict[str, Identity]) -> None:
    sup = DipClient(dip.url, cast["SUP"])
    response = sup.register_webhook("IF-021", "http://127.0.0.1:9/x", recipient_id=MDS)
    assert response.status_code == 403 and "connection provider" in items(response)[0]["help"]
    provider = DipClient(dip.url, cast["DCP"])
    assert provider.register_webhook("IF-021", "http://127.0.0.1:9/x", recipient_id=MDS).status_code == 403
    admin.http.put(f"/admin/participants/{MDS}/connection-providers/{DCP}", json={"roles": ["MDS"]}).raise_for_status()
    assert provider.register_webhook("IF-021", "http://127.0.0.1:9/x", recipient_id=MDS).status_code == 201
    assert hooks(admin, MDS)[0]["registeredBy"] == DCP
    # a participant that receives nothing on the channel
    sds = DipClient(dip.url, cast["SDS"])
    response = sds.register_webhook("IF-021", "http://127.0.0.1:9/x")
    assert response.status_code == 403 and "PUB-021" in items(response)[0]["help"]
    assert sup.register_webhook("IF-999", "http://127.0.0.1:9/x").status_code == 404
    assert sup.register_webhook("IF-021", "http://127.0.0.1:9/x", recipient_id="1999999999").status_code == 404


def test_unsigned_registration_is_401(dip: RunningDip, cast: dict[str, Identity]) -> None:
    response = httpx.post(f"{dip.url}/dip-channel/IF-021/pubconfig/{MDS}", json={"callbackURL": "http://x/y"},
                          headers={"X-API-Key": cast["MDS"].api_key})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"callbackURL": "ftp://127.0.0.1/x"}, "http"),
        ({"callbackURL": "http:///nohost"}, "no host"),
        ({"callbackURL": "http://user:pw@127.0.0.1/x"}, "user name"),
        ({"callbackURL": "http://127.0.0.1/x#frag"}, "fragment"),
        ({"callbackURL": "http://does-not-exist.invalid/x"}, "does not resolve"),
        ({"callbackURL": "http://127.0.0.1/" + "a" * 300}, "250"),
        ({"callbackURL": 12}, "callbackURL"),
        ({}, "callbackURL"),
        ({"callbackURL": "http://127.0.0.1/x", "maxMessageCount": 0}, "maxMessageCount"),
        ({"callbackURL": "http://127.0.0.1/x", "maxMessageCount": 50001}, "maxMessageCount"),
        ({"callbackURL": "http://127.0.0.1/x", "maxMessageCount": 1.5}, "whole number"),
        ({"callbackURL": "http://127.0.0.1/x", "maxPayloadSize": "big"}, "maxPayloadSize"),
        ({"callbackURL": "http://127.0.0.1/x", "colour": "blue"}, "unknown field"),
    ],
)
def test_bad_configurations_are_400(shared_dip: RunningDip, shared_cast: dict[str, Identity],
                                    config: dict[str, object], fragment: str) -> None:
    import orjson

    mds = DipClient(shared_dip.url, shared_cast["MDS"])
    response = mds.post(f"/dip-channel/IF-021/pubconfig/{MDS}", orjson.dumps(config))
    assert response.status_code == 400, response.text
    assert fragment in items(response)[0]["help"]


def test_field_names_are_case_insensitive(dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]) -> None:
    mds = DipClient(dip.url, cast["MDS"])
    response = mds.post(f"/dip-channel/if-021/PubConfig/{MDS}", b'{"CALLBACKURL": "http://127.0.0.1:9/a"}')
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("url", ["http://example.com/hook", "https://127.0.0.1/hook", "https://localhost/hook",
                                 "https://10.0.0.8/hook", "https://169.254.169.254/latest", "https://[::1]/x",
                                 "https://example.com:8443/hook"])
def test_outside_dev_only_public_https_urls(dip_factory: Callable[..., RunningDip], url: str) -> None:
    server = dip_factory(environment="PRD")
    with AdminClient(server.url, server.admin_key) as admin:
        mds = admin.onboard(MDS, ["MDS"], environment="PRD")
    response = DipClient(server.url, mds).register_webhook("IF-021", url)
    assert response.status_code == 400, response.text


def test_dip_certificate_is_stable_across_restarts(dip_factory: Callable[..., RunningDip]) -> None:
    first = dip_factory()
    pem = httpx.get(first.url + "/dip/certificate").content
    cert = load_certificate_pem(pem)
    assert "DIP DEV" in cert.subject.rfc4514_string()
    first.__exit__(None, None, None)
    second = dip_factory()
    assert httpx.get(second.url + "/dip/certificate").content == pem


def test_offboarding_removes_webhooks(dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]) -> None:
    mds = DipClient(dip.url, cast["MDS"])
    assert mds.register_webhook("IF-021", "http://127.0.0.1:9/x").status_code == 201
    assert admin.http.delete(f"/admin/participants/{MDS}").status_code == 204
    assert hooks(admin, MDS) == []
