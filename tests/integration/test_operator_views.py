"""What an operator can see of delivery through the operator API, on SQLite and PostgreSQL:
what became of one message for each recipient, and the state of every recipient queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from dip.tools.client import DipClient, Identity
from dip.tools.samples import mpan_core
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import MDS, SDS, SUP, consumption, items, onboard_all


@pytest.fixture
def fast(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05)


@pytest.fixture
def operator(fast: RunningDip) -> Iterator[AdminClient]:
    with AdminClient(fast.url, fast.admin_key) as admin:
        yield admin


@pytest.fixture
def cast(operator: AdminClient) -> dict[str, Identity]:
    return onboard_all(operator)


def send(dip: RunningDip, cast: dict[str, Identity], n: int) -> tuple[list[str], list[dict[str, Any]]]:
    client = DipClient(dip.url, cast["SDS"])
    messages = consumption(client, n)
    response = client.send("IF-021", messages)
    assert response.status_code == 201, response.text
    return [entry["transactionID"] for entry in items(response)], messages


def poll(fetch: Callable[[], httpx.Response], done: Callable[[Any], bool], timeout: float = 10) -> Any:
    """The first answer (200, JSON) for which ``done`` holds, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = fetch()
        assert response.status_code == 200, response.text
        if done(response.json()):
            return response.json()
        assert time.monotonic() < deadline, f"never came about; last answer {response.json()}"
        time.sleep(0.05)


def by_recipient(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["recipientID"]: d for d in found["deliveries"] if d["kind"] != "status"}


def test_an_operator_sees_what_became_of_a_message_for_each_recipient(
        fast: RunningDip, cast: dict[str, Identity], operator: AdminClient) -> None:
    with WebhookReceiver() as good, WebhookReceiver(default_status=404) as gone:
        assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", good.url).status_code == 201
        assert DipClient(fast.url, cast["SUP"]).register_webhook("IF-021", gone.url).status_code == 201
        (tid,), (sent,) = send(fast, cast, 1)
        found = poll(lambda: operator.http.get(f"/admin/transactions/{tid}"),
                     lambda body: {d["state"] for d in by_recipient(body).values()} == {"delivered", "failed"})
    assert found["transactionID"] == tid and found["interfaceID"] == "IF-021"
    assert (found["senderID"], found["senderRole"]) == (SDS, "SDS")
    assert found["senderUniqueReference"] == sent["CommonBlock"]["S1"]["senderUniqueReference"]
    assert found["MPANCore"] == mpan_core(0) and datetime.fromisoformat(found["receivedAt"]).tzinfo is not None
    mds, sup = by_recipient(found)[MDS], by_recipient(found)[SUP]
    assert (mds["role"], mds["kind"], mds["state"], mds["attempts"], mds["lastStatus"]) == (
        "MDS", "always", "delivered", 1, 201)
    assert (sup["role"], sup["kind"], sup["state"], sup["attempts"], sup["lastStatus"]) == (
        "SUP", "secondary", "failed", 1, 404)
    assert datetime.fromisoformat(mds["doneAt"]) >= datetime.fromisoformat(found["receivedAt"])
    assert "payload" not in found  # only on request: the archive's copy, as accepted
    with_payload = operator.http.get(f"/admin/transactions/{tid}", params={"payload": "true"}).json()
    assert with_payload["payload"] == sent


def test_an_unknown_transaction_is_404_and_the_views_need_the_admin_key(fast: RunningDip,
                                                                         operator: AdminClient) -> None:
    assert operator.http.get("/admin/transactions/T-IF-021-1300000001-SDS-20261202-00ff").status_code == 404
    for path in ("/admin/transactions/T-IF-021-1300000001-SDS-20261202-00ff", "/admin/queues"):
        assert httpx.get(fast.url + path).status_code == 401
        assert httpx.get(fast.url + path, headers={"X-API-Key": "not-a-key"}).status_code == 401


def test_queues_show_their_backlog_and_backoff(fast: RunningDip, cast: dict[str, Identity],
                                               operator: AdminClient) -> None:
    tids, _ = send(fast, cast, 3)  # no webhooks yet: the messages wait in their queues
    accepted = datetime.fromisoformat(operator.http.get(f"/admin/transactions/{tids[0]}").json()["receivedAt"])
    queues = {q["queue"]: q for q in poll(lambda: operator.http.get("/admin/queues"),
                                          lambda body: len(body["queues"]) == 2)["queues"]}
    mds = queues[f"{MDS}|IF-021"]
    assert (mds["recipientID"], mds["interfaceID"], mds["pending"]) == (MDS, "IF-021", 3)
    assert datetime.fromisoformat(mds["oldestPendingAcceptedAt"]) == accepted
    assert queues[f"{SUP}|IF-021"]["pending"] == 3
    with WebhookReceiver() as hook:
        hook.always(503)
        assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
        (backing_off,) = poll(lambda: operator.http.get("/admin/queues", params={"recipient": MDS}),
                              lambda body: body["queues"][0]["retries"] >= 2)["queues"]
        assert backing_off["pending"] == 3 and backing_off["lastStatus"] == 503
        assert datetime.fromisoformat(backing_off["nextAttemptAt"]).tzinfo is not None and not backing_off["idle"]
        hook.always(201)
        (drained,) = poll(lambda: operator.http.get("/admin/queues", params={"recipient": MDS}),
                          lambda body: body["queues"][0]["pending"] == 0)["queues"]
    assert drained["retries"] == 0 and drained["oldestPendingAcceptedAt"] is None
    # the call took all three: the queue is idle, not looked at again until a message comes
    assert drained["idle"] and drained["nextAttemptAt"] is None
    assert operator.http.get("/admin/queues", params={"recipient": "nobody"}).json() == {"queues": []}


@pytest.mark.parametrize("odd", ["x" * 5000, "%F0%9F%92%A9", "..%2F..%2Fetc", "T-IF-021-%25"])
def test_odd_transaction_ids_are_simply_not_found(operator: AdminClient, odd: str) -> None:
    assert operator.http.get(f"/admin/transactions/{odd}").status_code == 404


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/admin/transactions/%00"), ("GET", "/admin/transactions/T-%00-x"), ("GET", "/admin/queues?recipient=%00"),
    ("DELETE", "/admin/channels/IF-%00"), ("GET", "/admin/participants/1000000001%00"),
    ("POST", "/dip-channel/IF-021%00"), ("DELETE", "/statusmessage/config/1000000001%00"),
])
def test_a_nul_character_in_the_path_or_query_is_a_bad_request_on_both_stores(
        operator: AdminClient, method: str, path: str) -> None:
    answer = operator.http.request(method, path)
    assert answer.status_code == 400 and "NUL" in answer.text, (answer.status_code, answer.text)


def test_text_the_database_cannot_hold_is_refused_not_an_outage(operator: AdminClient) -> None:
    # a NUL in a participant's name: refused by the operator API's own rule on both stores
    # (before, PostgreSQL refused it and the DIP answered 503 as if the database were down)
    answer = operator.http.put("/admin/participants/1900000001", json={"name": "Acme\u0000", "roles": ["SUP"]})
    assert answer.status_code == 400, answer.text
    assert operator.http.get("/admin/participants/1900000001").status_code == 404


def test_the_dead_letter_queue_lists_what_was_not_delivered_in_time_a_page_at_a_time(
        dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05,
                      dead_letter_after_seconds=1.0)
    with AdminClient(dip.url, dip.admin_key) as operator, WebhookReceiver() as mds_hook, \
            WebhookReceiver() as sds_status:
        cast = onboard_all(operator)
        assert DipClient(dip.url, cast["MDS"]).register_webhook("IF-021", mds_hook.url).status_code == 201
        assert DipClient(dip.url, cast["SDS"]).register_webhook(None, sds_status.url).status_code == 201
        tids, _ = send(dip, cast, 5)  # SUP has no webhook: its copies wait, then are dead-lettered
        told = sds_status.wait_for(lambda calls: sum(len(c.json) for c in calls) == 5)
        assert sorted(m["transactionID"] for c in told for m in c.json) == sorted(tids)
        # the status messages telling the sender were delivered, so only SUP's copies are listed
        listing = poll(lambda: operator.http.get("/admin/undelivered"),
                       lambda body: len(body["deliveries"]) == 5)
        assert listing["next"] is None
        dead = listing["deliveries"]
        assert [d["transactionID"] for d in dead] == tids  # in the order they were queued
        assert {(d["recipientID"], d["role"], d["kind"], d["state"], d["interfaceID"], d["senderID"])
                for d in dead} == {(SUP, "SUP", "secondary", "dead", "IF-021", SDS)}
        assert all(datetime.fromisoformat(d["doneAt"]) > datetime.fromisoformat(d["acceptedAt"]) for d in dead)
        mds_hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 5)  # MDS got them all

        first = operator.http.get("/admin/undelivered", params={"limit": 2}).json()
        assert [d["transactionID"] for d in first["deliveries"]] == tids[:2] and first["next"] is not None
        second = operator.http.get("/admin/undelivered", params={"limit": 2, "after": first["next"]}).json()
        assert [d["transactionID"] for d in second["deliveries"]] == tids[2:4]
        third = operator.http.get("/admin/undelivered", params={"limit": 2, "after": second["next"]}).json()
        assert [d["transactionID"] for d in third["deliveries"]] == tids[4:] and third["next"] is None

        assert len(operator.http.get("/admin/undelivered", params={"recipient": SUP}).json()["deliveries"]) == 5
        assert operator.http.get("/admin/undelivered", params={"recipient": MDS}).json()["deliveries"] == []
        assert len(operator.http.get("/admin/undelivered", params={"channel": "if-021"}).json()["deliveries"]) == 5
        assert operator.http.get("/admin/undelivered", params={"channel": "IF-005"}).json()["deliveries"] == []
        assert operator.http.get("/admin/undelivered", params={"state": "failed"}).json()["deliveries"] == []


def test_webhooks_that_refuse_for_good_or_reject_are_listed_by_state(
        fast: RunningDip, cast: dict[str, Identity], operator: AdminClient) -> None:
    with WebhookReceiver(default_status=404) as gone, WebhookReceiver(default_status=400) as picky:
        assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", gone.url).status_code == 201
        assert DipClient(fast.url, cast["SUP"]).register_webhook("IF-021", picky.url).status_code == 201
        (tid,), _ = send(fast, cast, 1)
        (failed,) = poll(lambda: operator.http.get("/admin/undelivered", params={"state": "failed"}),
                         lambda body: len(body["deliveries"]) == 1)["deliveries"]
        (rejected,) = poll(lambda: operator.http.get("/admin/undelivered", params={"state": "rejected"}),
                           lambda body: len(body["deliveries"]) == 1)["deliveries"]
    assert (failed["transactionID"], failed["recipientID"], failed["lastStatus"]) == (tid, MDS, 404)
    assert (rejected["transactionID"], rejected["recipientID"], rejected["lastStatus"]) == (tid, SUP, 400)
    assert operator.http.get("/admin/undelivered").json() == {"deliveries": [], "next": None}


@pytest.mark.parametrize("query", [
    {"state": "pending"}, {"state": "delivered"}, {"limit": "0"}, {"limit": "1001"}, {"after": "-1"},
    {"after": "x"}, {"channel": "IF-02"}, {"channel": "nonsense"}, {"recipient": "x" * 21},
])
def test_undelivered_refuses_parameters_out_of_range(operator: AdminClient, query: dict[str, str]) -> None:
    response = operator.http.get("/admin/undelivered", params=query)
    assert response.status_code == 400, response.text


def test_undelivered_needs_the_admin_key(fast: RunningDip) -> None:
    assert httpx.get(fast.url + "/admin/undelivered").status_code == 401
