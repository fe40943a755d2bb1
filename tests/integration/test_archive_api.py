"""Replay, requeue and redrive through the API, on SQLite and PostgreSQL: real servers, signed
requests, real webhook receivers (docs/archive.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from dip.tools.client import DipClient, Identity, Response
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.conftest import REFERENCE
from tests.helpers import DCP, MDS, SDS, SUP, consumption, in_store, items, onboard_all

FROM_THE_START = {"datetimeFrom": "2000-01-01T00:00:00+00:00"}


@pytest.fixture
def fast(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05,
                       replay_page_size=3, archive_rate_limit=0)


@pytest.fixture
def cast(fast: RunningDip) -> dict[str, Identity]:
    with AdminClient(fast.url, fast.admin_key) as admin:
        return onboard_all(admin)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def send(dip: RunningDip, cast: dict[str, Identity], n: int) -> list[dict[str, Any]]:
    """n IF-021 messages from SDS (to MDS always, SUP by MPAN); their answers, in order."""
    client = DipClient(dip.url, cast["SDS"])
    response = client.send("IF-021", consumption(client, n))
    assert response.status_code == 201, response.text
    return items(response)


def replay(client: DipClient, recipient: str, request: dict[str, Any], token: str | None = None,
           channel: str = "IF-021") -> Response:
    headers = {"X-Continuation-Token": token} if token else None
    return client.post(f"/dip-channel/{channel}/replay/{recipient}", orjson.dumps(request), headers)


def replayed_ids(response: Response) -> list[str]:
    return [element["originalWrapper"]["D0"]["transactionID"] for element in response.json()]


def test_replay_answers_the_recipients_publications_under_new_wrappers(fast: RunningDip,
                                                                      cast: dict[str, Identity]) -> None:
    sent = send(fast, cast, 2)
    sup = DipClient(fast.url, cast["SUP"])
    response = replay(sup, SUP, FROM_THE_START)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    elements = response.json()
    assert [e["originalWrapper"]["D0"]["transactionID"] for e in elements] == [s["transactionID"] for s in sent]
    for element, answer in zip(elements, sent, strict=True):
        d0, original = element["payload"]["CommonBlock"]["D0"], element["originalWrapper"]["D0"]
        assert original == {"transactionID": answer["transactionID"], "transactionTimestamp": answer["sentTimestamp"],
                            "publicationID": "PUB-021", "initialCorrelationID": None, "replayIndicator": False,
                            "serviceTicketURL": answer["serviceTicketURL"]}
        assert d0["replayIndicator"] is True and d0["publicationID"] == "PUB-021"
        assert d0["transactionID"] != answer["transactionID"]
        assert d0["transactionID"].startswith(f"T-IF-021-{SDS}-SDS-")
        assert d0["initialCorrelationID"].startswith("R-") and len(d0["initialCorrelationID"]) <= 60
        assert element["payload"]["CommonBlock"]["A0"] == {"primaryRecipients": [], "secondaryRecipients": [SUP],
                                                          "always": [MDS]}
    # a new wrapper each time: a replay is a new transaction
    again = replay(sup, SUP, FROM_THE_START).json()
    assert {e["payload"]["CommonBlock"]["D0"]["transactionID"] for e in again}.isdisjoint(
        e["payload"]["CommonBlock"]["D0"]["transactionID"] for e in elements)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"official reference not found at {REFERENCE}")
def test_replayed_bodies_and_refusals_validate_against_the_official_schemas(fast: RunningDip,
                                                                           cast: dict[str, Identity]) -> None:
    from tests.integration.test_conformance import answer_problems, egress_problems

    send(fast, cast, 2)
    mds = DipClient(fast.url, cast["MDS"])
    response = replay(mds, MDS, FROM_THE_START)
    assert response.status_code == 200
    assert egress_problems(response.json()) == []
    assert answer_problems(replay(mds, MDS, {"datetimeTo": "2026-01-01T00:00:00+00:00"}), 400, "MSG1001",
                           "400 Bad Request: give transactionIDs") == []


def test_filters_choose_what_is_replayed(fast: RunningDip, cast: dict[str, Identity]) -> None:
    sent = send(fast, cast, 3)
    ids = [s["transactionID"] for s in sent]
    sup = DipClient(fast.url, cast["SUP"])
    assert replayed_ids(replay(sup, SUP, {"transactionIDs": [ids[2], ids[0], "T-IF-021-unknown"]})) == [ids[0], ids[2]]
    assert replay(sup, SUP, {**FROM_THE_START, "eventCode": "[ReactivePower]"}).status_code == 204
    assert replayed_ids(replay(sup, SUP, {**FROM_THE_START, "eventCode": "[ActivePower]", "version": "011"})) == ids
    messages = in_store(fast, lambda store: store.get_message(ids[1]))
    assert messages is not None and messages.mpan
    assert replayed_ids(replay(sup, SUP, {**FROM_THE_START, "MPAN": messages.mpan})) == [ids[1]]
    assert replay(sup, SUP, {"datetimeFrom": "2000-01-01T00:00:00+00:00",
                             "datetimeTo": "2000-01-02T00:00:00+00:00"}).status_code == 204


def test_only_the_recipient_or_its_connection_provider_may_replay(fast: RunningDip, cast: dict[str, Identity]) -> None:
    send(fast, cast, 1)
    mds = DipClient(fast.url, cast["MDS"])
    refused = replay(mds, SUP, FROM_THE_START)  # MDS asks for SUP's
    assert refused.status_code == 403 and SDS not in refused.text
    assert items(refused)[0]["message"].startswith("MSG1000")
    # SDS sent it but is no recipient of PUB-021
    assert replay(DipClient(fast.url, cast["SDS"]), SDS, FROM_THE_START).status_code == 403
    # a connection provider SUP appointed for its role may
    with AdminClient(fast.url, fast.admin_key) as admin:
        admin.http.put(f"/admin/participants/{SUP}/connection-providers/{DCP}", json={"roles": ["SUP"]}
                       ).raise_for_status()
    dcp = DipClient(fast.url, cast["DCP"])
    deadline = time.monotonic() + 10
    while (answer := replay(dcp, SUP, FROM_THE_START)).status_code == 403 and time.monotonic() < deadline:
        time.sleep(0.05)  # the grant reaches the node's cached directory
    assert answer.status_code == 200 and len(answer.json()) == 1
    assert replay(mds, MDS, FROM_THE_START, channel="IF-999").status_code == 404


def test_large_selections_page_with_continuation_tokens(fast: RunningDip, cast: dict[str, Identity]) -> None:
    ids = [s["transactionID"] for s in send(fast, cast, 7)]  # pages of 3 (replay_page_size)
    mds = DipClient(fast.url, cast["MDS"])
    pages: list[list[str]] = []
    first = response = replay(mds, MDS, FROM_THE_START)
    while response.status_code == 206:
        pages.append(replayed_ids(response))
        token = response.headers["x-continuation-token"]
        response = replay(mds, MDS, FROM_THE_START, token)
    assert response.status_code == 200 and "x-continuation-token" not in response.headers
    pages.append(replayed_ids(response))
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    # a token is a page, not a position: asked again it answers the same page
    token = first.headers["x-continuation-token"]
    assert replayed_ids(replay(mds, MDS, FROM_THE_START, token)) == ids[3:6]
    # another request's, tampered with, or another caller's: 400
    for bad in (replay(mds, MDS, {**FROM_THE_START, "version": "011"}, token),
                replay(mds, MDS, FROM_THE_START, token[:-1] + ("0" if token[-1] != "0" else "1")),
                replay(DipClient(fast.url, cast["SUP"]), SUP, FROM_THE_START, token)):
        assert bad.status_code == 400, bad.text
        assert "X-Continuation-Token" in items(bad)[0]["help"]


@pytest.mark.parametrize(("request_body", "says"), [
    ({"transactionIDs": [f"T-{i}" for i in range(101)]}, "1 to 100"),
    ({"datetimeFrom": "2026-11-23T00:00:01+00:00", "datetimeTo": "2026-11-23T00:00:00+00:00"}, "before"),
    ({"datetimeFrom": "yesterday"}, "ISO 8601"),
    ({"eventCode": "[ActivePower]"}, "give transactionIDs, or datetimeFrom"),
])
def test_bad_requests_are_400_with_a_reason(fast: RunningDip, cast: dict[str, Identity],
                                            request_body: dict[str, Any], says: str) -> None:
    answer = replay(DipClient(fast.url, cast["MDS"]), MDS, request_body)
    assert answer.status_code == 400
    (entry,) = items(answer)
    assert entry["message"].startswith("MSG1001") and says in entry["help"]


def test_replay_and_requeue_are_rate_limited_per_participant(dip_factory: Callable[..., RunningDip]) -> None:
    limited = dip_factory(archive_rate_limit=0.01, archive_burst=2)
    with AdminClient(limited.url, limited.admin_key) as admin:
        cast = onboard_all(admin)
    mds, sup = DipClient(limited.url, cast["MDS"]), DipClient(limited.url, cast["SUP"])
    assert [replay(mds, MDS, FROM_THE_START).status_code for _ in range(2)] == [204, 204]
    refused = replay(mds, MDS, FROM_THE_START)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert replay(sup, SUP, FROM_THE_START).status_code == 204  # another participant's bucket


def requeue(client: DipClient, recipient: str, request: dict[str, Any]) -> Response:
    return client.post(f"/dip-channel/IF-021/requeue/{recipient}", orjson.dumps(request))


def requeue_status(client: DipClient, recipient: str, requeue_id: str) -> Response:
    return client.request("GET", f"/dip-channel/IF-021/requeue/{recipient}?requeue-id={requeue_id}")


def test_requeue_puts_replays_at_the_end_of_the_queue_and_reports_progress(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    sup = DipClient(fast.url, cast["SUP"])
    assert requeue(sup, SUP, FROM_THE_START).status_code == 409  # no webhook yet
    assert sup.register_webhook("IF-021", hook.url).status_code == 201
    ids = [s["transactionID"] for s in send(fast, cast, 3)]
    hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 3)
    answer = requeue(sup, SUP, {"transactionIDs": [ids[2], ids[0]]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["totalTransactions"] == 2 and answer.headers["x-requeue-id"] == body["requeueId"]
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 5)
    replays = [e for c in calls for e in c.json][3:]
    assert [e["originalWrapper"]["D0"]["transactionID"] for e in replays] == [ids[0], ids[2]]
    assert all(e["payload"]["CommonBlock"]["D0"]["replayIndicator"] is True for e in replays)
    deadline = time.monotonic() + 10
    while (status := requeue_status(sup, SUP, body["requeueId"]).json())["status"] == "Processing":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status == {"percentComplete": 100.0, "totalTransactions": 2, "processedTransactions": 2,
                      "status": "Completed"}
    assert requeue_status(sup, SUP, "nope").status_code == 404
    assert requeue_status(DipClient(fast.url, cast["MDS"]), MDS, body["requeueId"]).status_code == 404
    assert requeue_status(DipClient(fast.url, cast["MDS"]), SUP, body["requeueId"]).status_code == 403


def test_redrive_sends_dead_letters_again_as_they_were(dip_factory: Callable[..., RunningDip],
                                                      hook: WebhookReceiver) -> None:
    dip = dip_factory(retry_initial_seconds=0.1, retry_max_seconds=0.2, delivery_poll_seconds=0.05,
                      dead_letter_after_seconds=1.0)
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
    hook.always(503)
    assert DipClient(dip.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
    ids = [s["transactionID"] for s in send(dip, cast, 2)]

    def mds_states() -> list[str]:
        rows = in_store(dip, lambda store: store.delivery_states(ids))
        return sorted(r[4] for r in rows if r[1] == MDS)

    deadline = time.monotonic() + 15
    while mds_states() != ["dead", "dead"]:
        assert time.monotonic() < deadline, mds_states()
        time.sleep(0.1)
    hook.always(201)
    before = len(hook.calls)
    answer = httpx.post(f"{dip.url}/admin/redrive", headers={"X-API-Key": dip.admin_key},
                        json={"recipientId": MDS, "states": ["dead"]})
    assert answer.status_code == 200 and answer.json() == {"redriven": 2}
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls[before:]) == 2)
    delivered = [e for c in calls[before:] for e in c.json]
    assert [e["payload"]["CommonBlock"]["D0"]["transactionID"] for e in delivered] == ids  # as they were
    assert all(e["payload"]["CommonBlock"]["D0"]["replayIndicator"] is False and "originalWrapper" not in e
               for e in delivered)
    deadline = time.monotonic() + 10
    while mds_states() != ["delivered", "delivered", "redriven", "redriven"]:
        assert time.monotonic() < deadline, mds_states()
        time.sleep(0.05)
    bad = httpx.post(f"{dip.url}/admin/redrive", headers={"X-API-Key": dip.admin_key}, json={"states": ["pending"]})
    assert bad.status_code == 400
    assert httpx.post(f"{dip.url}/admin/redrive", json={}).status_code == 401


def replay_status(client: DipClient, participant: str, request: dict[str, Any], token: str | None = None) -> Response:
    headers = {"X-Continuation-Token": token} if token else None
    return client.post(f"/statusmessage/replay/{participant}", orjson.dumps(request), headers)


def test_a_sender_fetches_its_status_messages_again(fast: RunningDip, cast: dict[str, Identity],
                                                   hook: WebhookReceiver) -> None:
    hook.always(400)  # MDS rejects every message: each rejection is a status message to SDS
    assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
    answers = send(fast, cast, 4)
    ids = [s["transactionID"] for s in answers]
    sds = DipClient(fast.url, cast["SDS"])
    whole_day = {"datetimeFrom": "2000-01-01T00:00:00+00:00", "datetimeTo": "2100-01-01T00:00:00+00:00"}
    deadline = time.monotonic() + 10
    while (answer := replay_status(sds, SDS, whole_day)).status_code != 206:
        assert time.monotonic() < deadline, answer.text  # four status messages, pages of three
        time.sleep(0.05)
    first = answer.json()
    assert [entry["transactionID"] for entry in first] == ids[:3]
    assert all(entry["recipientID"] == SDS and entry["senderID"] == MDS for entry in first)
    rest = replay_status(sds, SDS, whole_day, answer.headers["x-continuation-token"])
    assert rest.status_code == 200 and [entry["transactionID"] for entry in rest.json()] == ids[3:]
    (one,) = replay_status(sds, SDS, {**whole_day, "transactionID": ids[1]}).json()
    assert one["transactionID"] == ids[1]
    by_reference = replay_status(sds, SDS, {**whole_day, "senderUniqueReference": answers[1]["senderUniqueReference"]})
    assert [entry["transactionID"] for entry in by_reference.json()] == [ids[1]]
    assert replay_status(sds, SDS, {"datetimeFrom": "2000-01-01T00:00:00+00:00",
                                    "datetimeTo": "2000-01-02T00:00:00+00:00"}).status_code == 204
    assert replay_status(sds, SDS, {"datetimeFrom": "2000-01-01T00:00:00+00:00"}).status_code == 400
    assert replay_status(DipClient(fast.url, cast["MDS"]), SDS, whole_day).status_code == 403


def test_a_requeue_whose_deliveries_are_refused_for_good_ends_failed(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    sup = DipClient(fast.url, cast["SUP"])
    assert sup.register_webhook("IF-021", hook.url).status_code == 201
    ids = [s["transactionID"] for s in send(fast, cast, 2)]
    hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 2)
    hook.always(404)  # the endpoint is gone: refused for good, not retried
    body = requeue(sup, SUP, {"transactionIDs": ids}).json()
    deadline = time.monotonic() + 10
    while (status := requeue_status(sup, SUP, body["requeueId"]).json())["status"] == "Processing":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status == {"percentComplete": 100.0, "totalTransactions": 2, "processedTransactions": 2,
                      "status": "Failed"}


def test_only_the_recipient_may_requeue_and_bad_requests_are_400(fast: RunningDip, cast: dict[str, Identity],
                                                                 hook: WebhookReceiver) -> None:
    sup = DipClient(fast.url, cast["SUP"])
    assert sup.register_webhook("IF-021", hook.url).status_code == 201
    assert requeue(DipClient(fast.url, cast["MDS"]), SUP, FROM_THE_START).status_code == 403
    bad = requeue(sup, SUP, {"datetimeFrom": "2026-11-23T00:00:01+00:00", "datetimeTo": "2026-11-23T00:00:00+00:00"})
    assert bad.status_code == 400 and "before" in items(bad)[0]["help"]
    empty = requeue(sup, SUP, {"datetimeFrom": "2000-01-01T00:00:00+00:00", "datetimeTo": "2000-01-02T00:00:00+00:00"})
    assert empty.status_code == 200 and empty.json()["totalTransactions"] == 0
    deadline = time.monotonic() + 10  # nothing to append: completed once the appender has looked
    while (status := requeue_status(sup, SUP, empty.json()["requeueId"]).json())["status"] == "Processing":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status == {"percentComplete": 100.0, "totalTransactions": 0, "processedTransactions": 0,
                      "status": "Completed"}
