"""The MessageRequest rules (replay and requeue), the replay identifiers, and a replayed element."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from dip import ids
from dip.archive.selection import MessageRequest, RequestProblem, parse_message_request
from dip.egress.body import Publication, Replayed, egress_element

NOV_23 = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp()) * 1_000_000


def parse(**fields: object) -> MessageRequest:
    return parse_message_request(orjson.dumps(fields))


def test_a_range_and_filters() -> None:
    r = parse(datetimeFrom="2026-11-23T00:00:00+00:00", datetimeTo="2026-11-23T01:00:00+01:00", eventCode="[X]",
              MPAN="1234567890123", version="011")
    assert r.start == NOV_23
    assert r.end == NOV_23 + 999_999  # the whole last second: "to" is inclusive
    assert (r.event_code, r.mpan, r.version, r.transaction_ids) == ("[X]", "1234567890123", "011", ())
    sel = r.selection("P|IF-021", now=5)
    assert (sel.queue, sel.start, sel.end) == ("P|IF-021", NOV_23, NOV_23 + 999_999)


def test_no_end_means_up_to_now_and_ids_alone_mean_from_the_beginning() -> None:
    assert parse(datetimeFrom="2026-11-23T00:00:00+00:00").selection("q", now=NOV_23 + 7).end == NOV_23 + 7
    by_ids = parse(transactionIDs=["T-1", "T-2", "T-1"])
    assert by_ids.transaction_ids == ("T-1", "T-2")  # a repeated ID once
    assert by_ids.selection("q", now=9)[1:3] == (0, 9)


def test_keys_are_case_insensitive_and_nulls_mean_no_filter() -> None:
    r = parse(DATETIMEFROM="2026-11-23T00:00:00+00:00", mpan=None, EventCode=None)
    assert r.start == NOV_23 and r.mpan is None and r.event_code is None


@pytest.mark.parametrize(("fields", "says"), [
    ({}, "give transactionIDs, or datetimeFrom"),
    ({"datetimeTo": "2026-11-23T00:00:00+00:00"}, "give transactionIDs, or datetimeFrom"),
    ({"transactionIDs": []}, "1 to 100"),
    ({"transactionIDs": [f"T-{i}" for i in range(101)]}, "1 to 100"),
    ({"transactionIDs": [5]}, "transaction IDs"),
    ({"transactionIDs": "T-1"}, "1 to 100"),
    ({"datetimeFrom": "2026-11-23"}, "25 characters"),
    ({"datetimeFrom": "2026-11-23T00:00:00Z"}, "25 characters"),
    ({"datetimeFrom": "2026-13-23T00:00:00+00:00"}, "not a valid date-time"),
    ({"datetimeFrom": "2026-11-23T00:00:01+00:00", "datetimeTo": "2026-11-23T00:00:00+00:00"}, "before"),
    ({"datetimeFrom": "2026-11-23T00:00:00+00:00", "MPAN": "123"}, "13 digits"),
    ({"datetimeFrom": "2026-11-23T00:00:00+00:00", "eventCode": ""}, "1 to 50"),
    ({"datetimeFrom": "2026-11-23T00:00:00+00:00", "version": "x" * 11}, "1 to 10"),
    ({"datetimeFrom": "2026-11-23T00:00:00+00:00", "recipient": "x"}, "unknown field 'recipient'"),
])
def test_bad_requests_say_what_to_fix(fields: dict[str, object], says: str) -> None:
    with pytest.raises(RequestProblem, match=says.replace("(", r"\(")):
        parse(**fields)


@pytest.mark.parametrize("body", [b"", b"[1]", b"not json", b'"x"'])
def test_a_body_that_is_no_object(body: bytes) -> None:
    with pytest.raises(RequestProblem):
        parse_message_request(body)


def test_the_canonical_form_round_trips_and_hashes_one_meaning_once() -> None:
    r = parse(transactionIDs=["T-2", "T-1"], datetimeFrom="2026-11-23T00:00:00+00:00")
    assert MessageRequest.from_canonical(r.canonical()).selection("q", 1) == r.selection("q", 1)
    assert r.digest() == parse(transactionids=["T-1", "T-2"], datetimeFrom="2026-11-23T00:00:00+00:00").digest()
    assert r.digest() != parse(transactionIDs=["T-1"], datetimeFrom="2026-11-23T00:00:00+00:00").digest()


def test_replay_transaction_ids_keep_interface_sender_and_role() -> None:
    moment = datetime(2026, 12, 5, 10, tzinfo=UTC)
    original = "T-IF-021-1300000001-SDS-20261123-0123456789ab0123456789ab"
    (new,) = ids.replay_transaction_ids([original], moment)
    assert new.startswith("T-IF-021-1300000001-SDS-20261205-") and new != original
    assert len(new) == len(original)
    two = ids.replay_transaction_ids([original, original], moment)
    assert len(set(two)) == 2


def test_reply_correlation_ids_fit_in_60_characters() -> None:
    assert ids.reply_correlation_id("CI-20261123-abc", "T-x-20261205-def") == "R-CI-20261123-abc"
    long = "C" * 60
    assert ids.reply_correlation_id(long, "T-x-20261205-def") == ("R-" + long)[:60]
    assert ids.reply_correlation_id(None, "T-IF-021-1300000001-SDS-20261205-0a1b") == "R-20261205-0a1b"


def test_a_replayed_element_has_a_new_wrapper_and_the_original_beside_the_payload() -> None:
    payload = orjson.dumps({"CommonBlock": {"S0": {"interfaceID": "IF-021"}, "A0": {"primaryRecipients": []}},
                            "CustomBlock": {"x": "abc"}})
    replay = Replayed("T-NEW", NOV_23, "R-CI-1")
    p = Publication("T-OLD", "PUB-021", payload, NOV_23 - 86_400_000_000, "CI-1", "SUP", ("1000000001",), (), replay,
                    common_span=(payload.index(b'{"S0"'), payload.index(b',"CustomBlock"')))
    element = orjson.loads(egress_element(p, (), "https://t/T-OLD"))
    assert set(element) == {"payload", "originalWrapper"}
    d0 = element["payload"]["CommonBlock"]["D0"]
    assert d0 == {"transactionID": "T-NEW", "transactionTimestamp": "2026-11-23T00:00:00+00:00",
                  "publicationID": "PUB-021", "initialCorrelationID": "R-CI-1", "replayIndicator": True,
                  "serviceTicketURL": "https://t/T-OLD"}
    assert element["originalWrapper"] == {"D0": {
        "transactionID": "T-OLD", "transactionTimestamp": "2026-11-22T00:00:00+00:00", "publicationID": "PUB-021",
        "initialCorrelationID": "CI-1", "replayIndicator": False, "serviceTicketURL": "https://t/T-OLD"}}
    assert element["payload"]["CustomBlock"] == {"x": "abc"}
    # masked, the same wrapper: the slow path builds it too
    masked = orjson.loads(egress_element(p, ("/CustomBlock/x",), None))
    assert masked["payload"]["CommonBlock"]["D0"]["transactionID"] == "T-NEW"
    assert masked["originalWrapper"]["D0"]["transactionID"] == "T-OLD"
    assert masked["payload"]["CustomBlock"]["x"] == "xxx"
