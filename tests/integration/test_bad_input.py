"""Hostile and broken input never produces a 500 nor stores anything."""

from __future__ import annotations

import pytest

from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import SDS, appoint_supplier, consumption, items

NASTY = [
    b"[" * 5000 + b"]" * 5000,
    b'[{"payload": ' + b"[" * 3000 + b"]" * 3000 + b"}]",
    b'[{"payload": {"CommonBlock": ' + b'{"a":' * 900 + b"1" + b"}" * 900 + b', "CustomBlock": {}}}]',
    b"[\xff\xfe]",
    b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-021", "eventCode": "\xc3\x28"}}}}]',
    b"[NaN]",
    b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": 1e999}}}}]',
    b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-021", "eventCode": ["[ActivePower]"]}}}}]',
    b'[{"payload": {"CommonBlock": {"S0": {"interfaceID": "IF-021", "eventCode": "[ActivePower]"}, "S1": 7}}}]',
    b'[{"PAYLOAD": {"commonblock": {"s0": {"INTERFACEID": "IF-021", "EVENTCODE": "[ActivePower]"}}}}]',
    b'[{"payload": {}}, {"payload": {}}]',
    b"\x00" * 1000,
    b'{"payload": 1}' * 1000,
]


@pytest.fixture
def client(dip: RunningDip, admin: AdminClient) -> DipClient:
    identity = admin.onboard(SDS, ["SDS"])
    appoint_supplier(admin)
    return DipClient(dip.url, identity)


@pytest.mark.parametrize("body", NASTY, ids=range(len(NASTY)))
def test_nasty_bodies_get_a_4xx_with_a_standard_response(shared_dip: RunningDip, shared_cast: dict[str, Identity],
                                                         body: bytes) -> None:
    with DipClient(shared_dip.url, shared_cast["SDS"]) as client:
        response = client.send_raw("IF-021", body)
    assert 400 <= response.status_code < 500, response.text
    assert items(response)[0]["message"].startswith("MSG")


def test_deeply_nested_custom_block_with_wrong_case_keys(client: DipClient) -> None:
    import orjson

    payload = consumption(client, 1)[0]
    payload["CustomBlock"]["b044"] = "__DEEP__"
    body = orjson.dumps([{"payload": payload}]).replace(b'"__DEEP__"', b'{"Y":' * 1000 + b"1" + b"}" * 1000)
    response = client.send_raw("IF-021", body)
    assert response.status_code == 400
    assert items(response)[0]["message"] == "MSG1001 - Schema Failure"


def test_wrong_case_payload_key_is_accepted(client: DipClient) -> None:
    import orjson

    payload = consumption(client, 1)[0]
    response = client.send_raw("IF-021", orjson.dumps([{"Payload": payload}]))
    assert response.status_code == 201, response.text


def test_admin_api_rejects_bad_bodies_with_400(admin: AdminClient) -> None:
    assert admin.http.put("/admin/participants/1300000009", content=b"{").status_code == 400
    assert admin.http.put("/admin/participants/1300000009", json={"name": "x", "roles": ["sup"]}).status_code == 400
    assert admin.http.put("/admin/participants/short", json={"name": "x", "roles": ["SUP"]}).status_code == 400
    assert admin.http.put("/admin/channels/IF-021", content=b"[]").status_code == 400
    assert admin.http.put("/admin/channels/NOPE", json={}).status_code == 400
    response = admin.http.post("/admin/participants/1999999999/certificates", json={"certificatePem": "x"})
    assert response.status_code == 404
    admin.put_participant("1300000009", ["SUP"]).raise_for_status()
    response = admin.http.post("/admin/participants/1300000009/certificates", json={"certificatePem": "junk"})
    assert response.status_code == 400


def test_admin_api_needs_the_admin_key(dip: RunningDip, admin: AdminClient) -> None:
    import httpx

    assert httpx.get(dip.url + "/admin/channels").status_code == 401
    assert httpx.get(dip.url + "/admin/channels", headers={"X-API-Key": "nope"}).status_code == 401
    # the key is checked before the body: without it, a malformed body tells the caller nothing
    for method, path, body in (("PUT", "/admin/participants/1300000009", b"{"),
                               ("PUT", "/admin/channels/IF-021", b"not json"),
                               ("POST", "/admin/mpan-registry", b"\xff\xfe"),
                               ("PUT", "/admin/participants/short", b'{"name": "x", "roles": ["SUP"]}')):
        for headers in ({}, {"X-API-Key": "nope"}):
            response = httpx.request(method, dip.url + path, content=body, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)


def test_certificate_registered_to_someone_else_is_refused(admin: AdminClient) -> None:
    first: Identity = admin.onboard("1300000011", ["SDS"])
    admin.put_participant("1300000012", ["SDS"]).raise_for_status()
    response = admin.http.post("/admin/participants/1300000012/certificates",
                               json={"certificatePem": first.cert_pem.decode()})
    assert response.status_code == 409 and "1300000011" in response.text


def test_lost_database_connections_give_503_or_success_never_500(
    dip: RunningDip, client: DipClient, database_url: str | None
) -> None:
    """PostgreSQL drops every connection (a restart or failover): the DIP answers 503 at worst, then recovers."""
    if database_url is None:
        pytest.skip("PostgreSQL only")
    import asyncio

    import asyncpg

    assert client.send("IF-021", consumption(client, 1)).status_code == 201
    name = database_url.rsplit("/", 1)[1]

    async def terminate() -> None:
        conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await conn.close()

    asyncio.run(terminate())
    statuses = [client.send("IF-021", consumption(client, 1)).status_code for _ in range(3)]
    assert all(s in (201, 503) for s in statuses), statuses
    assert statuses[-1] == 201


def test_openapi_document_and_swagger_ui_are_served(dip: RunningDip) -> None:
    import httpx

    spec = httpx.get(dip.url + "/openapi.json").json()
    assert spec["info"]["title"] == "DIP - Send Messages & Receive Publications"
    send = spec["paths"]["/dip-channel/{interface_id}"]["post"]
    assert {"201", "207", "400", "401", "403", "404", "413", "429"} <= set(send["responses"])
    assert "X-DIP-Signature" in {p["name"] for p in send["parameters"]}
    assert "/admin/participants/{participant_id}" in spec["paths"]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["participantApiKey"] == {**schemes["participantApiKey"], "type": "apiKey", "in": "header",
                                            "name": "X-API-Key"}
    assert send["security"] == [{"participantApiKey": []}]
    assert spec["paths"]["/admin/participants/{participant_id}"]["put"]["security"] == [{"operatorApiKey": []}]
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert "swagger-ui" in httpx.get(dip.url + "/docs").text.lower()
    assert httpx.get(dip.url + "/healthz").json()["status"] == "ok"
