"""Search through the API, on SQLite and PostgreSQL: participants find their own messages (as they
received them), the operator every message (docs/archive.md, "Search")."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dip.tools.client import DipClient, Identity, Response
from dip.tools.samples import meter_install_block
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import MDS, MSS, REGS, SDS, SUP, consumption, items, meter_install, onboard_all


@pytest.fixture
def dip(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(archive_rate_limit=0)


@pytest.fixture
def cast(dip: RunningDip) -> dict[str, Identity]:
    with AdminClient(dip.url, dip.admin_key) as admin:
        return onboard_all(admin)


def search(client: DipClient, **params: Any) -> Response:
    return client.request("GET", "/messages" + ("?" + urllib.parse.urlencode(params) if params else ""))


def hits(client: DipClient, **params: Any) -> list[dict[str, Any]]:
    response = search(client, **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def operator(dip: RunningDip, **params: Any) -> httpx.Response:
    return httpx.get(f"{dip.url}/admin/messages", params=params, headers={"X-API-Key": dip.admin_key})


def sent(client: DipClient, channel: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.send(channel, payloads)
    assert response.status_code == 201, response.text
    return items(response)


def test_participants_find_what_they_sent_or_received_and_nothing_else(dip: RunningDip,
                                                                      cast: dict[str, Identity]) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    readings = sent(sds, "IF-021", consumption(sds, 2))
    mss = DipClient(dip.url, cast["MSS"])
    (install,) = sent(mss, "IF-005", [meter_install(mss)])
    ids = [r["transactionID"] for r in readings]
    assert [h["transactionID"] for h in hits(sds, channel="IF-021")] == ids  # sent
    assert [h["transactionID"] for h in hits(DipClient(dip.url, cast["MDS"]), channel="IF-021")] == ids  # received
    assert hits(DipClient(dip.url, cast["REGS"]), channel="IF-021") == []  # neither
    assert hits(sds, transactionID=install["transactionID"]) == []  # another's
    (hit,) = hits(DipClient(dip.url, cast["REGS"]), transactionID=install["transactionID"])
    assert hit["channel"] == "IF-005" and hit["senderID"] == MSS and hit["eventCode"] == "[MeterInstall]"
    assert hit["correlationID"] == install["correlationID"] and hit["recipients"] == [
        {"participantId": REGS, "role": "REGS", "state": "pending"}]  # no webhook yet
    assert datetime.fromisoformat(hit["acceptedAt"]).tzinfo is not None
    first = hits(sds, channel="IF-021")[0]
    assert sorted((r["participantId"], r["role"]) for r in first["recipients"]) == [(SUP, "SUP"), (MDS, "MDS")]
    assert first["senderUniqueReference"] == readings[0]["senderUniqueReference"]
    assert first["MPAN"] is not None


def test_every_filter_and_paging(dip: RunningDip, cast: dict[str, Identity]) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    readings = sent(sds, "IF-021", consumption(sds, 3))
    ids = [r["transactionID"] for r in readings]
    assert [h["transactionID"] for h in hits(sds, senderUniqueReference=readings[1]["senderUniqueReference"])] == [
        ids[1]]
    first = hits(sds, transactionID=ids[0])[0]
    by_mpan = hits(sds, MPAN=first["MPAN"])
    assert ids[0] in [h["transactionID"] for h in by_mpan] and all(h["MPAN"] == first["MPAN"] for h in by_mpan)
    assert hits(sds, channel="IF-021", eventCode="[ReactivePower]") == []
    assert len(hits(sds, channel="IF-021", eventCode="[ActivePower]")) == 3
    assert hits(sds, channel="IF-021", to="2000-01-01T00:00:00+00:00") == []
    assert len(hits(sds, channel="IF-021", **{"from": "2000-01-01T00:00:00+00:00"})) == 3
    pages, cursor = [], None
    while True:
        response = search(sds, channel="IF-021", limit=2, **({"cursor": cursor} if cursor else {}))
        body = response.json()
        pages.append([h["transactionID"] for h in body["items"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == [ids[:2], ids[2:]]


def test_a_workflow_is_found_by_its_correlation_id(dip: RunningDip, cast: dict[str, Identity]) -> None:
    mss = DipClient(dip.url, cast["MSS"])
    (install,) = sent(mss, "IF-005", [meter_install(mss)])
    regs = DipClient(dip.url, cast["REGS"])
    reply = regs.message("IF-006", "[MeterInstall]", "011", meter_install_block(datetime.now(UTC)),
                         mpan="1200000000009", primary_recipients=[MSS], correlation_id=install["correlationID"])
    (answer,) = sent(regs, "IF-006", [reply])
    workflow = [install["transactionID"], answer["transactionID"]]
    assert [h["transactionID"] for h in hits(mss, correlationID=install["correlationID"])] == workflow
    assert [h["transactionID"] for h in hits(regs, correlationID=install["correlationID"])] == workflow
    assert [h["transactionID"] for h in operator(dip, correlationID=install["correlationID"]).json()["items"]] == (
        workflow)


def test_a_field_hidden_from_the_recipients_role_is_hidden_in_its_hits(dip: RunningDip,
                                                                       cast: dict[str, Identity]) -> None:
    with AdminClient(dip.url, dip.admin_key) as admin:
        definition = admin.get_channel("IF-021")
        definition["obfuscation"] = {"MDS": ["/CommonBlock/M0/MPANCore"]}
        assert admin.put_channel("IF-021", definition).status_code == 200
    sds, mds = DipClient(dip.url, cast["SDS"]), DipClient(dip.url, cast["MDS"])
    (reading,) = sent(sds, "IF-021", consumption(sds, 1))
    (as_sent,) = hits(sds, transactionID=reading["transactionID"])
    (as_received,) = hits(mds, transactionID=reading["transactionID"])
    assert as_sent["MPAN"].isdigit() and as_received["MPAN"] == "x" * 13
    assert hits(mds, MPAN=as_sent["MPAN"]) == []  # MDS may not look messages up by what it is not shown
    assert len(hits(DipClient(dip.url, cast["SUP"]), MPAN=as_sent["MPAN"])) == 1


def test_the_operator_sees_everything_and_may_narrow_to_a_participant(dip: RunningDip,
                                                                     cast: dict[str, Identity]) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    sent(sds, "IF-021", consumption(sds, 2))
    mss = DipClient(dip.url, cast["MSS"])
    sent(mss, "IF-005", [meter_install(mss)])
    assert len(operator(dip, channel="IF-021").json()["items"]) == 2
    assert len(operator(dip, channel="IF-021", participant=MDS).json()["items"]) == 2
    assert operator(dip, channel="IF-021", participant=REGS).json()["items"] == []
    assert len(operator(dip, channel="IF-005", participant=MSS).json()["items"]) == 1
    assert operator(dip, channel="IF-021", participant="short").status_code == 400
    assert httpx.get(f"{dip.url}/admin/messages", params={"channel": "IF-021"}).status_code == 401


@pytest.mark.parametrize(("params", "says"), [
    ({}, "give at least one of"),
    ({"eventCode": "[ActivePower]"}, "give at least one of"),
    ({"channel": "IF-021", "limit": "0"}, "limit must be"),
    ({"channel": "IF-021", "limit": "1001"}, "limit must be"),
    ({"channel": "IF-21"}, "interface ID"),
    ({"MPAN": "12"}, "13 digits"),
    ({"channel": "IF-021", "from": "yesterday"}, "ISO 8601"),
    ({"channel": "IF-021", "from": "2026-11-23T10:00:00"}, "offset"),
    ({"channel": "IF-021", "from": "2026-11-23T10:00:00+00:00", "to": "2026-11-23T09:00:00+00:00"}, "before"),
    ({"channel": "IF-021", "cursor": "%%%"}, "cursor"),
    ({"channel": "IF-021", "participant": SDS}, "unknown parameter 'participant'"),
    ({"senderUniqueReference": "S-not-one"}, "not a sender unique reference"),
])
def test_bad_searches_are_400_with_a_reason(dip: RunningDip, cast: dict[str, Identity], params: dict[str, str],
                                            says: str) -> None:
    response = search(DipClient(dip.url, cast["SDS"]), **params)
    assert response.status_code == 400, response.text
    (entry,) = items(response)
    assert entry["message"].startswith("MSG1001") and says in entry["help"], entry["help"]


def test_search_needs_a_signed_request(dip: RunningDip, cast: dict[str, Identity]) -> None:
    sds = DipClient(dip.url, cast["SDS"])
    assert sds.request("GET", "/messages?channel=IF-021", sign=False).status_code == 401
    assert sds.request("GET", "/Messages?channel=IF-021").status_code == 200  # paths are case-insensitive
    assert SDS  # the sender of the samples
