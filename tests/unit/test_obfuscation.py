"""Field obfuscation per recipient role (E2E 4.3.2; API contract ``obfuscation``; dip.egress.obfuscation).

A recipient role must never see the real value of a masked field, the masked message must still
look like the original (same shape, schema-friendly replacements), and the archive keeps the
original: masking never touches the caller's object.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dip.catalogue import parse_definition
from dip.egress.obfuscation import DATE, DATETIME, DIP_ID, mask, masked_value
from dip.pointers import parse_pointer


def masked(payload: Any, *pointers: str) -> Any:
    """``mask`` plus the promise that the argument is left exactly as it was."""
    before = copy.deepcopy(payload)
    result = mask(payload, list(pointers))
    assert payload == before, "mask() modified its argument"
    return result


# ---------------------------------------------------------------------------------------------
# replacement values, one rule at a time


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        ("Smith", "xxxxx"),
        ("a", "x"),
        ("", ""),
        ("with spaces and 123", "x" * len("with spaces and 123")),
        ("£ünïcödé", "x" * 8),
        ("2024-02-29", DATE),
        ("2024-02-29T23:30:00+00:00", DATETIME),
        ("2024-06-01T00:30:00+01:00", DATETIME),
        ("2024-10-27T01:30:00-05:00", DATETIME),
        ("1234567890", DIP_ID),
        ("0000000001", DIP_ID),
        (True, True),
        (False, True),
        (42, 0),
        (-7, 0),
        (3.25, 0),
        (0.0, 0),
        (None, None),
    ],
)
def test_each_leaf_is_replaced_by_its_rule(original: Any, replacement: Any) -> None:
    result = masked({"f": original, "keep": "me"}, "/f")
    assert result == {"f": replacement, "keep": "me"}
    assert type(result["f"]) is type(replacement)


def test_replacement_constants_are_the_spec_values() -> None:
    assert DATE == "1900-01-01"
    assert DATETIME == "1900-01-01T00:00:00+00:00"
    assert DIP_ID == "9999999999"
    assert len(DATETIME) == 25


@pytest.mark.parametrize(
    "value",
    [
        "123456789",  # 9 digits: not a DIP ID
        "12345678901",  # 11 digits
        "12345abcde",  # participant-ID shaped but not numeric
        "2024-02-29 ",  # a date with trailing text
        "2024-02-29T23:30:00Z",  # a date-time, but not the 25-character form
        "2024/02/29",
        " 2024-02-29",
    ],
)
def test_strings_that_only_look_special_become_xs_of_the_same_length(value: str) -> None:
    result = masked({"f": value}, "/f")["f"]
    assert result == "x" * len(value)


def test_objects_and_arrays_are_masked_leaf_by_leaf_keeping_their_shape() -> None:
    payload = {
        "block": {
            "name": "Jo",
            "from": "2024-01-31",
            "at": "2024-01-31T10:00:00+00:00",
            "dip": "1111111111",
            "flag": False,
            "n": 12.5,
            "none": None,
            "list": ["ab", 3, [True, {"deep": "xyz1"}], {}],
            "empty": [],
        },
        "other": {"name": "Jo"},
    }
    result = masked(payload, "/block")
    assert result == {
        "block": {
            "name": "xx",
            "from": DATE,
            "at": DATETIME,
            "dip": DIP_ID,
            "flag": True,
            "n": 0,
            "none": None,
            "list": ["xx", 0, [True, {"deep": "xxxx"}], {}],
            "empty": [],
        },
        "other": {"name": "Jo"},
    }
    assert list(result["block"]) == list(payload["block"]), "key order is kept"


def test_masked_value_on_a_whole_array() -> None:
    assert masked_value(["2024-01-01", 5, None, False, "abc"]) == [DATE, 0, None, True, "xxx"]


# ---------------------------------------------------------------------------------------------
# pointers


def consumption() -> dict[str, Any]:
    return {
        "CustomBlock": {
            "B900": {
                "settlementDayConsumptionPeriods": [
                    {"day": "2024-03-01", "consumptionPeriods": [{"p": 1, "v": 1.5}, {"p": 2, "v": 2.5}]},
                    {"day": "2024-03-02", "consumptionPeriods": [{"p": 1, "v": 3.5}]},
                ]
            }
        }
    }


def test_star_tokens_mask_a_field_in_every_repeated_block() -> None:
    payload = consumption()
    result = masked(payload, "/CustomBlock/B900/settlementDayConsumptionPeriods/*/consumptionPeriods/*/v")
    periods = result["CustomBlock"]["B900"]["settlementDayConsumptionPeriods"]
    assert periods == [
        {"day": "2024-03-01", "consumptionPeriods": [{"p": 1, "v": 0}, {"p": 2, "v": 0}]},
        {"day": "2024-03-02", "consumptionPeriods": [{"p": 1, "v": 0}]},
    ]


def test_star_over_an_empty_array_masks_nothing_and_does_not_fail() -> None:
    payload = {"a": [], "b": "keep"}
    assert masked(payload, "/a/*/x") == payload


def test_numeric_token_masks_one_array_element_only() -> None:
    payload = {"a": ["one", "two", "three"]}
    assert masked(payload, "/a/1") == {"a": ["one", "xxx", "three"]}


def test_star_matches_every_member_of_an_object() -> None:
    payload = {"meters": {"m1": {"serial": "AB1", "kept": 1}, "m2": {"serial": "CD22", "kept": 2}}}
    assert masked(payload, "/meters/*/serial") == {
        "meters": {"m1": {"serial": "xxx", "kept": 1}, "m2": {"serial": "xxxx", "kept": 2}}
    }


@pytest.mark.parametrize(
    ("pointer", "key"),
    [("/a~1b", "a/b"), ("/a~0b", "a~b"), ("/~01", "~1"), ("/~10", "/0"), ("/~0~1", "~/")],
)
def test_escaped_pointer_tokens_address_keys_with_slash_and_tilde(pointer: str, key: str) -> None:
    payload = {"a/b": "s1", "a~b": "s2", "~1": "s3", "/0": "s4", "~/": "s5", "a": {"b": "trap"}}
    result = masked(payload, pointer)
    assert result[key] == "xx"
    assert {k: v for k, v in result.items() if k != key} == {k: v for k, v in payload.items() if k != key}


def test_parse_pointer_follows_rfc_6901() -> None:
    assert parse_pointer("") == ()
    assert parse_pointer("/") == ("",)
    assert parse_pointer("/a~1b/~0/c") == ("a/b", "~", "c")
    with pytest.raises(ValueError, match="must start with '/'"):
        parse_pointer("a/b")


@pytest.mark.parametrize(
    "pointer",
    [
        "/missing",
        "/CustomBlock/B999/x",
        "/CustomBlock/B900/settlementDayConsumptionPeriods/7/day",  # index past the end
        "/CustomBlock/B900/settlementDayConsumptionPeriods/-/day",  # RFC 6901 "past the end"
        "/CustomBlock/B900/settlementDayConsumptionPeriods/x/day",  # not an index
        "/CustomBlock/B900/settlementDayConsumptionPeriods/0/day/deeper",  # through a string
        "/CustomBlock/B900/settlementDayConsumptionPeriods/*/nothing",
    ],
)
def test_a_pointer_that_does_not_resolve_masks_nothing(pointer: str) -> None:
    payload = consumption()
    assert masked(payload, pointer) == consumption()


def test_a_superscript_digit_token_on_an_array_masks_nothing() -> None:
    channel = parse_definition("IF-909", _definition_with_obfuscation(["/list/²"]))
    payload = {"list": ["a", "b"]}
    assert masked(payload, *channel.definition.obfuscation["SUP"]) == payload


def _definition_with_obfuscation(pointers: list[str]) -> bytes:
    return orjson.dumps(
        {
            "publicationID": "PUB-909",
            "title": "t",
            "senderRoles": ["MSS"],
            "eventCodes": ["[Appointment]"],
            "schemaVersions": ["011"],
            "obfuscation": {"SUP": pointers},
        }
    )


def test_the_input_is_never_modified_and_unmasked_siblings_are_identical() -> None:
    payload = {
        "M0": {"MPANCore": "1234567890123"},
        "CustomBlock": {
            "B001": {"meteringServiceID": "1234567890", "name": "Acme", "effectiveFromDate": "2024-05-01"},
            "B002": [{"serial": "S1", "reading": 10}, {"serial": "S2", "reading": 20}],
        },
    }
    before = copy.deepcopy(payload)
    result = mask(payload, ["/CustomBlock/B001/meteringServiceID", "/CustomBlock/B002/*/serial", "/M0"])
    assert payload == before
    assert result["CustomBlock"]["B001"] == {
        "meteringServiceID": DIP_ID,
        "name": "Acme",
        "effectiveFromDate": "2024-05-01",
    }
    assert result["CustomBlock"]["B002"] == [{"serial": "xx", "reading": 10}, {"serial": "xx", "reading": 20}]
    assert result["M0"] == {"MPANCore": "x" * 13}
    # a second call on the untouched original gives the same answer
    assert mask(payload, ["/CustomBlock/B001/meteringServiceID", "/CustomBlock/B002/*/serial", "/M0"]) == result


def test_no_pointers_returns_an_equal_payload() -> None:
    payload = consumption()
    assert masked(payload) == consumption()


def test_masking_twice_in_one_call_equals_masking_once() -> None:
    payload = {"a": {"b": "2024-01-01", "c": "text"}}
    assert masked(payload, "/a/b", "/a", "/a/c") == {"a": {"b": DATE, "c": "xxxx"}}


# ---------------------------------------------------------------------------------------------
# properties

_keys = st.text(alphabet=st.sampled_from("ab*~/0129-_ "), min_size=0, max_size=4)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    # any text, but the only digits are ASCII ones (what dates and DIP IDs are made of)
    st.text(st.one_of(st.characters(exclude_categories=["Nd", "Cs"]), st.sampled_from("0123456789")), max_size=12),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.sampled_from(["xxx", DATE, DATETIME, DIP_ID]),
)
_json = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
    ),
    max_leaves=25,
)
_containers = st.one_of(st.lists(_json, min_size=1, max_size=4), st.dictionaries(_keys, _json, min_size=1, max_size=4))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _pointer(path: tuple[Any, ...]) -> str:
    return "".join("/" + _escape(str(step)) for step in path)


def _leaf_replacement(value: Any) -> Any:
    """The spec's replacement for one leaf, written independently of the module."""
    if value is None:
        return None
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return 0
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}", value):
        return DATETIME
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return DATE
    if re.fullmatch(r"[0-9]{10}", value):
        return DIP_ID
    return "x" * len(value)


@st.composite
def payload_and_leaf_paths(draw: st.DrawFn) -> tuple[Any, list[tuple[Any, ...]]]:
    payload = draw(_containers)
    paths = [p for p in _leaf_paths(payload) if p]
    # "*" keys in objects would make a pointer ambiguous (the token then means the key itself)
    paths = [p for p in paths if "*" not in p]
    chosen = draw(st.lists(st.sampled_from(paths), max_size=5, unique=True)) if paths else []
    return payload, chosen


@settings(max_examples=300)
@given(payload_and_leaf_paths())
def test_no_masked_leaf_keeps_its_value_and_nothing_else_changes(case: tuple[Any, list[tuple[Any, ...]]]) -> None:
    payload, paths = case
    before = copy.deepcopy(payload)
    result = mask(payload, [_pointer(p) for p in paths])
    assert payload == before
    chosen = set(paths)
    for path in _leaf_paths(payload):
        original, now = _get(payload, path), _get(result, path)
        if path in chosen:
            expected = _leaf_replacement(original)
            assert now == expected and type(now) is type(expected)
            assert now != original or original == expected
            if isinstance(original, str):
                assert len(now) == len(original) or now in (DATE, DATETIME, DIP_ID)
        else:
            assert now == original and type(now) is type(original)
    assert _leaf_paths(result) == _leaf_paths(payload), "the shape is kept"


@settings(max_examples=300)
@given(_containers, st.data())
def test_masking_is_idempotent(payload: Any, data: st.DataObject) -> None:
    paths = [p for p in _leaf_paths(payload) if p] + [()]
    # any prefix of a leaf path (whole objects too), plus "*" in place of any step
    prefixes = sorted({p[:i] for p in paths for i in range(1, len(p) + 1)}, key=repr)
    pointers = []
    for prefix in data.draw(st.lists(st.sampled_from(prefixes), max_size=4)) if prefixes else []:
        stars = data.draw(st.lists(st.booleans(), min_size=len(prefix), max_size=len(prefix)))
        pointers.append(
            "".join("/" + ("*" if star else _escape(str(step))) for step, star in zip(prefix, stars, strict=True))
        )
    once = mask(payload, pointers)
    assert mask(once, pointers) == once


@given(_json)
def test_masking_the_whole_document_leaves_no_original_string(payload: Any) -> None:
    result = mask(payload, [""])
    for path in _leaf_paths(payload):
        original, now = _get(payload, path), _get(result, path)
        assert now == _leaf_replacement(original)
