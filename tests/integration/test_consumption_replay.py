"""Consumption replay (IF-015 -> IF-016, E2E 5.1.7) through the API, on SQLite and PostgreSQL:
an Advanced Data Service asks, the DIP answers on IF-016 from its archive, or rejects; never silence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dip.archive.consumption_replay import months_before
from dip.tools.client import DipClient, Identity
from dip.tools.samples import mpan_core
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.conftest import REFERENCE
from tests.helpers import consumption, items, onboard_all

ADS = "1800000001"


@pytest.fixture
def fast(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05)


@pytest.fixture
def cast(fast: RunningDip) -> dict[str, Identity]:
    with AdminClient(fast.url, fast.admin_key) as admin:
        found = onboard_all(admin)
        found["ADS"] = admin.onboard(ADS, ["ADS"])
        return found


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def appoint_ads(dip: RunningDip, mpan: str, since: date) -> None:
    with AdminClient(dip.url, dip.admin_key) as admin:
        admin.load_registry([{"MPANCore": mpan, "role": "ADS", "participantId": ADS,
                              "effectiveFrom": since.isoformat(), "effectiveTo": None}]).raise_for_status()


def request(client: DipClient, mpan: str) -> dict[str, Any]:
    payload = client.message("IF-015", "[ConsumptionReplay]", "011", {}, mpan=mpan)
    payload.pop("CustomBlock", None)  # IF-015 has none
    response = client.send("IF-015", [payload])
    assert response.status_code == 201, response.text
    (answer,) = items(response)
    return answer


def answers(hook: WebhookReceiver, n: int) -> list[dict[str, Any]]:
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= n, timeout=15)
    return [element["payload"] for call in calls for element in call.json]


def test_the_dip_answers_with_the_mpans_consumption_before_the_supply_start(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    sds = DipClient(fast.url, cast["SDS"])
    readings = consumption(sds, 3)  # MPANs mpan_core(0..2)
    assert sds.send("IF-021", readings).status_code == 201
    mpan = mpan_core(1)
    appoint_ads(fast, mpan, datetime.now(UTC).date() + timedelta(days=1))  # the SSD is tomorrow
    ads = DipClient(fast.url, cast["ADS"])
    assert ads.register_webhook("IF-016", hook.url).status_code == 201
    asked = request(ads, mpan)
    (answer,) = answers(hook, 1)
    common = answer["CommonBlock"]
    assert common["S0"] == {"interfaceID": "IF-016", "schemaVersion": "011", "eventCode": "[ActivePower]"}
    assert common["S1"]["senderDIPID"] == fast.settings.dip_id and common["S1"]["senderRoleID"] == "DIP"
    assert common["S1"]["senderCorrelationID"] == asked["correlationID"]
    assert common["S2"] == readings[1]["CommonBlock"]["S1"]  # the original sender's block
    assert common["M0"]["MPANCore"] == mpan and common["R1"]["responseCode"] == "A"
    assert answer["CustomBlock"] == readings[1]["CustomBlock"]
    assert common["A0"]["primaryRecipients"] == [ADS]
    assert common["D0"]["initialCorrelationID"] == asked["correlationID"]  # the workflow's


def test_a_request_that_cannot_be_served_is_answered_with_a_rejection(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    ads = DipClient(fast.url, cast["ADS"])
    assert ads.register_webhook("IF-016", hook.url).status_code == 201
    request(ads, mpan_core(5))  # not its MPAN
    appoint_ads(fast, mpan_core(6), datetime.now(UTC).date() + timedelta(days=1))
    request(ads, mpan_core(6))  # its MPAN, but nothing archived
    first, second = answers(hook, 2)
    for answer, says in ((first, "is not the Advanced Data Service"), (second, "no consumption")):
        common = answer["CommonBlock"]
        assert common["S0"]["eventCode"] == "[ConsumptionRequestRejected]"
        assert common["R1"]["responseCode"] == "R" and says in common["R1"]["responseMessages"][0]
        assert "CustomBlock" not in answer


def test_only_an_advanced_data_service_may_ask(fast: RunningDip, cast: dict[str, Identity]) -> None:
    sds = DipClient(fast.url, cast["SDS"])
    payload = sds.message("IF-015", "[ConsumptionReplay]", "011", {}, mpan=mpan_core(1))
    payload.pop("CustomBlock", None)
    response = sds.send("IF-015", [payload])
    assert response.status_code == 403 and items(response)[0]["message"].startswith("MSG1010")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"official reference not found at {REFERENCE}")
def test_the_answers_validate_against_the_official_if016_schema(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    from tests.integration.test_conformance import egress_problems

    sds = DipClient(fast.url, cast["SDS"])
    assert sds.send("IF-021", consumption(sds, 2)).status_code == 201
    appoint_ads(fast, mpan_core(0), datetime.now(UTC).date() + timedelta(days=1))
    ads = DipClient(fast.url, cast["ADS"])
    assert ads.register_webhook("IF-016", hook.url).status_code == 201
    request(ads, mpan_core(0))
    request(ads, mpan_core(9))  # rejected
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= 2, timeout=15)
    for call in calls:
        assert egress_problems(call.json) == []


def test_four_calendar_months() -> None:
    assert months_before(date(2026, 12, 5), 4) == date(2026, 8, 5)
    assert months_before(date(2026, 3, 5), 4) == date(2025, 11, 5)
    assert months_before(date(2026, 6, 30), 4) == date(2026, 2, 28)
