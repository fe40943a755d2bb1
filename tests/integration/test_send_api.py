"""POST /dip-channel/{id}: every Level 1 check and response code, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import copy
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dip import ids
from dip.signing import generate_identity
from dip.store import MessageRow
from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import (
    DCP,
    MSS,
    REGS,
    SDS,
    SUP,
    appoint_supplier,
    body_of,
    codes,
    consumption,
    in_store,
    items,
    meter_install,
    onboard_all,
)

TRANSACTION_ID = re.compile(r"^T-IF-\d{3}-\d{10}-[A-Z]{3,5}-\d{8}-[0-9a-f]+$")
CORRELATION_ID = re.compile(r"^CI-\d{8}-[0-9a-f]+$")


@pytest.fixture
def cast(admin: AdminClient) -> dict[str, Identity]:
    return onboard_all(admin)


@pytest.fixture
def sds(dip: RunningDip, cast: dict[str, Identity]) -> DipClient:
    return DipClient(dip.url, cast["SDS"])


@pytest.fixture(scope="module")
def shared_sds(shared_dip: RunningDip, shared_cast: dict[str, Identity]) -> Iterator[DipClient]:
    """``sds`` on the module's shared DIP, for the tests of refusals (each sends messages of its own)."""
    with DipClient(shared_dip.url, shared_cast["SDS"]) as client:
        yield client


def test_accepted_batch_gets_201_with_transaction_ids_and_is_stored(dip: RunningDip, sds: DipClient) -> None:
    payloads = consumption(sds, 3)
    response = sds.send("IF-021", payloads)
    assert response.status_code == 201
    answer = items(response)
    assert [a["message"] for a in answer] == ["MSG0000 - Success"] * 3
    assert [a["senderUniqueReference"] for a in answer] == [
        p["CommonBlock"]["S1"]["senderUniqueReference"] for p in payloads
    ]
    for a in answer:
        assert TRANSACTION_ID.match(a["transactionID"]) and len(a["transactionID"]) <= 65
        assert a["transactionID"].startswith(f"T-IF-021-{SDS}-SDS-{datetime.now(UTC):%Y%m%d}-")
        assert a["recipientID"] == SDS and a["senderID"] == dip.settings.dip_id
        assert a["correlationID"] is None and a["help"] is None
        assert len(a["sentTimestamp"]) == 25
        assert a["transactionID"] in a["serviceTicketURL"]
    assert len({a["transactionID"] for a in answer}) == 3
    stored = _stored(dip, answer[0]["transactionID"])
    assert stored is not None
    assert orjson.loads(stored.payload) == payloads[0]
    assert stored.sender_id == SDS and stored.sur == answer[0]["senderUniqueReference"]


def _stored(dip: RunningDip, transaction_id: str) -> MessageRow | None:
    return in_store(dip, lambda store: store.get_message(transaction_id))


def test_correlation_created_on_if005_and_copied_on_if006(dip: RunningDip, cast: dict[str, Identity]) -> None:
    mss = DipClient(dip.url, cast["MSS"])
    response = mss.send("IF-005", [meter_install(mss)])
    assert response.status_code == 201, response.text
    correlation = items(response)[0]["correlationID"]
    assert CORRELATION_ID.match(correlation) and len(correlation) <= 60
    regs = DipClient(dip.url, cast["REGS"])
    reply = meter_install(regs, primary_recipients=[MSS], correlation_id=correlation)
    reply["CommonBlock"]["S0"]["interfaceID"] = "IF-006"
    reply["CommonBlock"]["S1"]["senderUniqueReference"] = ids.make_sender_reference(
        "IF-006", REGS, "REGS", datetime.now(UTC), "reply1")
    response = regs.send("IF-006", [reply])
    assert response.status_code == 201, response.text
    assert items(response)[0]["correlationID"] == correlation
    # IF-006 copies: a reply without the correlation ID is refused with MSG1012
    reply2 = copy.deepcopy(reply)
    reply2["CommonBlock"]["S1"]["senderCorrelationID"] = None
    reply2["CommonBlock"]["S1"]["senderUniqueReference"] += "b"
    reply3 = copy.deepcopy(reply)
    reply3["CommonBlock"]["S1"]["senderCorrelationID"] = "not-a-correlation-id"
    reply3["CommonBlock"]["S1"]["senderUniqueReference"] += "c"
    response = regs.send("IF-006", [reply2, reply3])
    assert response.status_code == 207
    assert codes(response) == ["MSG1012", "MSG1012"]


def test_duplicate_reference_within_batch_and_across_batches(sds: DipClient) -> None:
    first, second = consumption(sds, 2)
    twin = copy.deepcopy(first)
    response = sds.send("IF-021", [first, twin, second])
    assert response.status_code == 207
    assert codes(response) == ["MSG0000", "MSG1006", "MSG0000"]
    again = sds.send("IF-021", [first])
    assert again.status_code == 207 and codes(again) == ["MSG1006"]
    assert items(again)[0]["transactionID"] is None


def test_reference_uniqueness_survives_a_restart(dip_factory: Callable[..., RunningDip]) -> None:
    server = dip_factory()
    with AdminClient(server.url, server.admin_key) as admin:
        identity = admin.onboard(SDS, ["SDS"])
        appoint_supplier(admin)
    payloads = consumption(DipClient(server.url, identity), 2)
    assert DipClient(server.url, identity).send("IF-021", payloads).status_code == 201
    server.__exit__(None, None, None)
    restarted = dip_factory()
    client = DipClient(restarted.url, identity)
    response = client.send("IF-021", payloads)
    assert response.status_code == 207
    assert codes(response) == ["MSG1006", "MSG1006"]


def test_concurrent_batches_with_the_same_reference_accept_it_once(dip: RunningDip, sds: DipClient) -> None:
    payload = consumption(sds, 1)[0]
    results: list[int] = []

    def post() -> None:
        with DipClient(dip.url, sds.identity) as client:
            results.append(client.send("IF-021", [payload]).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 207, 207, 207]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p["CommonBlock"]["S1"].update(senderDIPID="1999999999"), "MSG1009"),
        (lambda p: p["CommonBlock"]["S1"].update(senderRoleID="SUP"), "MSG1010"),
        (lambda p: p["CommonBlock"]["S1"].update(senderTimestamp="2026-13-45T10:00:00+00:00"), "MSG1007"),
        (lambda p: p["CommonBlock"]["S1"].update(
            senderTimestamp=ids.timestamp(datetime.now(UTC) + timedelta(hours=2))), "MSG1007"),
        (lambda p: p["CommonBlock"]["S1"].update(senderCorrelationID="CI-2026-xyz"), "MSG1012"),
        (lambda p: p["CommonBlock"]["S1"].update(DIPConnectionProviderID=DCP), "MSG1011"),
        (lambda p: p["CommonBlock"]["S1"].update(
            senderUniqueReference=p["CommonBlock"]["S1"]["senderUniqueReference"].replace("IF-021", "IF-005")),
         "MSG1006"),
        (lambda p: p["CommonBlock"]["S1"].update(
            senderUniqueReference=p["CommonBlock"]["S1"]["senderUniqueReference"].replace(SDS, SUP)), "MSG1006"),
        (lambda p: p["CommonBlock"]["S1"].update(
            senderUniqueReference=p["CommonBlock"]["S1"]["senderUniqueReference"].replace("-SDS-", "-ADS-")),
         "MSG1006"),
    ],
    ids=["unknown-sender", "role-not-held", "bad-timestamp", "future-timestamp", "bad-correlation",
         "stray-dcp", "sur-interface", "sur-participant", "sur-role"],
)
def test_per_message_failures_give_207_and_keep_the_rest(shared_sds: DipClient, mutate: Callable[[dict], None],
                                                         code: str) -> None:
    sds = shared_sds
    good, bad = consumption(sds, 2)
    mutate(bad)
    response = sds.send("IF-021", [good, bad])
    assert response.status_code == 207, response.text
    assert codes(response) == ["MSG0000", code]
    rejected = items(response)[1]
    assert rejected["transactionID"] is None and rejected["help"].startswith("message 1: ")


def test_sender_role_not_entitled_on_channel(dip: RunningDip, admin: AdminClient) -> None:
    both = admin.onboard("1800000001", ["SDS", "SUP"], role="SUP")
    client = DipClient(dip.url, both)
    response = client.send("IF-021", consumption(client, 1))
    assert response.status_code == 207
    assert codes(response) == ["MSG1010"]
    assert "may not send on IF-021" in items(response)[0]["help"]


def test_caller_that_can_never_send_on_the_channel_gets_403(dip: RunningDip, cast: dict[str, Identity]) -> None:
    sup = DipClient(dip.url, cast["SUP"])
    response = sup.send("IF-021", consumption(sup, 1))
    assert response.status_code == 403
    assert codes(response) == ["MSG1010"]


def test_primary_recipients_must_hold_the_channel_role(dip: RunningDip, cast: dict[str, Identity]) -> None:
    mss = DipClient(dip.url, cast["MSS"])
    ok = meter_install(mss)
    unknown = meter_install(mss, primary_recipients=["1999999999"])
    wrong_role = meter_install(mss, primary_recipients=[SUP])
    nobody = meter_install(mss, primary_recipients=[])
    response = mss.send("IF-005", [ok, unknown, wrong_role, nobody])
    assert response.status_code == 207
    assert codes(response) == ["MSG0000", "MSG1031", "MSG1032", "MSG1030"]


def test_connection_provider_sends_on_behalf(dip: RunningDip, admin: AdminClient,
                                            cast: dict[str, Identity]) -> None:
    provider = DipClient(dip.url, cast["DCP"])
    payloads = consumption(provider, 1, on_behalf_of=(SDS, "SDS"))
    # not yet appointed: the DCP holds no sending role of its own and acts for nobody -> 403
    assert provider.send("IF-021", payloads).status_code == 403
    put = admin.http.put(f"/admin/participants/{SDS}/connection-providers/{DCP}", json={"roles": ["SDS"]})
    assert put.status_code == 200
    response = provider.send("IF-021", payloads)
    assert response.status_code == 201, response.text
    assert items(response)[0]["DIPConnectionProviderID"] == DCP
    assert items(response)[0]["recipientID"] == SDS
    # acting for someone it was not appointed by
    other = admin.onboard("1300000002", ["SDS"])
    foreign = consumption(provider, 1, on_behalf_of=(other.participant_id, "SDS"))
    # the provider naming itself as the sender without the role is MSG1009 / MSG1010 territory
    response = provider.send("IF-021", foreign)
    assert response.status_code == 207 and codes(response) == ["MSG1011"]
    # a sender that names someone else's DCP
    sds = DipClient(dip.url, cast["SDS"])
    mine = consumption(sds, 1)
    mine[0]["CommonBlock"]["S1"]["DIPConnectionProviderID"] = DCP
    assert codes(sds.send("IF-021", mine)) == ["MSG1011"]


def test_connection_provider_requires_dcp_role(admin: AdminClient, cast: dict[str, Identity]) -> None:
    response = admin.http.put(f"/admin/participants/{SDS}/connection-providers/{SUP}", json={"roles": ["SDS"]})
    assert response.status_code == 400 and "DCP" in response.text
    response = admin.http.put(f"/admin/participants/{SDS}/connection-providers/{DCP}", json={"roles": ["SUP"]})
    assert response.status_code == 400


def test_offboarded_participant_can_no_longer_send_or_be_addressed(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]
) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    assert sds.send("IF-021", consumption(sds, 1)).status_code == 201
    definition = admin.get_channel("IF-021")
    definition["routing"]["always"]["participants"] = [SDS]
    assert admin.put_channel("IF-021", definition).status_code == 200
    assert admin.http.delete(f"/admin/participants/{SDS}").status_code == 204
    assert SDS not in admin.get_channel("IF-021")["routing"]["always"]["participants"]
    response = sds.send("IF-021", consumption(sds, 1))
    assert response.status_code == 401
    mss = DipClient(dip.url, cast["MSS"])
    assert codes(mss.send("IF-005", [meter_install(mss, primary_recipients=[SDS])])) == ["MSG1031"]
    assert admin.http.delete(f"/admin/participants/{SDS}").status_code == 404


class TestBatchRejectedWhole:
    def test_schema_failure_rejects_every_message(self, dip: RunningDip, sds: DipClient) -> None:
        good, bad = consumption(sds, 2)
        bad["CustomBlock"]["B044"]["unexpected"] = "x"
        response = sds.send("IF-021", [good, bad])
        assert response.status_code == 400
        assert codes(response) == ["MSG1001"]
        entry = items(response)[0]
        assert entry["senderUniqueReference"] == bad["CommonBlock"]["S1"]["senderUniqueReference"]
        assert "message 1" in entry["help"] and "unexpected" in entry["help"]
        assert sds.send("IF-021", [good]).status_code == 201  # nothing of the first batch was stored

    @pytest.mark.parametrize(
        ("mutate", "fragment"),
        [
            (lambda p: p["CommonBlock"]["S1"].update(environmentTag="dev"), "environmentTag"),
            (lambda p: p["CommonBlock"]["S1"].update(environmentTag="SIT"), "environment"),
            (lambda p: p["CommonBlock"]["S0"].update(eventCode="[activepower]"), "eventCode"),
            (lambda p: p["CommonBlock"]["S0"].update(schemaVersion="999"), "schemaVersion"),
            (lambda p: p["CommonBlock"]["S1"].update(senderUniqueReference="S-nope"), "senderUniqueReference"),
            (lambda p: p["CommonBlock"]["S1"].update(senderDIPID=12), "senderDIPID"),
            (lambda p: p["CommonBlock"]["S1"].pop("senderTimestamp"), "senderTimestamp"),
            (lambda p: p["CommonBlock"]["M0"].update(GSPGroupID="_a"), "GSPGroupID"),
            (lambda p: p["CommonBlock"]["S1"].update(subText="x" * 100_000), "subText"),
            (lambda p: p.pop("CustomBlock"), "CustomBlock"),
            (lambda p: p["CommonBlock"].update(X9={}), "X9"),
        ],
        ids=["env-case", "env-other-instance", "event-case", "version", "sur-format", "wrong-type",
             "missing-field", "enum-case", "huge-string", "missing-block", "unknown-block"],
    )
    def test_schema_checks(self, shared_sds: DipClient, mutate: Callable[[dict], None], fragment: str) -> None:
        sds = shared_sds
        payload = consumption(sds, 1)[0]
        mutate(payload)
        response = sds.send("IF-021", [payload])
        assert response.status_code == 400, response.text
        assert codes(response) == ["MSG1001"]
        assert fragment in items(response)[0]["help"]

    def test_wrong_interface_in_message(self, sds: DipClient) -> None:
        payload = consumption(sds, 1)[0]
        payload["CommonBlock"]["S0"]["interfaceID"] = "IF-005"
        response = sds.send("IF-021", [payload])
        assert response.status_code == 400 and codes(response) == ["MSG1002"]

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            (b"{not json", "not valid JSON"),
            (b'{"payload": {}}', "JSON array"),
            (b"[1, 2]", "array item must be an object"),
            (b'["x"]', "array item must be an object"),
            (b"[]", "at least one message"),
            (b"", "not valid JSON"),
            (b'[{"payload": null}]', "array item must be an object"),
        ],
    )
    def test_malformed_bodies(self, shared_sds: DipClient, body: bytes, fragment: str) -> None:
        sds = shared_sds
        response = sds.send_raw("IF-021", body)
        assert response.status_code == 400
        assert set(codes(response)) == {"MSG1001"}
        assert all(fragment in entry["help"] for entry in items(response))

    def test_wrong_content_type(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        response = sds.post("/dip-channel/IF-021", body, headers={"Content-Type": "text/plain"})
        assert response.status_code == 400 and "Content-Type" in items(response)[0]["help"]


class TestAuthentication:
    def test_missing_api_key(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        response = sds.post("/dip-channel/IF-021", body, headers={"X-API-Key": ""})
        assert response.status_code == 401 and "X-API-Key" in items(response)[0]["help"]

    def test_unknown_api_key(self, sds: DipClient) -> None:
        response = sds.post("/dip-channel/IF-021", body_of(consumption(sds, 1)), headers={"X-API-Key": "nope"})
        assert response.status_code == 401 and "API key" in items(response)[0]["help"]

    @pytest.mark.parametrize("header", ["X-DIP-Signature", "X-DIP-Signature-Date", "X-DIP-Content-Hash",
                                        "X-DIP-Signature-Certificate"])
    def test_missing_signature_header(self, shared_sds: DipClient, header: str) -> None:
        sds = shared_sds
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + "/dip-channel/IF-021", body)
        del headers[header]
        response = sds.request("POST", "/dip-channel/IF-021", body, headers=headers, sign=False)
        assert response.status_code == 401 and header in items(response)[0]["help"]

    def test_body_changed_after_signing(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + "/dip-channel/IF-021", body)
        response = sds.request("POST", "/dip-channel/IF-021", body.replace(b"ActivePower", b"ReactivePower"),
                               headers=headers, sign=False)
        assert response.status_code == 401 and "Content-Hash" in items(response)[0]["help"]

    def test_forged_signature(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + "/dip-channel/IF-021", body)
        headers["X-DIP-Signature"] = base64.b64encode(b"\x30" * 70).decode()
        response = sds.request("POST", "/dip-channel/IF-021", body, headers=headers, sign=False)
        assert response.status_code == 401 and "does not verify" in items(response)[0]["help"]

    def test_signature_for_another_url(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + "/dip-channel/IF-005", body)
        response = sds.request("POST", "/dip-channel/IF-021", body, headers=headers, sign=False)
        assert response.status_code == 401

    @pytest.mark.parametrize("signed_path", ["/dip-channel/IF%2D021", "/dip-channel/IF-021"])
    def test_percent_encoded_path_verifies_as_sent_or_decoded(self, sds: DipClient, signed_path: str) -> None:
        # the request line carries IF%2D021; the client signed either that or the decoded URL
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + signed_path, body)
        response = sds.request("POST", "/dip-channel/IF%2D021", body, headers=headers, sign=False)
        assert response.status_code == 201, response.text

    def test_percent_encoded_path_signed_for_another_channel_is_401(self, sds: DipClient) -> None:
        body = body_of(consumption(sds, 1))
        headers = sds.signed_headers("POST", sds.base_url + "/dip-channel/IF%2D005", body)
        response = sds.request("POST", "/dip-channel/IF%2D021", body, headers=headers, sign=False)
        assert response.status_code == 401 and "/dip-channel/if%2d021" in items(response)[0]["help"]

    def test_stale_signature_date(self, sds: DipClient) -> None:
        from dip.signing import sign_headers

        body = body_of(consumption(sds, 1))
        headers = sign_headers(sds.identity.key, sds.identity.cert_pem, "POST",
                               sds.base_url + "/dip-channel/IF-021", body,
                               now=datetime.now(UTC) - timedelta(minutes=6))
        headers["X-API-Key"] = sds.identity.api_key
        response = sds.request("POST", "/dip-channel/IF-021", body, headers=headers, sign=False)
        assert response.status_code == 401 and "minutes" not in items(response)[0]["help"]
        assert "seconds from the DIP's clock" in items(response)[0]["help"]

    def test_unregistered_certificate(self, dip: RunningDip, sds: DipClient) -> None:
        key, cert = generate_identity("stranger")
        stranger = Identity(SDS, "SDS", sds.identity.api_key, key, cert)
        response = DipClient(dip.url, stranger).send("IF-021", consumption(sds, 1))
        assert response.status_code == 401 and "not registered" in items(response)[0]["help"]

    def test_certificate_of_another_participant(self, dip: RunningDip, cast: dict[str, Identity]) -> None:
        sds, sup = cast["SDS"], cast["SUP"]
        mixed = Identity(SDS, "SDS", sds.api_key, sup.key_pem, sup.cert_pem)
        client = DipClient(dip.url, mixed)
        response = client.send("IF-021", consumption(client, 1))
        assert response.status_code == 401 and "belongs to" in items(response)[0]["help"]

    def test_rsa_keys_work_too(self, dip: RunningDip, admin: AdminClient) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        admin.put_participant("1300000007", ["SDS"]).raise_for_status()
        appoint_supplier(admin)
        key_pem, cert_pem = generate_identity("rsa", key=rsa.generate_private_key(65537, 2048))
        assert admin.http.post("/admin/participants/1300000007/certificates",
                               json={"certificatePem": cert_pem.decode()}).status_code == 201
        api_key = admin.http.post("/admin/participants/1300000007/api-keys").json()["apiKey"]
        client = DipClient(dip.url, Identity("1300000007", "SDS", api_key, key_pem, cert_pem))
        assert client.send("IF-021", consumption(client, 1)).status_code == 201


def test_unknown_channel_is_404(sds: DipClient) -> None:
    response = sds.send("IF-999", consumption(sds, 1))
    assert response.status_code == 404 and codes(response) == ["MSG1002"]


def test_paths_and_field_names_are_case_insensitive_values_are_not(dip: RunningDip, sds: DipClient) -> None:
    payload = consumption(sds, 1)[0]
    s1 = payload["CommonBlock"]["S1"]
    payload["CommonBlock"]["S1"] = {k.upper() if k != "senderUniqueReference" else k: v for k, v in s1.items()}
    payload["commonblock"] = payload.pop("CommonBlock")
    response = sds.post("/DIP-Channel/if-021", body_of([payload]))
    assert response.status_code == 201, response.text
    stored = _stored(dip, items(response)[0]["transactionID"])
    canonical = orjson.loads(stored.payload)
    assert set(canonical["CommonBlock"]["S1"]) == set(s1)  # stored in the schema's spelling


def test_too_many_messages_is_413(dip_factory: Callable[..., RunningDip]) -> None:
    server = dip_factory(max_messages_per_call=5)
    with AdminClient(server.url, server.admin_key) as admin:
        client = DipClient(server.url, admin.onboard(SDS, ["SDS"]))
        appoint_supplier(admin)
    response = client.send("IF-021", consumption(client, 6))
    assert response.status_code == 413 and "limit is 5" in items(response)[0]["help"]
    assert client.send("IF-021", consumption(client, 5)).status_code == 201


def test_too_many_bytes_is_413(dip_factory: Callable[..., RunningDip]) -> None:
    server = dip_factory(max_body_bytes=20_000)
    with AdminClient(server.url, server.admin_key) as admin:
        client = DipClient(server.url, admin.onboard(SDS, ["SDS"]))
    response = client.send("IF-021", consumption(client, 10))
    assert response.status_code == 413 and "bytes" in items(response)[0]["help"]


def test_rate_limit_is_429_with_retry_after(dip_factory: Callable[..., RunningDip]) -> None:
    server = dip_factory(rate_limit_messages_per_second=1, rate_limit_burst=3)
    with AdminClient(server.url, server.admin_key) as admin:
        client = DipClient(server.url, admin.onboard(SDS, ["SDS"]))
        appoint_supplier(admin)
    assert client.send("IF-021", consumption(client, 3)).status_code == 201
    response = client.send("IF-021", consumption(client, 2))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert codes(response) == ["MSG1000"]


def test_the_rate_limit_holds_across_api_nodes_on_one_database(dip_factory: Callable[..., RunningDip]) -> None:
    """Two API nodes on one database share a participant's bucket: before 2026-12-05 each node
    had its own, and N nodes allowed N times the rate."""
    first = dip_factory(rate_limit_messages_per_second=0.5, rate_limit_burst=3)
    with AdminClient(first.url, first.admin_key) as admin:
        sds = admin.onboard(SDS, ["SDS"])
        appoint_supplier(admin)
    second = dip_factory(rate_limit_messages_per_second=0.5, rate_limit_burst=3, deliver=False)
    with DipClient(first.url, sds) as one, DipClient(second.url, sds) as other:
        assert one.send("IF-021", consumption(one, 3)).status_code == 201
        refused = other.send("IF-021", consumption(other, 1))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1


def test_live_channel_change_takes_effect_without_restart(dip: RunningDip, admin: AdminClient,
                                                          sds: DipClient) -> None:
    payload = consumption(sds, 1)[0]
    definition = admin.get_channel("IF-021")
    definition["customBlockSchema"]["required"].append("B999")
    assert admin.put_channel("IF-021", definition).status_code == 200
    response = sds.send("IF-021", [payload])
    assert response.status_code == 400 and "B999" in items(response)[0]["help"]
    # other channels are untouched
    assert admin.get_channel("IF-005")["customBlockSchema"] is not None
    definition["customBlockSchema"]["required"].remove("B999")
    assert admin.put_channel("IF-021", definition).status_code == 200
    assert sds.send("IF-021", [payload]).status_code == 201
    assert admin.http.delete("/admin/channels/IF-021").status_code == 204
    assert sds.send("IF-021", consumption(sds, 1)).status_code == 404


def test_validate_endpoint_checks_without_storing(dip: RunningDip, sds: DipClient) -> None:
    payload = consumption(sds, 1)[0]
    response = sds.post("/validate/IF-021/ActivePower", body_of([payload]))
    assert response.status_code == 201 and response.json().startswith("MSG0000")
    assert sds.send("IF-021", [payload]).status_code == 201  # the SUR was not used up
    response = sds.post("/validate/IF-021/ReactivePower", body_of([payload]))
    assert response.status_code == 400 and "eventCode" in response.json()
    payload["CustomBlock"]["B044"]["x"] = 1
    response = sds.post("/validate/IF-021/ActivePower", body_of([payload]))
    assert response.status_code == 400 and response.json().startswith("[0] MSG1001")
    assert sds.post("/validate/IF-021/NoSuchEvent", body_of([payload])).status_code == 404
