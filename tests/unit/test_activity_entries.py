"""Masking in the activity log's entries (dip.audit.entries): MPANs, payloads and secrets never
reach the log; the DIP's identifiers and refused messages do."""

from __future__ import annotations

import time

import orjson

from dip.audit.entries import Capture, entry_json, mask_text

MPAN = "1234567890123"


def _entry(body: object, path: str = "/dip-channel/IF-021", query: str = "") -> dict:
    capture = Capture("r1", time.time_ns(), "POST", path, query, "127.0.0.1", status=201,
                      content_type="application/json")
    capture.add_body(orjson.dumps(body))
    return orjson.loads(entry_json(capture, "chain-a", 7)[0])


def test_a_standalone_mpan_keeps_its_distributor_digits_only() -> None:
    assert mask_text(f"MPAN={MPAN}&x=1") == "MPAN=12***********&x=1"
    assert mask_text(f"a{MPAN}") == f"a{MPAN}"  # inside a word (a hex identifier): not an MPAN
    assert mask_text("12345678901234") == "12345678901234"  # 14 digits: not an MPAN
    entry = _entry({"items": [{"MPAN": MPAN, "help": f"no appointment for {MPAN} on that day"}]},
                   query=f"MPAN={MPAN}")
    text = orjson.dumps(entry).decode()
    assert MPAN not in text and "12***********" in text
    assert entry["attributes"]["url.query"] == "MPAN=12***********"


def test_the_dips_identifiers_are_kept_whole_even_when_they_hold_13_digits() -> None:
    reference = f"S-IF-021-1300000001-SDS-20261205-{MPAN}"
    entry = _entry({"messageArray": [{"transactionID": "T-1", "senderUniqueReference": reference,
                                      "message": "MSG1006 - Sender Unique Reference Duplicated", "help": MPAN}],
                    "timestamp": "2026-12-05T00:00:00+00:00"})
    item = entry["body"]["messageArray"][0]
    assert item["senderUniqueReference"] == reference and item["help"] == "12***********"
    assert entry["attributes"]["dip.refused"] == [{"transactionID": "T-1", "senderUniqueReference": reference,
                                                   "message": "MSG1006 - Sender Unique Reference Duplicated"}]


def test_payloads_and_secrets_are_replaced() -> None:
    entry = _entry({"apiKey": "k-secret", "keyId": "abc", "payload": {"CommonBlock": {"name": "A Person"}}},
                   path="/admin/transactions/T-1")
    assert entry["body"]["apiKey"] == "***" and entry["body"]["keyId"] == "abc"
    assert entry["body"]["payload"]["masked"] == "message payload" and "A Person" not in orjson.dumps(entry).decode()


def test_an_all_success_answer_refuses_nothing_and_is_kept_as_sent() -> None:
    body = {"messageArray": [{"transactionID": "T-9", "message": "MSG0000 - Success"}], "timestamp": "t"}
    entry = _entry(body)
    assert entry["body"] == body and entry["attributes"]["dip.refused"] == []
    assert entry["attributes"]["dip.audit.chain"] == "chain-a" and entry["attributes"]["dip.audit.seq"] == 7
