"""The Level 1 schema stage (dip.accept.schema): a batch in, one verdict per message out.

Senders rely on: a valid message is accepted and stored byte for byte as sent; field names
are case-insensitive but values are not; every rejection says what to fix.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip.accept.schema import Checked, canonicalize, check_chunk, common_span, payload_bytes, spec_for, split_batch
from dip.catalogue import Channel, parse_definition
from dip.exceptions import CatalogueError
from dip.schemas import payload_schema

ENV = "DEV"
SUR = "S-IF-909-0123456789-SUP-20261123-ref1"

CUSTOM_BLOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["B001"],
    "properties": {"B001": {"$ref": "#/$defs/installation"}},
    "$defs": {
        "installation": {
            "type": "object",
            "additionalProperties": False,
            "required": ["meterSerial"],
            "properties": {
                "meterSerial": {"$ref": "#/$defs/serial"},
                "registers": {"type": "array", "items": {"$ref": "#/$defs/register"}},
            },
        },
        "serial": {"type": "string", "pattern": "^M[0-9]+$"},
        "register": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"registerID": {"type": "string"}, "reading": {"type": "number"}},
        },
    },
}


def definition(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "publicationID": "PUB-909",
        "title": "Meter technical details",
        "senderRoles": ["SUP"],
        "eventCodes": ["[MeterInstall]", "[MeterRemoval]"],
        "schemaVersions": ["011"],
        "routing": {"primary": ["REGS"]},
        "customBlockSchema": CUSTOM_BLOCK_SCHEMA,
    }
    return {**base, **overrides}


def channel(**overrides: Any) -> Channel:
    return parse_definition("IF-909", json.dumps(definition(**overrides)).encode())


CHANNEL = channel()


def payload(**s1: Any) -> dict[str, Any]:
    return {
        "CommonBlock": {
            "S0": {"interfaceID": "IF-909", "schemaVersion": "011", "eventCode": "[MeterInstall]"},
            "S1": {
                "environmentTag": ENV,
                "subText": None,
                "senderUniqueReference": SUR,
                "senderTimestamp": "2026-11-23T10:15:00+00:00",
                "senderDIPID": "0123456789",
                "senderRoleID": "SUP",
                "senderCorrelationID": None,
                "DIPConnectionProviderID": None,
                **s1,
            },
            "A0": {"primaryRecipients": ["1100000001"], "secondaryRecipients": [], "always": []},
            "M0": {"MPANCore": "1234567890123", "distributorDIPID": "1500000001", "GSPGroupID": "_A"},
        },
        "CustomBlock": {"B001": {"meterSerial": "M123", "registers": [{"registerID": "R1", "reading": 1.5}]}},
    }


def item(p: dict[str, Any]) -> bytes:
    return orjson.dumps({"payload": p})


def check(raw: bytes, ch: Channel | None = None, environment: str = ENV) -> Checked:
    [result] = check_chunk(spec_for(ch or CHANNEL, environment), 0, [raw])
    return result


def passes(raw: bytes, ch: Channel | None = None) -> Checked:
    result = check(raw, ch)
    assert result.code is None, result.help
    return result


def fails(raw: bytes, code: str, ch: Channel | None = None, environment: str = ENV) -> str:
    result = check(raw, ch, environment)
    assert result.code == code, (result.code, result.help)
    assert result.header is None
    assert result.help
    return result.help


# --- valid messages ---------------------------------------------------------------------------------------


def test_valid_message_passes_with_its_header_read() -> None:
    result = passes(item(payload(senderCorrelationID="CI-20261120-abc", DIPConnectionProviderID="1600000001")))

    h = result.header
    assert h is not None
    assert result.sur == SUR
    assert (h.event_code, h.schema_version, h.environment) == ("[MeterInstall]", "011", ENV)
    assert (h.sur, h.sender_timestamp) == (SUR, "2026-11-23T10:15:00+00:00")
    assert (h.sender_id, h.sender_role) == ("0123456789", "SUP")
    assert (h.sender_correlation_id, h.dcp_id) == ("CI-20261120-abc", "1600000001")
    assert h.primary_recipients == ("1100000001",)
    assert h.mpan == "1234567890123"


def test_valid_message_without_optional_blocks_passes() -> None:
    p = payload()
    del p["CommonBlock"]["A0"], p["CommonBlock"]["M0"]

    h = passes(item(p)).header

    assert h is not None
    assert h.primary_recipients == ()
    assert h.mpan is None


def test_compact_item_is_not_re_encoded_and_its_bytes_are_kept_exactly() -> None:
    payload_text = orjson.dumps(payload()).decode()
    raw = ('{"payload":' + payload_text + "}").encode()

    result = passes(raw)

    assert result.payload is None  # sliceable: nothing re-encoded, nothing sent back from a worker
    assert payload_bytes(result, raw) == payload_text.encode()


def test_formatted_item_is_stored_as_the_validated_payload_in_compact_form() -> None:
    payload_text = (
        '{ "CommonBlock" :{"S0":{"interfaceID":"IF-909","schemaVersion":"011","eventCode":"[MeterInstall]"},'
        '\n\t"S1": {"environmentTag":"DEV","subText":"caf\\u00e9  £","senderUniqueReference":"' + SUR + '",'
        '"senderTimestamp":"2026-11-23T10:15:00+00:00","senderDIPID":"0123456789","senderRoleID":"SUP",'
        '"senderCorrelationID":null,"DIPConnectionProviderID":null}},'
        '  "CustomBlock":{"B001":{"meterSerial":"M1","registers":[{"reading":1.50}, {"reading":2e0}]}}   }'
    )
    raw = ('{\n  "payload" :  ' + payload_text + ' \n}').encode()

    result = passes(raw)

    assert result.payload == orjson.dumps(orjson.loads(payload_text))
    assert payload_bytes(result, raw) == result.payload


def test_payload_bytes_of_items_split_from_a_batch_equal_the_validated_payloads() -> None:
    payloads = [payload(senderUniqueReference=f"S-IF-909-0123456789-SUP-20261123-r{i}") for i in range(3)]
    texts = [orjson.dumps(p).decode() for p in payloads]
    texts[1] = texts[1].replace(",", " ,  ")  # one sender formats its JSON
    body = ("[ " + " ,\n".join('{"payload":' + t + "}" for t in texts) + " ]").encode()

    raws = split_batch(body)
    assert isinstance(raws, list)
    results = check_chunk(spec_for(channel(), ENV), 0, raws)

    assert [r.code for r in results] == [None, None, None]
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.payload is None for r in results] == [True, False, True]
    assert [payload_bytes(r, raw) for r, raw in zip(results, raws, strict=True)] == [orjson.dumps(p) for p in payloads]


def test_the_common_blocks_place_in_the_stored_payload_is_found_wherever_it_comes() -> None:
    first = payload()
    last = {"CustomBlock": first["CustomBlock"], "CommonBlock": first["CommonBlock"]}
    for p in (first, last):
        result = passes(item(p))
        stored = payload_bytes(result, item(p))
        assert result.common_span is not None
        start, end = result.common_span
        assert orjson.loads(stored[start:end]) == p["CommonBlock"]
    formatted = ('{ "payload" : ' + json.dumps(first, indent=2) + " }").encode()  # stored re-encoded
    result = passes(formatted)
    assert result.common_span is not None
    start, end = result.common_span
    assert orjson.loads(payload_bytes(result, formatted)[start:end]) == first["CommonBlock"]


def test_no_common_block_place_when_the_payload_is_not_what_was_encoded() -> None:
    p = payload()
    assert common_span(p, orjson.dumps(p)) is not None
    assert common_span(p, orjson.dumps({"CustomBlock": p["CustomBlock"], "CommonBlock": p["CommonBlock"]})) is None
    assert common_span({"CustomBlock": {}}, b'{"CustomBlock":{}}') is None


def test_check_chunk_numbers_results_from_the_chunks_start() -> None:
    results = check_chunk(spec_for(channel(), ENV), 40, [item(payload()), b"[1]"])

    assert [(r.index, r.code) for r in results] == [(40, None), (41, "MSG1001")]


def test_item_with_other_keys_than_payload_yields_the_payload_json() -> None:
    p = payload()
    raw = orjson.dumps({"payload": p, "note": "x"})

    result = passes(raw)

    assert orjson.loads(payload_bytes(result, raw)) == p


def test_item_with_a_duplicated_payload_key_stores_the_validated_payload_or_is_rejected() -> None:
    valid = orjson.dumps(payload())
    raw = b'{"payload": {"unchecked": true}, "payload": ' + valid + b"}"

    result = check(raw)

    if result.code is None:
        assert orjson.loads(payload_bytes(result, raw)) == payload()


# --- field names are case-insensitive, values are not ------------------------------------------------------


def _recase(value: Any, keys: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {keys.get(k, k): _recase(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_recase(v, keys) for v in value]
    return value


def test_keys_in_the_wrong_case_are_accepted_and_stored_in_canonical_spelling() -> None:
    wrong = {"CommonBlock": "commonblock", "S1": "s1", "senderUniqueReference": "SENDERUNIQUEREFERENCE",
             "CustomBlock": "customBlock", "B001": "b001", "meterSerial": "MeterSerial", "reading": "READING"}
    raw = orjson.dumps({"Payload": _recase(payload(), wrong)})

    result = passes(raw)

    assert result.payload is not None  # re-encoded
    assert orjson.loads(result.payload) == payload()
    assert payload_bytes(result, raw) == result.payload
    assert result.header is not None
    assert result.header.sur == SUR


@given(st.randoms(use_true_random=False))
def test_any_casing_of_a_valid_messages_keys_canonicalizes_back_to_it(rng: random.Random) -> None:
    original = payload()

    def recase(value: Any) -> Any:
        if isinstance(value, dict):
            return {"".join(c.swapcase() if rng.random() < 0.3 else c for c in k): recase(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [recase(v) for v in value]
        return value

    raw = item(recase(original))

    result = passes(raw)

    assert orjson.loads(payload_bytes(result, raw)) == original


@pytest.mark.parametrize(
    ("block", "field", "value"),
    [("S1", "environmentTag", "dev"), ("S1", "senderUniqueReference", SUR.lower()), ("M0", "GSPGroupID", "_a")],
)
def test_values_in_the_wrong_case_fail_the_schema(block: str, field: str, value: str) -> None:
    p = payload()
    p["CommonBlock"][block][field] = value

    help_text = fails(item(p), "MSG1001")

    assert help_text.startswith(f"/CommonBlock/{block}/{field}:")


def test_custom_block_value_in_the_wrong_case_fails_with_its_path() -> None:
    p = payload()
    p["CustomBlock"]["B001"]["meterSerial"] = "m123"

    help_text = fails(item(p), "MSG1001")

    assert help_text.startswith("/CustomBlock/B001/meterSerial:")


def test_wrong_case_keys_in_a_custom_block_whose_schema_is_a_root_ref_are_accepted() -> None:
    schema = {"$ref": "#/$defs/block", "$defs": {"block": {
        "type": "object", "additionalProperties": False, "properties": {"B001": {"type": "string"}}}}}
    ch = channel(customBlockSchema=schema)
    p = payload()
    p["CustomBlock"] = {"B001": "x"}
    passes(item(p), ch)  # the exact spelling passes
    p["CustomBlock"] = {"b001": "x"}

    result = passes(item(p), ch)

    assert result.payload is not None
    assert orjson.loads(result.payload)["CustomBlock"] == {"B001": "x"}


# --- rejections ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interface_id", ["IF-908", "if-909", "IF-9090"])
def test_interface_id_not_the_channels_gives_msg1002(interface_id: str) -> None:
    p = payload()
    p["CommonBlock"]["S0"]["interfaceID"] = interface_id

    result = check(item(p))

    assert result.code == "MSG1002"
    assert result.help is not None
    assert interface_id in result.help
    assert "IF-909" in result.help
    assert result.sur == SUR  # for the error response


def test_unknown_event_code_lists_the_valid_ones() -> None:
    p = payload()
    p["CommonBlock"]["S0"]["eventCode"] = "[MeterExplode]"

    help_text = fails(item(p), "MSG1001")

    assert "[MeterExplode]" in help_text
    assert "[MeterInstall], [MeterRemoval]" in help_text


def test_event_code_in_the_wrong_case_is_unknown() -> None:
    p = payload()
    p["CommonBlock"]["S0"]["eventCode"] = "[meterinstall]"

    assert "expected one of [MeterInstall], [MeterRemoval]" in fails(item(p), "MSG1001")


def test_schema_version_not_listed_fails() -> None:
    p = payload()
    p["CommonBlock"]["S0"]["schemaVersion"] = "012"

    assert "/CommonBlock/S0/schemaVersion" in fails(item(p), "MSG1001")


def test_message_for_another_environment_fails_naming_both() -> None:
    help_text = fails(item(payload(environmentTag="PRD")), "MSG1001", environment="DEV")

    assert "'PRD'" in help_text
    assert "'DEV'" in help_text


def test_same_message_passes_in_its_own_environment() -> None:
    assert check(item(payload(environmentTag="PRD")), environment="PRD").code is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{", "not valid JSON"),
        (b"[1]", "each array item must be an object"),
        (b'{"payload": 5}', "each array item must be an object"),
        (b'{"message": {}}', "each array item must be an object"),
    ],
)
def test_item_that_is_not_a_payload_object_fails(raw: bytes, expected: str) -> None:
    assert expected in fails(raw, "MSG1001")


def test_missing_s1_field_fails_naming_it() -> None:
    p = payload()
    del p["CommonBlock"]["S1"]["senderTimestamp"]

    assert "senderTimestamp" in fails(item(p), "MSG1001")


def test_unknown_common_block_field_fails() -> None:
    assert "colour" in fails(item(payload(colour="blue")), "MSG1001")


def test_custom_block_checked_with_local_defs_refs() -> None:
    p = payload()
    p["CustomBlock"]["B001"]["registers"] = [{"registerID": "R1", "reading": "high"}]

    assert fails(item(p), "MSG1001").startswith("/CustomBlock/B001/registers/0/reading:")


def test_custom_block_missing_required_part_fails() -> None:
    p = payload()
    p["CustomBlock"] = {}

    assert "B001" in fails(item(p), "MSG1001")


def test_null_custom_block_schema_accepts_any_object() -> None:
    p = payload()
    p["CustomBlock"] = {"anything": [1, {"goes": True}]}

    passes(item(p), channel(customBlockSchema=None))


# --- payloadSchemas: whole-payload schemas per event code ------------------------------------------------------


def _official_like_schema(custom_block: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(payload_schema(channel(customBlockSchema=None)))
    schema["properties"]["CustomBlock"] = custom_block
    return schema


def test_payload_schemas_are_used_when_present() -> None:
    strict = _official_like_schema({"type": "object", "required": ["Special"]})
    ch = channel(payloadSchemas={"[MeterInstall]": strict, "[MeterRemoval]": strict})
    p = payload()

    assert "Special" in fails(item(p), "MSG1001", ch)  # passes customBlockSchema, fails the payload schema
    p["CustomBlock"] = {"Special": 1}
    passes(item(p), ch)


def test_payload_schema_per_event_code() -> None:
    loose = _official_like_schema({"type": "object"})
    strict = _official_like_schema({"type": "object", "required": ["Special"]})
    ch = channel(payloadSchemas={"[MeterInstall]": loose, "[MeterRemoval]": strict})
    p = payload()
    p["CustomBlock"] = {}

    passes(item(p), ch)
    p["CommonBlock"]["S0"]["eventCode"] = "[MeterRemoval]"
    fails(item(p), "MSG1001", ch)


def test_wildcard_payload_schema_covers_every_event_code() -> None:
    ch = channel(payloadSchemas={"*": _official_like_schema({"type": "object"})})
    p = payload()
    p["CommonBlock"]["S0"]["eventCode"] = "[MeterRemoval]"

    passes(item(p), ch)


def test_loose_payload_schema_without_common_fields_fails_instead_of_crashing() -> None:
    ch = channel(payloadSchemas={"*": {"type": "object"}})
    p = payload()
    del p["CommonBlock"]["S1"]

    assert "common block field missing" in fails(item(p), "MSG1001", ch)


def test_every_listed_event_code_of_an_accepted_definition_can_be_sent() -> None:
    try:
        ch = channel(payloadSchemas={"[MeterInstall]": _official_like_schema({"type": "object"})})
    except CatalogueError:
        return  # refusing such a definition is a fix too
    p = payload()
    p["CommonBlock"]["S0"]["eventCode"] = "[MeterRemoval]"

    result = check(item(p), ch)

    assert result.code is None, result.help


# --- split_batch -------------------------------------------------------------------------------------------------


def test_split_batch_gives_each_items_exact_bytes() -> None:
    items = split_batch(b' [ {"a" : 1} ,\n[2], "x" ] ')

    assert not isinstance(items, str)
    assert [bytes(i) for i in items] == [b'{"a" : 1}', b"[2]", b'"x"']
    assert split_batch(b"[]") == []


@pytest.mark.parametrize("body", [b'{"payload": {}}', b'"text"', b"5", b"null"])
def test_split_batch_rejects_json_that_is_not_an_array(body: bytes) -> None:
    assert split_batch(body) == 'the body must be a JSON array of messages: [{"payload": {...}}, ...]'


@pytest.mark.parametrize("body", [b"", b"[", b'[{"payload": }]', b"[1,]", b"\xff\xfe"])
def test_split_batch_rejects_invalid_json(body: bytes) -> None:
    result = split_batch(body)

    assert isinstance(result, str)
    assert result.startswith("the body is not valid JSON")


# --- canonicalize invariants ---------------------------------------------------------------------------------


SCHEMA = payload_schema(CHANNEL)
SCHEMA_NAMES = sorted({
    "CommonBlock", "CustomBlock", "S0", "S1", "A0", "M0", "interfaceID", "eventCode", "environmentTag",
    "senderUniqueReference", "primaryRecipients", "MPANCore", "B001", "meterSerial", "registers", "registerID",
    "reading",
})


@st.composite
def _case_variants(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True))


keys = st.one_of(st.sampled_from(SCHEMA_NAMES).flatmap(_case_variants), st.text(max_size=6))
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                   st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(keys, children), max_size=5, unique_by=lambda kv: kv[0].lower()).map(dict),
    ),
    max_leaves=30,
)
instances = st.lists(st.tuples(keys, json_values), max_size=4, unique_by=lambda kv: kv[0].lower()).map(dict)


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


@given(instances)
def test_canonicalize_changes_only_the_case_of_keys(instance: dict[str, Any]) -> None:
    canonical = canonicalize(instance, SCHEMA, SCHEMA)

    assert _lower_keys(canonical) == _lower_keys(instance)


@given(instances)
def test_canonicalize_is_idempotent(instance: dict[str, Any]) -> None:
    once = canonicalize(instance, SCHEMA, SCHEMA)

    assert canonicalize(once, SCHEMA, SCHEMA) == once


@given(instances)
def test_canonicalize_does_not_modify_its_input(instance: dict[str, Any]) -> None:
    before = copy.deepcopy(instance)

    canonicalize(instance, SCHEMA, SCHEMA)

    assert instance == before


def test_canonicalize_uses_the_schemas_spelling_at_every_level() -> None:
    instance = {"commonblock": {"s0": {"INTERFACEID": "if-909"}}, "customblock": {"b001": {"REGISTERS": [
        {"registerid": "r1"}]}}, "Unknown": {"keepsCase": 1}}

    assert canonicalize(instance, SCHEMA, SCHEMA) == {
        "CommonBlock": {"S0": {"interfaceID": "if-909"}},
        "CustomBlock": {"B001": {"registers": [{"registerID": "r1"}]}},
        "Unknown": {"keepsCase": 1},
    }
