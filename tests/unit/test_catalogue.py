"""Channel definitions as the operator PUTs them (API-CONTRACT.md section 2; dip.catalogue).

An operator changes channels live, so a bad definition must be refused with a message that
says what is wrong, and a good one must be taken exactly as written.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip.catalogue import Catalogue, parse_definition
from dip.exceptions import CatalogueError

# The example of API-CONTRACT.md section 2, verbatim.
CONTRACT_EXAMPLE = """{
  "publicationID": "PUB-909",
  "title": "Notification of Data Service Appointment",
  "senderRoles": ["MSS", "MSA"],
  "eventCodes": ["[Appointment]"],
  "schemaVersions": ["011"],
  "routing": {
    "primary": ["REGS"],
    "secondary": ["SUP"],
    "secondaryDate": "/CustomBlock/B001/effectiveFromDate",
    "always": {"roles": ["MDS"], "participants": []}
  },
  "correlation": "create",
  "obfuscation": {"SUP": ["/CustomBlock/B001/meteringServiceID"]},
  "customBlockSchema": {"type": "object"},
  "retentionDays": 730
}"""


def example() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(CONTRACT_EXAMPLE)
    return result


def parse(definition: dict[str, Any], interface_id: str = "IF-909") -> Any:
    return parse_definition(interface_id, json.dumps(definition).encode())


def rejection(definition: dict[str, Any], interface_id: str = "IF-909") -> str:
    with pytest.raises(CatalogueError) as caught:
        parse(definition, interface_id)
    return str(caught.value)


def test_contract_example_is_accepted_as_written() -> None:
    channel = parse_definition("IF-909", CONTRACT_EXAMPLE.encode())

    d = channel.definition
    assert channel.interface_id == "IF-909"
    assert channel.publication_id == "PUB-909"
    assert channel.correlation == "create"
    assert channel.sender_roles == frozenset({"MSS", "MSA"})
    assert channel.event_codes == frozenset({"[Appointment]"})
    assert d.title == "Notification of Data Service Appointment"
    assert d.schemaVersions == ["011"]
    assert d.routing.primary == ["REGS"]
    assert d.routing.secondary == ["SUP"]
    assert d.routing.secondaryDate == "/CustomBlock/B001/effectiveFromDate"
    assert d.routing.always.roles == ["MDS"]
    assert d.obfuscation == {"SUP": ["/CustomBlock/B001/meteringServiceID"]}
    assert d.customBlockSchema == {"type": "object"}
    assert d.retentionDays == 730
    assert channel.receiving_roles() == frozenset({"REGS", "SUP", "MDS"})


def test_minimal_definition_gets_the_defaults() -> None:
    channel = parse({"publicationID": "PUB-909", "title": "t", "senderRoles": ["SUP"],
                     "eventCodes": ["[A]"], "schemaVersions": ["011"]})

    assert channel.correlation == "none"
    assert channel.definition.customBlockSchema is None
    assert channel.definition.retentionDays == 730
    assert channel.receiving_roles() == frozenset()


def test_definition_round_trips_through_to_json() -> None:
    channel = parse(example())

    again = parse_definition("IF-909", channel.to_json())

    assert again.definition == channel.definition
    assert again.digest == channel.digest
    assert json.loads(channel.to_json())["interfaceID"] == "IF-909"


def test_interface_id_in_the_body_may_repeat_the_paths() -> None:
    assert parse({**example(), "interfaceID": "IF-909"}).interface_id == "IF-909"


def test_report_channel_with_a_lettered_id_is_accepted() -> None:
    channel = parse({**example(), "publicationID": "REP-002A"}, "REP-002A")

    assert channel.interface_id == "REP-002A"
    assert channel.publication_id == "REP-002A"


def _with(path: str, value: Any) -> dict[str, Any]:
    """The contract example with the value at a dotted path replaced (or removed when value is ...)."""
    definition = copy.deepcopy(example())
    *parents, last = path.split(".")
    target = definition
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return definition


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("colour", "blue", "unknown field `colour`"),
        ("routing.colour", "blue", "unknown field `colour`"),
        ("routing.always.colour", "blue", "unknown field `colour`"),
        ("title", ..., "missing required field `title`"),
        ("senderRoles", ["sup"], "senderRoles: 'sup' is not a role ID"),
        ("senderRoles", ["SUPPLY"], "senderRoles: 'SUPPLY' is not a role ID"),
        ("senderRoles", [], "senderRoles must name at least one role"),
        ("routing.primary", ["RE"], "routing.primary: 'RE' is not a role ID"),
        ("routing.secondary", ["sup"], "routing.secondary: 'sup' is not a role ID"),
        ("routing.always.roles", ["Mds"], "routing.always.roles: 'Mds' is not a role ID"),
        ("routing.always.participants", ["123"], "routing.always.participants: '123' is not a 10-character"),
        ("eventCodes", ["Appointment"], "eventCodes: 'Appointment' is not of the form '[Name]'"),
        ("eventCodes", ["[Appoint ment]"], "eventCodes: '[Appoint ment]' is not of the form '[Name]'"),
        ("eventCodes", [], "eventCodes must list at least one event code"),
        ("eventCodes", ["[Appointment]\n"], "is not of the form '[Name]'"),
        ("senderRoles", ["MSS\n"], "is not a role ID"),
        ("publicationID", "PUB-909\n", "is not PUB-nnn"),
        ("schemaVersions", [], "schemaVersions must list"),
        ("schemaVersions", [""], "schemaVersions must list"),
        ("publicationID", "PUB-9", "publicationID 'PUB-9' is not PUB-nnn"),
        ("correlation", "invent", "correlation"),
        ("retentionDays", 0, "retentionDays must be at least 1"),
        ("routing.secondaryDate", "CustomBlock/B001/effectiveFromDate", "routing.secondaryDate"),
        ("routing.secondaryDate", "/CustomBlock/bad~2escape", "is not a JSON pointer"),
        ("obfuscation", {"SUP": ["CustomBlock/B001/meteringServiceID"]}, "obfuscation.SUP: 'CustomBlock/B001/"),
        ("obfuscation", {"SUP": [""]}, "obfuscation.SUP: '' is not a JSON pointer"),
        ("obfuscation", {"SUP": ["/a/~x"]}, "obfuscation.SUP: '/a/~x' is not a JSON pointer"),
        ("obfuscation", {"sup": ["/CustomBlock"]}, "obfuscation: 'sup' is not a role ID"),
        ("customBlockSchema", {"type": "nonsense"}, "customBlockSchema is not a usable JSON Schema"),
        ("customBlockSchema", {"$ref": "#/$defs/missing"}, "customBlockSchema is not a usable JSON Schema"),
        ("customBlockSchema", {"minLength": -1}, "customBlockSchema is not a usable JSON Schema"),
        ("customBlockSchema", "object", "customBlockSchema"),
    ],
)
def test_bad_definition_is_rejected_naming_the_problem(path: str, value: Any, expected: str) -> None:
    assert expected in rejection(_with(path, value))


@pytest.mark.parametrize(
    "interface_id", ["IF-5", "IF-0005", "if-909", "PUB-909", "IF909", "", "REP-002AB", "IF-909\n"]
)
def test_bad_interface_id_is_rejected(interface_id: str) -> None:
    message = rejection(example(), interface_id)

    assert f"'{interface_id}' is not an interface ID" in message


def test_interface_id_in_the_body_must_match_the_path() -> None:
    message = rejection({**example(), "interfaceID": "IF-908"})

    assert "interfaceID 'IF-908' does not match the path's 'IF-909'" in message


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"publicationID": 5}'])
def test_body_that_is_not_a_definition_object_is_rejected(body: bytes) -> None:
    with pytest.raises(CatalogueError, match="channel definition"):
        parse_definition("IF-909", body)


def test_payload_schemas_may_only_name_listed_event_codes() -> None:
    message = rejection({**example(), "payloadSchemas": {"[Other]": {"type": "object"}}})

    assert "payloadSchemas has '[Other]', which is not in eventCodes" in message


def test_payload_schema_that_does_not_compile_is_rejected() -> None:
    message = rejection({**example(), "payloadSchemas": {"[Appointment]": {"type": 7}}})

    assert "payloadSchemas[[Appointment]] is not a usable JSON Schema" in message


def test_payload_schemas_for_listed_codes_and_the_wildcard_are_accepted() -> None:
    schemas = {"[Appointment]": {"type": "object"}, "*": {"type": "object"}}

    assert parse({**example(), "payloadSchemas": schemas}).definition.payloadSchemas == schemas


def test_custom_block_schema_with_local_defs_is_accepted() -> None:
    schema = {"type": "object", "properties": {"B001": {"$ref": "#/$defs/b"}}, "$defs": {"b": {"type": "object"}}}

    assert parse({**example(), "customBlockSchema": schema}).definition.customBlockSchema == schema


# --- digest ------------------------------------------------------------------------------------------------


def test_digest_is_the_same_for_the_same_definition_however_it_is_written() -> None:
    compact = json.dumps(example(), separators=(",", ":")).encode()
    reordered = json.dumps(dict(reversed(list(example().items()))), indent=4).encode()

    digests = {
        parse_definition("IF-909", CONTRACT_EXAMPLE.encode()).digest,
        parse_definition("IF-909", compact).digest,
        parse_definition("IF-909", reordered).digest,
        parse({**example(), "interfaceID": "IF-909"}).digest,
    }

    assert len(digests) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("title", "Another title"),
        ("senderRoles", ["MSS"]),
        ("eventCodes", ["[Appointment]", "[Other]"]),
        ("schemaVersions", ["012"]),
        ("routing.primary", ["REGS", "SUP"]),
        ("routing.secondaryDate", "/CustomBlock/B001/effectiveToDate"),
        ("routing.always.participants", ["1000000001"]),
        ("correlation", "copy"),
        ("obfuscation", {}),
        ("customBlockSchema", {"type": "object", "required": ["B001"]}),
        ("customBlockSchema", None),
        ("retentionDays", 731),
    ],
)
def test_digest_changes_when_the_definition_changes(path: str, value: Any) -> None:
    assert parse(_with(path, value)).digest != parse(example()).digest


def test_digest_differs_between_interfaces_with_the_same_body() -> None:
    assert parse(example(), "IF-909").digest != parse(example(), "IF-908").digest


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_digest_differs_exactly_when_the_title_differs(a: str, b: str) -> None:
    digest_a = parse({**example(), "title": a}).digest
    digest_b = parse({**example(), "title": b}).digest

    assert (digest_a == digest_b) == (a == b)


# --- primary_only and the catalogue ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routing", "primary_only"),
    [
        ({"primary": ["REGS"]}, True),
        ({"primary": ["REGS", "SUP"], "always": {"roles": [], "participants": []}}, True),
        ({"primary": ["REGS"], "secondary": ["SUP"]}, False),
        ({"primary": ["REGS"], "always": {"roles": ["MDS"]}}, False),
        ({"primary": ["REGS"], "always": {"participants": ["1000000001"]}}, False),
        ({"secondary": ["SUP"]}, False),
        ({}, False),
    ],
)
def test_primary_only(routing: dict[str, Any], primary_only: bool) -> None:
    assert parse({**example(), "routing": routing}).primary_only is primary_only


def test_catalogue_finds_channels_case_insensitively() -> None:
    channel = parse(example())
    catalogue = Catalogue.from_rows([("IF-909", channel.to_json())])

    found = catalogue.get("if-909")

    assert found is not None
    assert found.digest == channel.digest
    assert catalogue.get("IF-908") is None
