"""Tests for dip.tools.openapi_import: the official DIP API OpenAPI folder read into self-contained JSON Schemas.

Tests against the real reference folder run only where ../shared/reference is present beside the
project (they skip otherwise); the conversion and error tests use tiny synthetic specs in tmp_path.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml  # type: ignore[import-untyped]

from dip.tools.openapi_import import (
    JSON_SCHEMA_DIALECT,
    WILDCARD_EVENT_CODE,
    ImportedInterface,
    ReferenceImportError,
    load_reference,
    openapi_to_json_schema,
)

RAW = "https://raw.githubusercontent.com/elexon-data/dip-api-documentation/main"
EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "data" / "examples_corrected.json"
SUR_PATTERN = re.compile(r"^S-((IF|REP)-)?\d{3,4}-[0-9a-fA-F]{10}-[A-Z]{3,5}-\d{8}-[a-zA-Z0-9]+$")


def _reference_dir() -> Path | None:
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "elexon-dip-api-v2.1.0"
    for candidate in (beside, Path("/work/shared/reference/elexon-dip-api-v2.1.0")):
        if candidate.is_dir():
            return candidate
    return None


REFERENCE_DIR = _reference_dir()
needs_reference = pytest.mark.skipif(REFERENCE_DIR is None, reason="reference OpenAPI folder not present")


@pytest.fixture(scope="module")
def reference() -> dict[str, ImportedInterface]:
    assert REFERENCE_DIR is not None
    return load_reference(REFERENCE_DIR)


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return loaded


def _validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(schema)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _refs(node: Any) -> set[str]:
    return {str(d["$ref"]) for d in _walk(node) if isinstance(d.get("$ref"), str)}


def _def_name(ref: str) -> str:
    assert ref.startswith("#/$defs/"), ref
    return ref.removeprefix("#/$defs/").replace("~1", "/").replace("~0", "~")


# ---------------------------------------------------------------------------------------------
# openapi_to_json_schema on small dicts
# ---------------------------------------------------------------------------------------------


class TestOpenApiToJsonSchema:
    def test_nullable_type_becomes_type_list(self) -> None:
        converted = openapi_to_json_schema({"type": "string", "nullable": True, "maxLength": 3})
        assert converted == {"type": ["string", "null"], "maxLength": 3}

    def test_nullable_enum_gets_null_once(self) -> None:
        assert openapi_to_json_schema({"type": "string", "nullable": True, "enum": ["A", "B"]}) == {
            "type": ["string", "null"],
            "enum": ["A", "B", None],
        }
        already = openapi_to_json_schema({"type": "string", "nullable": True, "enum": ["A", None]})
        assert already["enum"] == ["A", None]

    def test_nullable_ref_becomes_any_of_and_siblings_are_dropped(self) -> None:
        node = {"$ref": "#/components/schemas/X", "nullable": True, "description": "ignored", "maxLength": 1}
        assert openapi_to_json_schema(node) == {
            "anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]
        }
        assert openapi_to_json_schema({"$ref": "#/a", "maxLength": 1}) == {"$ref": "#/a"}

    def test_nullable_without_type_wraps_in_any_of(self) -> None:
        converted = openapi_to_json_schema({"nullable": True, "enum": ["A"]})
        assert converted == {"anyOf": [{"enum": ["A"]}, {"type": "null"}]}
        assert _validator(converted).is_valid(None)
        assert not _validator(converted).is_valid("B")

    def test_nullable_false_and_openapi_annotations_are_dropped(self) -> None:
        node = {
            "type": "string",
            "nullable": False,
            "description": "kept",
            "example": "2022-01-01",
            "xml": {"name": "x"},
            "x-internal": True,
            "discriminator": {"propertyName": "k"},
        }
        assert openapi_to_json_schema(node) == {"type": "string", "description": "kept"}

    def test_nested_schemas_are_converted_but_property_names_are_not_keywords(self) -> None:
        node = {
            "type": "object",
            "additionalProperties": False,
            "required": ["example", "nullable"],
            "properties": {
                "example": {"type": "string", "nullable": True},
                "nullable": {"type": "array", "items": {"type": "integer", "nullable": True}},
            },
        }
        converted = openapi_to_json_schema(node)
        assert converted["properties"]["example"] == {"type": ["string", "null"]}
        assert converted["properties"]["nullable"]["items"] == {"type": ["integer", "null"]}
        assert converted["additionalProperties"] is False
        validator = _validator(converted)
        assert validator.is_valid({"example": None, "nullable": [1, None]})
        assert not validator.is_valid({"example": None, "nullable": [1], "other": 1})

    def test_refs_are_rewritten_with_their_pointer(self) -> None:
        seen: list[tuple[str, str]] = []

        def rewrite(ref: str, pointer: str) -> str:
            seen.append((ref, pointer))
            return "#/$defs/X"

        node = {
            "oneOf": [{"$ref": "a.yaml#/X"}],
            "properties": {"p/q": {"$ref": "b.yaml#/Y", "nullable": True}},
        }
        converted = openapi_to_json_schema(node, rewrite)
        assert converted["oneOf"] == [{"$ref": "#/$defs/X"}]
        assert converted["properties"]["p/q"] == {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]}
        assert seen == [("a.yaml#/X", "/oneOf/0/$ref"), ("b.yaml#/Y", "/properties/p~1q/$ref")]

    def test_boolean_exclusive_bounds_become_numbers(self) -> None:
        converted = openapi_to_json_schema({"type": "number", "minimum": 0, "exclusiveMinimum": True})
        assert converted == {"type": "number", "exclusiveMinimum": 0}
        converted = openapi_to_json_schema({"type": "number", "maximum": 9, "exclusiveMaximum": False})
        assert converted == {"type": "number", "maximum": 9}

    def test_input_is_not_modified(self) -> None:
        node = {"type": "string", "nullable": True, "enum": ["A"]}
        before = copy.deepcopy(node)
        openapi_to_json_schema(node)
        assert node == before


# ---------------------------------------------------------------------------------------------
# A tiny synthetic spec folder
# ---------------------------------------------------------------------------------------------

SUBMIT_EVENTS = """\
openapi: 3.0.0
info:
  title: t
  description:
    Supported interfaces -<br><br>
     -           Channel-001    Thing One **<br>
     -           REP-002A  Report A – aggregated<br>
paths: {}
"""

INTERFACES = f"""\
openapi: 3.0.0
components:
  schemas:
    IF-001-Payload:
      description: two variants, one event code shared
      type: object
      oneOf:
        - $ref: '#/components/schemas/IF-001-A'
        - $ref: '#/components/schemas/IF-001-B'
    IF-001-A:
      type: object
      additionalProperties: false
      required: [CommonBlock]
      properties:
        CommonBlock:
          $ref: '#/components/schemas/CB-A'
    CB-A:
      type: object
      required: [S0]
      properties:
        S0:
          type: object
          properties:
            schemaVersion: {{type: string, enum: ['011']}}
            eventCode: {{type: string, enum: ['[A]', '[Shared]']}}
    IF-001-B:
      type: object
      additionalProperties: false
      required: [CommonBlock, CustomBlock]
      properties:
        CommonBlock:
          type: object
          properties:
            S0:
              type: object
              properties:
                schemaVersion: {{type: string, enum: ['012']}}
                eventCode: {{type: string, enum: ['[B]', '[Shared]']}}
        CustomBlock:
          $ref: '{RAW}/Blocks-unresolved.yaml#/components/schemas/Tree'
    IF-002-Payload:
      type: object
      properties:
        CommonBlock:
          type: object
          properties:
            S0:
              type: object
              properties:
                eventCode: {{type: string, enum: ['[X]', '[Y]']}}
        CustomBlock:
          $ref: '{RAW}/Blocks-unresolved.yaml#/components/schemas/Person'
    REP-002A-Payload:
      type: object
      properties:
        value: {{type: string, example: 'no event code here'}}
"""

BLOCKS = """\
openapi: 3.0.0
components:
  schemas:
    Person:
      type: object
      additionalProperties: false
      required: [name, nickname]
      properties:
        name:
          $ref: '#/components/schemas/Name'
        nickname:
          $ref: '#/components/schemas/Name'
          nullable: true
    Name:
      type: string
      minLength: 1
      example: Ann
    Tree:
      type: object
      properties:
        children:
          type: array
          items:
            $ref: '#/components/schemas/Tree'
    Unused:
      type: string
"""


def _write_spec(root: Path, overrides: dict[str, str | None] | None = None) -> Path:
    """Write the synthetic spec; ``overrides`` replaces a file's text, or leaves the file out (None)."""
    files: dict[str, str | None] = {
        "SubmitEvents-unresolved.yaml": SUBMIT_EVENTS,
        "Interfaces-EventCodes-unresolved.yaml": INTERFACES,
        "sub/Blocks-unresolved.yaml": BLOCKS,
    }
    files.update(overrides or {})
    for name, text in files.items():
        if text is not None:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


class TestSyntheticSpec:
    def test_interfaces_titles_codes_and_versions(self, tmp_path: Path) -> None:
        imported = load_reference(_write_spec(tmp_path))
        assert list(imported) == ["IF-001", "IF-002", "REP-002A"]
        assert imported["IF-001"].title == "Thing One"
        assert imported["REP-002A"].title == "Report A – aggregated"
        assert imported["IF-002"].title is None
        assert imported["IF-001"].event_codes == ("[A]", "[Shared]", "[B]")
        assert imported["IF-001"].schema_versions == ("011", "012")
        assert imported["IF-002"].event_codes == ("[X]", "[Y]")
        assert imported["IF-002"].payload_schemas["[X]"] is imported["IF-002"].payload_schemas["[Y]"]

    def test_no_event_code_enum_gives_wildcard(self, tmp_path: Path) -> None:
        rep = load_reference(_write_spec(tmp_path))["REP-002A"]
        assert rep.event_codes == ()
        assert list(rep.payload_schemas) == [WILDCARD_EVENT_CODE]
        assert "example" not in rep.payload_schemas[WILDCARD_EVENT_CODE]["properties"]["value"]

    def test_variant_per_event_code_and_shared_code_takes_any_variant(self, tmp_path: Path) -> None:
        schemas = load_reference(_write_spec(tmp_path))["IF-001"].payload_schemas
        a_only = {"CommonBlock": {"S0": {"eventCode": "[A]"}}}
        b_only = {"CommonBlock": {"S0": {"eventCode": "[B]"}}, "CustomBlock": {}}
        assert _validator(schemas["[A]"]).is_valid(a_only)
        assert not _validator(schemas["[B]"]).is_valid(a_only)  # B needs a CustomBlock
        assert _validator(schemas["[B]"]).is_valid(b_only)
        assert not _validator(schemas["[A]"]).is_valid(b_only)  # A allows no CustomBlock
        shared = _validator(schemas["[Shared]"])
        assert "anyOf" in schemas["[Shared]"]
        assert shared.is_valid({"CommonBlock": {"S0": {"eventCode": "[Shared]"}}})
        assert shared.is_valid({"CommonBlock": {"S0": {"eventCode": "[Shared]"}}, "CustomBlock": {}})

    def test_refs_are_local_reachable_only_and_recursion_works(self, tmp_path: Path) -> None:
        schema = load_reference(_write_spec(tmp_path))["IF-001"].payload_schemas["[B]"]
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        assert set(schema["$defs"]) == {"Blocks.Tree"}
        assert all(ref.startswith("#/$defs/") for ref in _refs(schema))
        tree: dict[str, Any] = {"children": [{"children": [{"children": []}]}]}
        validator = _validator(schema)
        assert validator.is_valid({"CommonBlock": {}, "CustomBlock": tree})
        assert not validator.is_valid({"CommonBlock": {}, "CustomBlock": {"children": [{"children": 1}]}})

    def test_nullable_ref_in_cross_file_block(self, tmp_path: Path) -> None:
        schema = load_reference(_write_spec(tmp_path))["IF-002"].payload_schemas["[X]"]
        assert set(schema["$defs"]) == {"Blocks.Person", "Blocks.Name"}
        assert "example" not in schema["$defs"]["Blocks.Name"]
        validator = _validator(schema)
        assert validator.is_valid({"CustomBlock": {"name": "Ann", "nickname": None}})
        assert not validator.is_valid({"CustomBlock": {"name": None, "nickname": "A"}})
        assert not validator.is_valid({"CustomBlock": {"name": "Ann", "nickname": ""}})

    def test_missing_referenced_file(self, tmp_path: Path) -> None:
        _write_spec(tmp_path, {"sub/Blocks-unresolved.yaml": None})
        with pytest.raises(ReferenceImportError) as caught:
            load_reference(tmp_path)
        message = str(caught.value)
        assert "Blocks-unresolved.yaml: file not found" in message
        assert "Interfaces-EventCodes-unresolved.yaml#/components/schemas/IF-001-B" in message

    def test_broken_ref_names_file_and_pointer(self, tmp_path: Path) -> None:
        _write_spec(tmp_path, {"sub/Blocks-unresolved.yaml": BLOCKS.replace("    Name:", "    Nom:")})
        with pytest.raises(ReferenceImportError) as caught:
            load_reference(tmp_path)
        message = str(caught.value)
        assert "Blocks-unresolved.yaml#/components/schemas/Name does not exist" in message
        assert "Blocks-unresolved.yaml#/components/schemas/Person/properties/name/$ref" in message

    def test_missing_interfaces_file(self, tmp_path: Path) -> None:
        _write_spec(tmp_path, {"Interfaces-EventCodes-unresolved.yaml": None})
        with pytest.raises(
            ReferenceImportError, match=r"Interfaces-EventCodes-unresolved\.yaml: file not found"
        ):
            load_reference(tmp_path)

    def test_invalid_yaml(self, tmp_path: Path) -> None:
        _write_spec(tmp_path, {"SubmitEvents-unresolved.yaml": "info: [unclosed\n"})
        with pytest.raises(ReferenceImportError, match=r"SubmitEvents-unresolved\.yaml: invalid YAML"):
            load_reference(tmp_path)

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(ReferenceImportError, match="reference folder not found"):
            load_reference(tmp_path / "absent")

    def test_error_is_a_value_error(self) -> None:
        assert issubclass(ReferenceImportError, ValueError)


# ---------------------------------------------------------------------------------------------
# The real reference folder
# ---------------------------------------------------------------------------------------------


@needs_reference
class TestReference:
    def test_every_dt000_interface_is_imported(self, reference: dict[str, ImportedInterface]) -> None:
        assert REFERENCE_DIR is not None
        data_types = yaml.safe_load((REFERENCE_DIR / "DataTypes-unresolved.yaml").read_text(encoding="utf-8"))
        interface_ids = data_types["components"]["schemas"]["DT-000-InterfaceID"]["enum"]
        assert set(reference) == set(interface_ids)
        assert all(imported.interface_id == key for key, imported in reference.items())

    def test_titles_from_the_channel_list(self, reference: dict[str, ImportedInterface]) -> None:
        assert reference["IF-005"].title == "Metering Service MTD Updates to Registration"
        assert reference["IF-004"].title == "Comms Hub Information"
        assert (
            reference["REP-003A"].title
            == "Aggregated BM Unit Allocated Demand Volumes to Market Participants"
        )
        assert all(imported.title for imported in reference.values())

    def test_if005_has_five_event_codes_with_distinct_schemas(
        self, reference: dict[str, ImportedInterface]
    ) -> None:
        if005 = reference["IF-005"]
        expected = (
            "[MeterInstall]",
            "[MeterRemoval]",
            "[MeterExchange]",
            "[MeterUpdate]",
            "[MeterHistoryUpdate]",
        )
        assert if005.event_codes == expected
        assert if005.schema_versions == ("011",)
        assert list(if005.payload_schemas) == list(expected)
        schemas = list(if005.payload_schemas.values())
        assert all(a is not b and a != b for i, a in enumerate(schemas) for b in schemas[i + 1 :])
        for code, schema in if005.payload_schemas.items():
            s0 = schema["properties"]["CommonBlock"]["properties"]["S0"]
            assert s0["properties"]["eventCode"]["enum"] == [code]

    def test_schema_versions(self, reference: dict[str, ImportedInterface]) -> None:
        assert reference["IF-051"].schema_versions == ("001",)
        assert reference["REP-901"].schema_versions == ("008",)
        assert reference["REP-901"].event_codes == (
            "[DUoSEmbeddedLDSOAggInvData]",
            "[DUoSSupplierAggInvData]",
        )

    def test_every_schema_compiles_and_is_self_contained(
        self, reference: dict[str, ImportedInterface]
    ) -> None:
        count = 0
        for imported in reference.values():
            assert imported.payload_schemas
            for schema in imported.payload_schemas.values():
                assert schema["$schema"] == JSON_SCHEMA_DIALECT
                jsonschema_rs.validator_for(schema)
                refs = _refs(schema)
                assert all(ref.startswith("#/") for ref in refs)
                assert {_def_name(ref) for ref in refs} <= set(schema.get("$defs", {}))
                assert not any("nullable" in d or "example" in d for d in _walk(schema))
                count += 1
        assert count > len(reference)

    def test_only_reachable_definitions_are_included(self, reference: dict[str, ImportedInterface]) -> None:
        for imported in reference.values():
            for schema in imported.payload_schemas.values():
                defs = schema.get("$defs", {})
                reached: set[str] = set()
                todo = [_def_name(r) for r in _refs({k: v for k, v in schema.items() if k != "$defs"})]
                while todo:
                    name = todo.pop()
                    if name not in reached:
                        reached.add(name)
                        todo.extend(_def_name(r) for r in _refs(defs[name]))
                assert reached == set(defs), imported.interface_id

    def test_constraints_are_kept(self, reference: dict[str, ImportedInterface]) -> None:
        schema = reference["IF-021"].payload_schemas["[ActivePower]"]
        defs = schema["$defs"]
        assert schema["additionalProperties"] is False
        assert schema["required"] == ["CommonBlock", "CustomBlock"]
        assert defs["RealCommonBlocks.S1"]["additionalProperties"] is False
        assert defs["DataTypes.DT-013-EnvironmentTag"]["enum"] == ["PRD", "SITB", "SIT", "UIT", "DEV"]
        assert defs["DataTypes.DT-995-SenderUniqueReference"]["pattern"] == SUR_PATTERN.pattern
        assert defs["DataTypes.DT-003-DateTime"]["minLength"] == 25
        assert defs["RealCommonBlocks.B901"]["properties"]["consumptionPeriods"]["maxItems"] == 48

    @pytest.mark.parametrize(
        ("block", "field", "value", "valid"),
        [
            ("S1", "senderCorrelationID", None, True),  # DT-011N: nullable type
            ("S1", "subText", None, True),  # DT-020N
            ("B047", "arc", None, True),  # DI-166: nullable enum that does not list null
            ("B047", "e", None, True),  # DI-076: nullable enum that lists null
            ("B047", "e", "10", True),
            ("B047", "e", "11", False),
            ("S1", "senderDIPID", None, False),  # DT-006: not nullable
            ("S1", "senderTimestamp", None, False),
            ("B047", "v", None, False),
        ],
    )
    def test_nullable_fields(
        self,
        reference: dict[str, ImportedInterface],
        examples: dict[str, Any],
        block: str,
        field: str,
        value: Any,
        valid: bool,
    ) -> None:
        validator = _validator(reference["IF-021"].payload_schemas["[ActivePower]"])
        payload = copy.deepcopy(examples["IF-021"]["payload"])
        assert validator.is_valid(payload)
        if block == "B047":
            days = payload["CustomBlock"]["B900"]["settlementDayConsumptionPeriods"]
            target = days[0]["consumptionPeriods"][0]
        else:
            target = payload["CommonBlock"][block]
        target[field] = value
        assert validator.is_valid(payload) is valid

    def test_if020_shared_event_code_is_accepted(
        self, reference: dict[str, ImportedInterface], examples: dict[str, Any]
    ) -> None:
        # IF-020-RelatedCreate also lists [RelatedAdd]; a literal oneOf would reject every such message.
        payload = copy.deepcopy(examples["IF-020-RelatedCreate"]["payload"])
        payload["CommonBlock"]["S0"]["eventCode"] = "[RelatedAdd]"
        assert _validator(reference["IF-020"].payload_schemas["[RelatedAdd]"]).is_valid(payload)

    def test_loads_in_a_couple_of_seconds(self) -> None:
        assert REFERENCE_DIR is not None
        started = time.perf_counter()
        load_reference(REFERENCE_DIR)
        assert time.perf_counter() - started < 2.0


# ---------------------------------------------------------------------------------------------
# Corrected official examples
# ---------------------------------------------------------------------------------------------

EXAMPLE_NAMES = sorted(json.loads(EXAMPLES_FILE.read_text(encoding="utf-8")))


def test_examples_file_covers_the_required_examples(examples: dict[str, Any]) -> None:
    assert {"IF-001-InitialRegistration", "IF-001-ChangeOfSupplier", "IF-021"} <= set(examples)
    periods = examples["IF-021"]["payload"]["CustomBlock"]["B900"]["settlementDayConsumptionPeriods"]
    assert sum(len(day["consumptionPeriods"]) for day in periods) <= 48


def test_example_senders_are_consistent(examples: dict[str, Any]) -> None:
    surs = []
    for name, example in examples.items():
        common = example["payload"]["CommonBlock"]
        s0, s1 = common["S0"], common["S1"]
        assert (s0["interfaceID"], s0["eventCode"]) == (example["interfaceID"], example["eventCode"]), name
        assert s1["environmentTag"] == "DEV", name
        sur = s1["senderUniqueReference"]
        assert SUR_PATTERN.match(sur), name
        day = s1["senderTimestamp"][:10].replace("-", "")
        assert sur.startswith(
            f"S-{example['interfaceID']}-{s1['senderDIPID']}-{s1['senderRoleID']}-{day}-"
        ), name
        assert example["corrections"], name
        assert all(isinstance(c, str) and c for c in example["corrections"]), name
        surs.append(sur)
    assert len(set(surs)) == len(surs)


@needs_reference
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
class TestCorrectedExamples:
    @staticmethod
    def _schema(reference: dict[str, ImportedInterface], example: dict[str, Any]) -> Any:
        return _validator(reference[example["interfaceID"]].payload_schemas[example["eventCode"]])

    def test_validates(
        self, name: str, reference: dict[str, ImportedInterface], examples: dict[str, Any]
    ) -> None:
        example = examples[name]
        errors = [
            f"{e.instance_path}: {e.message}"
            for e in self._schema(reference, example).iter_errors(example["payload"])
        ]
        assert errors == []

    @pytest.mark.parametrize(
        "mutation",
        ["unknown S1 field", "unknown CommonBlock block", "lower-case environment tag", "missing S1 block"],
    )
    def test_invalid_copies_are_rejected(
        self, name: str, mutation: str, reference: dict[str, ImportedInterface], examples: dict[str, Any]
    ) -> None:
        example = examples[name]
        payload = copy.deepcopy(example["payload"])
        common = payload["CommonBlock"]
        if mutation == "unknown S1 field":
            common["S1"]["senderName"] = "x"
        elif mutation == "unknown CommonBlock block":
            common["X9"] = {}
        elif mutation == "lower-case environment tag":
            common["S1"]["environmentTag"] = "dev"
        else:
            del common["S1"]
        assert not self._schema(reference, example).is_valid(payload)
