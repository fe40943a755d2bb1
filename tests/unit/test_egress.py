"""What a recipient receives: D0, A0 and masking on a copy of the stored message."""

from __future__ import annotations

import orjson

from dip.accept.schema import common_span
from dip.egress.body import Publication, Replayed, egress_body, egress_element, egress_payload

STORED = {
    "CommonBlock": {
        "S0": {"interfaceID": "IF-021", "schemaVersion": "011", "eventCode": "[ActivePower]"},
        "S1": {"senderDIPID": "1300000001", "senderRoleID": "SDS"},
        "A0": {"primaryRecipients": [], "secondaryRecipients": [], "always": []},
        "M0": {"MPANCore": "1200000000009", "distributorDIPID": "1500000001", "GSPGroupID": "_A"},
    },
    "CustomBlock": {"B044": {"issuingDataServiceDIPID": "1300000001"}, "B900": {"v": ["1.000", "2.000"]}},
}


def publication(role: str = "SUP", **kw: object) -> Publication:
    base: dict[str, object] = dict(
        transaction_id="T-IF-021-1300000001-SDS-20261123-abc", publication_id="PUB-021",
        payload=orjson.dumps(STORED), received_at=1_795_000_000_000_000, correlation_id=None, role=role,
        secondary_ids=("1000000001", "1500000001"), always_ids=("1400000001",))
    base.update(kw)
    return Publication(**base)  # type: ignore[arg-type]


def test_d0_and_a0_are_added() -> None:
    out = egress_payload(publication(), [], "https://desk/T")
    assert out["CommonBlock"]["D0"] == {
        "transactionID": "T-IF-021-1300000001-SDS-20261123-abc",
        "transactionTimestamp": "2026-11-18T11:06:40+00:00",
        "publicationID": "PUB-021",
        "initialCorrelationID": None,
        "replayIndicator": False,
        "serviceTicketURL": "https://desk/T",
    }
    assert out["CommonBlock"]["A0"] == {"primaryRecipients": [], "secondaryRecipients": ["1000000001", "1500000001"],
                                        "always": ["1400000001"]}
    assert out["CustomBlock"] == STORED["CustomBlock"]


def test_a0_is_created_when_the_sender_sent_none_and_replays_are_marked() -> None:
    stored = {k: v for k, v in STORED.items()}
    stored["CommonBlock"] = {k: v for k, v in STORED["CommonBlock"].items() if k != "A0"}
    replay = Replayed("T-NEW", 1_763_464_000_000_000, "R-CI-20261123-ab")
    out = egress_payload(publication(payload=orjson.dumps(stored), replay=replay, correlation_id="CI-20261123-ab"),
                         [], None)
    assert out["CommonBlock"]["A0"]["primaryRecipients"] == []
    assert out["CommonBlock"]["D0"]["replayIndicator"] is True
    assert out["CommonBlock"]["D0"]["transactionID"] == "T-NEW"
    assert out["CommonBlock"]["D0"]["initialCorrelationID"] == "R-CI-20261123-ab"


def test_masking_is_per_recipient_and_leaves_the_stored_bytes_alone() -> None:
    p = publication()
    masked = egress_payload(p, ["/CustomBlock/B044/issuingDataServiceDIPID", "/CustomBlock/B900/v/*"], None)
    plain = egress_payload(p, [], None)
    assert masked["CustomBlock"] == {"B044": {"issuingDataServiceDIPID": "9999999999"}, "B900": {"v": ["xxxxx"] * 2}}
    assert plain["CustomBlock"] == STORED["CustomBlock"]
    assert orjson.loads(p.payload) == STORED


def test_egress_body_is_a_message_array_in_order() -> None:
    first, second = publication(transaction_id="T-1"), publication(transaction_id="T-2")
    body = orjson.loads(egress_body([(first, [], None), (second, ["/CustomBlock/B044"], None)]))
    assert [m["payload"]["CommonBlock"]["D0"]["transactionID"] for m in body] == ["T-1", "T-2"]
    assert body[1]["payload"]["CustomBlock"]["B044"] == {"issuingDataServiceDIPID": "9999999999"}


def test_with_the_common_blocks_place_known_the_element_is_the_same_message() -> None:
    """Delivery splices A0 and D0 into the common block and copies the rest as stored."""
    custom_first = {"CustomBlock": STORED["CustomBlock"], "CommonBlock": STORED["CommonBlock"]}
    for stored in (STORED, custom_first):
        encoded = orjson.dumps(stored)
        span = common_span(stored, encoded)
        assert span is not None
        spliced = egress_element(publication(payload=encoded, common_span=span), [], "https://desk/T")
        whole = egress_element(publication(payload=encoded), [], "https://desk/T")
        assert orjson.loads(spliced) == orjson.loads(whole) == {"payload": egress_payload(
            publication(payload=encoded), [], "https://desk/T")}
        assert spliced.endswith(orjson.dumps(STORED["CustomBlock"]) + b"}}") or stored is custom_first


def test_a_wrong_common_block_place_falls_back_to_reading_the_whole_message() -> None:
    encoded = orjson.dumps(STORED)
    for span in ((0, 5), (20, 60), (len(encoded) - 3, len(encoded))):
        out = orjson.loads(egress_element(publication(payload=encoded, common_span=span), [], None))
        assert out == {"payload": egress_payload(publication(payload=encoded), [], None)}


def test_masked_roles_get_the_masked_copy_even_with_the_place_known() -> None:
    encoded = orjson.dumps(STORED)
    p = publication(payload=encoded, common_span=common_span(STORED, encoded))
    out = orjson.loads(egress_element(p, ["/CustomBlock/B044/issuingDataServiceDIPID"], None))
    assert out["payload"]["CustomBlock"]["B044"] == {"issuingDataServiceDIPID": "9999999999"}
