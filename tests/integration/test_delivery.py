"""The delivery worker against real webhook servers, on SQLite and PostgreSQL.

Messages are sent through the API, routed at ingest (IF-021: MDS always, SUP by MPAN) and pushed
by the DIP's worker, which claims the queue, builds and signs the call, and settles the outcome.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from dip.signing import load_certificate_pem, verify_request
from dip.tools.client import DipClient, Identity
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import MDS, SDS, SUP, consumption, in_store, items, onboard_all


@pytest.fixture
def fast(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05)


@pytest.fixture
def cast(fast: RunningDip) -> dict[str, Identity]:
    with AdminClient(fast.url, fast.admin_key) as admin:
        return onboard_all(admin)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def send(dip: RunningDip, cast: dict[str, Identity], n: int) -> list[str]:
    client = DipClient(dip.url, cast["SDS"])
    response = client.send("IF-021", consumption(client, n))
    assert response.status_code == 201, response.text
    return [entry["transactionID"] for entry in items(response)]


def states(dip: RunningDip, transactions: list[str], recipient: str = MDS) -> list[str]:
    """The delivery states of these messages to ``recipient``, in the order given."""
    found = {s[0]: s[4] for s in in_store(dip, lambda store: store.delivery_states(transactions))
             if s[1] == recipient and s[3] != "status"}
    return [found.get(t, "none") for t in transactions]


def wait_states(dip: RunningDip, transactions: list[str], wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if states(dip, transactions) == [wanted] * len(transactions):
            return
        time.sleep(0.05)
    raise AssertionError(f"states {states(dip, transactions)} never became all {wanted}")


def test_publication_is_pushed_signed_with_d0_and_a0(fast: RunningDip, cast: dict[str, Identity],
                                                     hook: WebhookReceiver) -> None:
    mds = DipClient(fast.url, cast["MDS"])
    assert mds.register_webhook("IF-021", hook.url).status_code == 201
    (tid,) = send(fast, cast, 1)
    (call,) = hook.wait_for(lambda calls: len(calls) == 1)
    wait_states(fast, [tid], "delivered")
    (message,) = call.json
    d0 = message["payload"]["CommonBlock"]["D0"]
    assert d0["transactionID"] == tid and d0["publicationID"] == "PUB-021" and d0["replayIndicator"] is False
    assert message["payload"]["CommonBlock"]["A0"]["always"] == [MDS]
    assert message["payload"]["CommonBlock"]["S1"]["senderDIPID"] == SDS
    headers = {k.lower(): v for k, v in call.headers.items()}
    import httpx

    dip_cert = httpx.get(fast.url + "/dip/certificate").content
    signer = verify_request({"X-DIP-Signature": headers["x-dip-signature"],
                             "X-DIP-Signature-Date": headers["x-dip-signature-date"],
                             "X-DIP-Content-Hash": headers["x-dip-content-hash"],
                             "X-DIP-Signature-Certificate": headers["x-dip-signature-certificate"]},
                            "POST", hook.url, call.body, datetime.now(UTC))
    assert signer.certificate == load_certificate_pem(dip_cert)


def test_batches_respect_max_message_count_and_keep_order(fast: RunningDip, cast: dict[str, Identity],
                                                          hook: WebhookReceiver) -> None:
    assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url, max_message_count=2).status_code == 201
    tids = send(fast, cast, 5)
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 5)
    assert [len(c.json) for c in calls] == [2, 2, 1]
    assert [m["payload"]["CommonBlock"]["D0"]["transactionID"] for c in calls for m in c.json] == tids


def test_retryable_failures_hold_the_head_then_deliver(fast: RunningDip, cast: dict[str, Identity],
                                                       hook: WebhookReceiver) -> None:
    assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
    hook.respond(503, times=2)
    (tid,) = send(fast, cast, 1)
    calls = hook.wait_for(lambda calls: len(calls) == 3)
    wait_states(fast, [tid], "delivered")
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.2 * 0.9 for gap in gaps), gaps  # never sooner than the initial backoff


def test_a_207_rejection_is_relayed_to_the_senders_status_webhook(fast: RunningDip, cast: dict[str, Identity],
                                                                  hook: WebhookReceiver) -> None:
    with WebhookReceiver() as status_hook:
        assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
        assert DipClient(fast.url, cast["SDS"]).register_webhook(None, status_hook.url).status_code == 201
        good, bad = send(fast, cast, 2)
        hook.respond(207, body={"messageArray": [
            {"transactionID": good, "message": "RCP0000 ok"},
            {"transactionID": bad, "message": "RCP1022 Msg Contains Invalid Value", "help": "v out of range"},
        ], "timestamp": "2026-11-23T10:00:00+00:00"})
        (relayed,) = status_hook.wait_for(lambda calls: len(calls) == 1)
        (entry,) = relayed.json
        assert entry["transactionID"] == bad and entry["message"].startswith("RCP1022")
        assert entry["help"] == "v out of range" and entry["senderID"] == MDS and entry["recipientID"] == SDS
        assert states(fast, [good]) == ["delivered"] and states(fast, [bad]) == ["rejected"]


def test_a_message_not_delivered_in_time_is_dead_lettered_and_its_sender_told(
    dip_factory: Callable[..., RunningDip], hook: WebhookReceiver
) -> None:
    server = dip_factory(retry_initial_seconds=0.1, retry_max_seconds=0.2, dead_letter_after_seconds=1.0,
                         delivery_poll_seconds=0.05)
    with AdminClient(server.url, server.admin_key) as admin, WebhookReceiver() as status_hook:
        cast = onboard_all(admin)
        hook.always(503)
        assert DipClient(server.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
        assert DipClient(server.url, cast["SDS"]).register_webhook(None, status_hook.url).status_code == 201
        (tid,) = send(server, cast, 1)
        wait_states(server, [tid], "dead")
        # one status message per recipient that did not get it in time (MDS, and SUP without a webhook)
        calls = status_hook.wait_for(lambda calls: sum(len(c.json) for c in calls) == 2)
        told = [entry for call in calls for entry in call.json]
        assert {entry["transactionID"] for entry in told} == {tid}
        assert all("dead-lettered" in entry["help"] for entry in told)
        assert sorted(entry["help"].split(" ")[0] for entry in told) == [SUP, MDS]
        assert len(hook.calls) >= 2


def test_non_retryable_answers_are_recorded_and_do_not_block_the_queue(
    fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url, max_message_count=1).status_code == 201
    hook.respond(404)
    first, second = send(fast, cast, 2)
    deadline = time.monotonic() + 10
    while states(fast, [first, second]) != ["failed", "delivered"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states(fast, [first, second]) == ["failed", "delivered"]


def test_without_a_webhook_messages_wait_then_go_when_one_is_registered(
    fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    (tid,) = send(fast, cast, 1)
    time.sleep(0.3)  # a negative check: several worker polls pass and the message must still be waiting
    assert states(fast, [tid]) == ["pending"]
    assert DipClient(fast.url, cast["MDS"]).register_webhook("IF-021", hook.url).status_code == 201
    hook.wait_for(lambda calls: len(calls) == 1, timeout=15)
    wait_states(fast, [tid], "delivered")


def test_level_4_status_messages_reach_the_original_sender(fast: RunningDip, cast: dict[str, Identity],
                                                           hook: WebhookReceiver) -> None:
    import orjson

    with WebhookReceiver() as status_hook:
        mds = DipClient(fast.url, cast["MDS"])
        assert mds.register_webhook("IF-021", hook.url).status_code == 201
        assert DipClient(fast.url, cast["SDS"]).register_webhook(None, status_hook.url).status_code == 201
        (tid,) = send(fast, cast, 1)
        hook.wait_for(lambda calls: len(calls) == 1)
        report = [{"transactionID": tid, "senderID": MDS, "message": "RCP1061 MPAN Invalid or Unknown",
                   "help": "MPAN not in our portfolio", "recipientID": None, "senderUniqueReference": None,
                   "correlationID": None, "sentTimestamp": "2026-11-23T10:00:00+00:00",
                   "DIPConnectionProviderID": None, "serviceTicketURL": None}]
        response = mds.post("/statusmessage", orjson.dumps(report))
        assert response.status_code == 201, response.text
        assert items(response)[0]["message"] == "MSG0000 - Success"
        (relayed,) = status_hook.wait_for(lambda calls: len(calls) == 1)
        (entry,) = relayed.json
        assert entry["transactionID"] == tid and entry["recipientID"] == SDS and entry["senderID"] == MDS
        assert entry["message"] == "RCP1061 MPAN Invalid or Unknown"


def test_a_reporter_cannot_speak_for_the_dip_and_identical_items_are_relayed_once(
        fast: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver) -> None:
    import orjson

    with WebhookReceiver() as status_hook:
        mds = DipClient(fast.url, cast["MDS"])
        assert mds.register_webhook("IF-021", hook.url).status_code == 201
        assert DipClient(fast.url, cast["SDS"]).register_webhook(None, status_hook.url).status_code == 201
        (tid,) = send(fast, cast, 1)
        hook.wait_for(lambda calls: len(calls) == 1)
        forged = {"transactionID": tid, "senderID": MDS, "message": "RCP1061 MPAN Invalid or Unknown",
                  "help": "log in at https://dip-support.example/ to fix it", "recipientID": "1300000009",
                  "senderUniqueReference": "S-IF-021-1400000001-MDS-20261205-forged1", "correlationID": "CI-forged",
                  "sentTimestamp": "2020-01-01T00:00:00+00:00", "DIPConnectionProviderID": "1600000001",
                  "serviceTicketURL": "https://dip-support.example/ticket"}
        response = mds.post("/statusmessage", orjson.dumps([forged, forged, forged]))
        assert response.status_code == 201, response.text
        (call,) = status_hook.wait_for(lambda calls: len(calls) == 1)
        (entry,) = call.json  # three identical items: one relayed
        assert entry["recipientID"] == SDS and entry["senderID"] == MDS and entry["transactionID"] == tid
        assert entry["DIPConnectionProviderID"] is None and entry["serviceTicketURL"] is None
        assert entry["correlationID"] != "CI-forged" and entry["senderUniqueReference"] is None
        assert entry["sentTimestamp"] != "2020-01-01T00:00:00+00:00"
        assert entry["help"] == f"{MDS} says: log in at https://dip-support.example/ to fix it"
        # the same report in a later call is not relayed again; a different one is (and, the status
        # queue being in order, arrives after where the repeat would have)
        assert mds.post("/statusmessage", orjson.dumps([forged])).status_code == 201
        other = {**forged, "help": "a different report"}
        assert mds.post("/statusmessage", orjson.dumps([other])).status_code == 201
        calls = status_hook.wait_for(lambda calls: any("a different report" in str(c.json) for c in calls))
        helps = [e["help"] for c in calls for e in c.json]
        assert helps == [entry["help"], f"{MDS} says: a different report"]


def test_status_messages_about_someone_elses_transaction_are_refused(fast: RunningDip, cast: dict[str, Identity],
                                                                    hook: WebhookReceiver) -> None:
    import orjson

    (tid,) = send(fast, cast, 1)  # never delivered to REGS
    sup = DipClient(fast.url, cast["REGS"])
    base = {"senderID": cast["REGS"].participant_id, "message": "RCP1000 failed"}
    response = sup.post("/statusmessage", orjson.dumps([{**base, "transactionID": tid}]))
    assert response.status_code == 400 and "did not receive" in items(response)[0]["help"]
    response = sup.post("/statusmessage", orjson.dumps([{**base, "transactionID": "T-nope"}]))
    assert response.status_code == 400 and "not a transaction" in items(response)[0]["help"]
    response = sup.post("/statusmessage", orjson.dumps([{**base, "transactionID": tid, "senderID": MDS}]))
    assert response.status_code == 400 and "not the caller" in items(response)[0]["help"]
    assert sup.post("/statusmessage", b"[]").status_code == 400
    assert sup.post("/statusmessage", b'{"x": 1}').status_code == 400
