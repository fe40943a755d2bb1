"""The default channel catalogue and the demo custom-block schemas.

Market participants are routed by ``src/dip/data/default_catalogue.json``; these tests pin
what they rely on: every v2.1.0 channel is defined once, in the operator API's channel
format, with valid roles, the reference event codes and the correlation behaviour of the
IF-005/IF-006 workflow. The rules behind each routing decision are in docs/catalogue.md.

The files are read by path, so the tests run whether or not ``dip`` is importable. Tests
that compare with the official API v2.1.0 source skip when ``../shared/reference`` is absent.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "src" / "dip" / "data"
CATALOGUE_PATH = DATA_DIR / "default_catalogue.json"
DEMO_SCHEMAS_PATH = DATA_DIR / "demo_schemas.json"
REFERENCE_DIRS = (
    ROOT.parent / "shared" / "reference" / "elexon-dip-api-v2.1.0",
    Path("/work/shared/reference/elexon-dip-api-v2.1.0"),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# E2E Solution Architecture 3.3: the roles active in the DIP.
VALID_ROLES = frozenset(_words("MSA ADS MSS SDS MDR UMSO UMSDS MDS LSS ISD VAS REGS SUP LDSO EES DCP"))
CHANNEL_KEYS = {
    "interfaceID",
    "publicationID",
    "title",
    "senderRoles",
    "eventCodes",
    "schemaVersions",
    "routing",
    "correlation",
    "obfuscation",
    "customBlockSchema",
    "retentionDays",
}
ROUTING_KEYS = {"primary", "secondary", "secondaryDate", "always"}
ALWAYS_KEYS = {"roles", "participants"}

# DT-000-InterfaceID of the v2.1.0 API, pinned here so the check runs without the reference.
V210_CHANNELS = _words(
    "IF-001 IF-002 IF-003 IF-004 IF-005 IF-006 IF-007 IF-008 IF-009 IF-013 IF-014 IF-015 "
    "IF-016 IF-018 IF-019 IF-020 IF-021 IF-022 IF-023 IF-024 IF-025 IF-026 IF-027 IF-028 "
    "IF-031 IF-032 IF-033 IF-034 IF-035 IF-036 IF-037 IF-038 IF-039 IF-040 IF-041 IF-043 "
    "IF-044 IF-045 IF-047 IF-050 IF-051 IF-061 IF-062 IF-063 IF-064 IF-065 REP-002 REP-002A "
    "REP-002B REP-003 REP-003A REP-004 REP-006 REP-007 REP-008 REP-009 REP-900 REP-901"
)

# Response channel -> the channel whose message it answers (docs/catalogue.md, correlation).
CORRELATED_PAIRS = {
    "IF-006": "IF-005",
    "IF-008": "IF-007",
    "IF-016": "IF-015",
    "IF-020": "IF-019",
    "IF-026": "IF-025",
    "IF-028": "IF-027",
    "IF-032": "IF-031",
    "IF-039": "IF-038",
    "IF-062": "IF-061",
}

# E2E Solution Architecture 3.6 "Actor Workflows Summary", transcribed with its typos read as
# meant (IF034 = IF-034, "PUB-006." = PUB-006, wrapped items joined). Numbers are nnn of IF-nnn
# (Out bound) and PUB-nnn (In bound). "PUB-051 (non-DIP)" and the "Public" row are not DIP roles.
E2E_3_6_OUT = {
    "MSA": "005 007 034 038 041",
    "MSS": "005 007 034 038 041",
    "UMSO": "007 034",
    "ADS": "021 015 034 038 041 028",
    "SDS": "021 034 038 041 028 061 063",
    "MDR": "062 064 065",
    "UMSDS": "021 034 028",
    "MDS": "013 014 040",
    "LSS": "014 022 023",
    "REGS": "001 002 003 006 008 009 018 026 032 033 035 036 037 039 043 044 045 020",
    "SUP": "024 025 027 031 041 019",
    "LDSO": "",
    "EES": "",
}
E2E_3_6_IN = {
    "MSA": "003 006 008 018 026 033 035 036 037 039 043 045 047 020",
    "MSS": "003 004 006 008 018 026 033 035 036 037 039 043 045 047 020",
    "UMSO": "003 008 033 035 036 037 043",
    "ADS": "003 006 008 009 016 013 014 018 022 023 024 026 027 033 035 036 037 039 040 041 043 045 047 020",
    "SDS": "003 006 008 009 013 014 018 022 023 024 026 027 033 035 036 037 039 040 041 043 045 047 020 062 064 065",
    "MDR": "061 063",
    "UMSDS": "003 008 013 014 018 022 023 024 027 033 035 036 037 040 043",
    "MDS": "001 003 008 009 018 021 022 026 036 043 044 045 020",
    "LSS": "001 008 009 018 021 026 036 043 044",
    "REGS": "005 007 031 025 034 038 047 040 019",
    "SUP": "001 002 003 004 006 007 008 009 018 021 022 023 026 028 032 035 036 037 039 041 043 044 047 020",
    "LDSO": "001 003 006 008 009 013 014 018 019 020 021 026 036 037 040 041 043 044 045 047",
    "EES": "006 008 009 018 020 026 036 037 039 040 043 044 047 050",
}
# The CS row (parent of MDS, LSS, ISD, VAS): its outbound IF-047 is ISD's; all else it lists is
# already in the MDS and LSS rows.
E2E_3_6_CS_OUT = {"047": {"ISD"}}
# Where the catalogue departs from 3.6, with the reason in docs/catalogue.md (S4).
SENDERS_NOT_IN_3_6 = {
    "IF-004": {"MSS", "SUP"},
    "IF-016": {"MDS"},
    "IF-050": {"REGS"},
    "IF-051": {"REGS"},
}
RECIPIENTS_NOT_IN_3_6 = {"IF-051": {"EES"}}

JSON_POINTER = re.compile(r"^(/([^~/]|~[01])*)+$")


# ---------------------------------------------------------------------------- loading


@functools.cache
def _catalogue() -> dict[str, Any]:
    with CATALOGUE_PATH.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _channels() -> list[dict[str, Any]]:
    channels: list[dict[str, Any]] = _catalogue()["channels"]
    return channels


def _channel(interface_id: str) -> dict[str, Any]:
    matches = [c for c in _channels() if c["interfaceID"] == interface_id]
    assert len(matches) == 1, interface_id
    return matches[0]


@functools.cache
def _demo_schemas() -> dict[str, Any]:
    with DEMO_SCHEMAS_PATH.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _reference_dir() -> Path:
    for candidate in REFERENCE_DIRS:
        if (candidate / "DataTypes-unresolved.yaml").is_file():
            return candidate
    pytest.skip("official API v2.1.0 reference (../shared/reference) not available")


@functools.cache
def _reference_yaml(name: str) -> Any:
    yaml = pytest.importorskip("yaml")
    with (_reference_dir() / name).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _reference_variants(interface_id: str) -> list[dict[str, Any]]:
    """The message schemas of one interface: the oneOf variants of IF-xxx-Payload, or itself."""
    schemas = _reference_yaml("Interfaces-EventCodes-unresolved.yaml")["components"]["schemas"]
    payload = schemas[f"{interface_id}-Payload"]
    refs = [item["$ref"].rsplit("/", 1)[-1] for item in payload.get("oneOf", [])]
    return [schemas[ref] for ref in refs] if refs else [payload]


def _reference_s0_enums(interface_id: str) -> tuple[list[str], list[str]]:
    """(eventCode enum, schemaVersion enum) collected over every variant, in reference order."""
    events: list[str] = []
    versions: list[str] = []
    for variant in _reference_variants(interface_id):
        s0 = variant["properties"]["CommonBlock"]["properties"]["S0"]["properties"]
        assert s0["interfaceID"]["enum"] == [interface_id]
        events += [e for e in s0["eventCode"]["enum"] if e not in events]
        versions += [v for v in s0["schemaVersion"]["enum"] if v not in versions]
    return events, versions


def _all_roles(channel: dict[str, Any]) -> list[str]:
    routing = channel["routing"]
    return [
        *channel["senderRoles"],
        *routing["primary"],
        *routing["secondary"],
        *routing["always"]["roles"],
        *channel["obfuscation"].keys(),
    ]


def _recipient_roles(channel: dict[str, Any]) -> list[str]:
    routing = channel["routing"]
    return [*routing["primary"], *routing["secondary"], *routing["always"]["roles"]]


def _resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


ALL_IDS = [c["interfaceID"] for c in _channels()]
channel_ids = pytest.mark.parametrize("interface_id", ALL_IDS)


# ---------------------------------------------------------------------------- catalogue


def test_catalogue_is_an_object_holding_only_a_channel_list() -> None:
    assert set(_catalogue()) == {"channels"}
    assert isinstance(_channels(), list)


def test_every_v210_channel_is_defined_exactly_once() -> None:
    assert sorted(ALL_IDS) == sorted(V210_CHANNELS)
    assert len(ALL_IDS) == len(set(ALL_IDS))


def test_channels_match_the_reference_interface_id_enum() -> None:
    data_types = _reference_yaml("DataTypes-unresolved.yaml")
    enum = data_types["components"]["schemas"]["DT-000-InterfaceID"]["enum"]
    assert len(enum) == len(set(enum))
    assert sorted(ALL_IDS) == sorted(enum)


@channel_ids
def test_definition_has_exactly_the_contract_keys(interface_id: str) -> None:
    channel = _channel(interface_id)
    assert set(channel) == CHANNEL_KEYS
    assert set(channel["routing"]) == ROUTING_KEYS
    assert set(channel["routing"]["always"]) == ALWAYS_KEYS
    assert isinstance(channel["title"], str)
    assert channel["title"]
    assert channel["title"] == channel["title"].strip()
    for key in ("senderRoles", "eventCodes", "schemaVersions"):
        assert isinstance(channel[key], list)
    for key in ("primary", "secondary"):
        assert isinstance(channel["routing"][key], list)
    assert isinstance(channel["obfuscation"], dict)


@channel_ids
def test_publication_id_follows_the_interface_id(interface_id: str) -> None:
    expected = "PUB-" + interface_id[3:] if interface_id.startswith("IF-") else interface_id
    assert _channel(interface_id)["publicationID"] == expected


@channel_ids
def test_roles_are_dip_roles(interface_id: str) -> None:
    unknown = set(_all_roles(_channel(interface_id))) - VALID_ROLES
    assert not unknown, f"{interface_id}: unknown roles {sorted(unknown)}"


@channel_ids
def test_a_role_is_routed_one_way_only(interface_id: str) -> None:
    channel = _channel(interface_id)
    recipients = _recipient_roles(channel)
    assert len(recipients) == len(set(recipients)), f"{interface_id}: {recipients}"
    assert len(channel["senderRoles"]) == len(set(channel["senderRoles"]))


@channel_ids
def test_channel_has_senders_and_recipients(interface_id: str) -> None:
    channel = _channel(interface_id)
    assert channel["senderRoles"], interface_id
    # IF-015 is a request to the DIP itself (E2E 5.1.7, MD#6): no participant receives it.
    if interface_id == "IF-015":
        assert _recipient_roles(channel) == []
    else:
        assert _recipient_roles(channel), interface_id


@pytest.mark.parametrize("interface_id", [i for i in ALL_IDS if i.startswith("IF-")])
def test_senders_and_recipients_follow_the_e2e_actor_workflow_table(interface_id: str) -> None:
    # Reports are not in E2E 3.6; their parties are explained in docs/catalogue.md (S5).
    n = interface_id[3:]
    senders = {role for role, ids in E2E_3_6_OUT.items() if n in ids.split()}
    senders |= E2E_3_6_CS_OUT.get(n, set())
    recipients = {role for role, ids in E2E_3_6_IN.items() if n in ids.split()}
    channel = _channel(interface_id)
    assert set(channel["senderRoles"]) == SENDERS_NOT_IN_3_6.get(interface_id, senders)
    assert set(_recipient_roles(channel)) == RECIPIENTS_NOT_IN_3_6.get(interface_id, recipients)


@channel_ids
def test_secondary_date_is_a_pointer_into_the_custom_block(interface_id: str) -> None:
    routing = _channel(interface_id)["routing"]
    pointer = routing["secondaryDate"]
    if pointer is None:
        return
    assert isinstance(pointer, str)
    assert JSON_POINTER.match(pointer), pointer
    assert pointer.startswith("/CustomBlock/"), pointer
    assert routing["secondary"], f"{interface_id}: secondaryDate without secondary roles"


@channel_ids
def test_event_codes_and_schema_versions_are_well_formed(interface_id: str) -> None:
    channel = _channel(interface_id)
    assert channel["eventCodes"]
    assert channel["schemaVersions"]
    assert len(channel["eventCodes"]) == len(set(channel["eventCodes"]))
    for code in channel["eventCodes"]:
        assert re.fullmatch(r"\[[A-Za-z0-9-]+\]", code), code
        assert len(code) <= 50, code  # DT-004-EventCode maxLength
    for version in channel["schemaVersions"]:
        assert re.fullmatch(r"\d{3}", version), version


@channel_ids
def test_defaults_for_obfuscation_schema_and_retention(interface_id: str) -> None:
    channel = _channel(interface_id)
    assert channel["obfuscation"] == {}
    assert channel["customBlockSchema"] is None
    assert type(channel["retentionDays"]) is int
    assert channel["retentionDays"] == 730
    assert channel["routing"]["always"]["participants"] == []


def test_every_definition_loads_as_a_dip_channel() -> None:
    """The shipped file passes the DIP's own channel checks (skipped if dip is not importable)."""
    catalogue = pytest.importorskip("dip.catalogue")
    for channel in _channels():
        body = json.dumps(channel).encode()
        assert catalogue.parse_definition(channel["interfaceID"], body).interface_id == channel["interfaceID"]
    for interface_id, schema in _demo_schemas().items():
        body = json.dumps({**_channel(interface_id), "customBlockSchema": schema}).encode()
        catalogue.parse_definition(interface_id, body)


def test_if005_creates_and_if006_copies_the_workflow_correlation_id() -> None:
    assert _channel("IF-005")["correlation"] == "create"
    assert _channel("IF-006")["correlation"] == "copy"


def test_every_copying_channel_answers_a_creating_channel() -> None:
    copying = {c["interfaceID"] for c in _channels() if c["correlation"] == "copy"}
    assert copying == set(CORRELATED_PAIRS)
    for response, request in CORRELATED_PAIRS.items():
        assert _channel(request)["correlation"] == "create", (response, request)
    for channel in _channels():
        assert channel["correlation"] in {"create", "copy", "none"}


def test_if005_event_codes_match_the_reference_s0_enum() -> None:
    events, versions = _reference_s0_enums("IF-005")
    channel = _channel("IF-005")
    assert channel["eventCodes"] == events
    assert channel["schemaVersions"] == versions
    assert set(events) == {
        "[MeterInstall]",
        "[MeterRemoval]",
        "[MeterExchange]",
        "[MeterUpdate]",
        "[MeterHistoryUpdate]",
    }


@channel_ids
def test_event_codes_and_versions_match_the_reference(interface_id: str) -> None:
    events, versions = _reference_s0_enums(interface_id)
    channel = _channel(interface_id)
    assert channel["eventCodes"] == events
    assert channel["schemaVersions"] == versions


@channel_ids
def test_channels_without_an_mpan_block_have_no_secondary_routing(interface_id: str) -> None:
    variants = _reference_variants(interface_id)
    has_m0 = all("M0" in v["properties"]["CommonBlock"]["properties"] for v in variants)
    if not has_m0:
        assert _channel(interface_id)["routing"]["secondary"] == []


def test_the_routing_examples_the_docs_explain() -> None:
    if005 = _channel("IF-005")["routing"]
    assert (if005["primary"], if005["secondary"]) == (["REGS"], [])
    assert set(_channel("IF-005")["senderRoles"]) == {"MSA", "MSS"}
    if021 = _channel("IF-021")
    assert set(if021["senderRoles"]) == {"ADS", "SDS", "UMSDS"}
    assert set(if021["routing"]["secondary"]) == {"SUP", "LDSO"}
    assert set(if021["routing"]["always"]["roles"]) == {"MDS", "LSS"}
    assert if021["routing"]["secondaryDate"] == (
        "/CustomBlock/B900/settlementDayConsumptionPeriods/0/settlementDay/settlementDayDate"
    )
    assert "SUP" in _channel("IF-047")["routing"]["always"]["roles"]
    assert _channel("IF-047")["senderRoles"] == ["ISD"]
    for broadcast in ("IF-006", "IF-008", "IF-009", "IF-018", "IF-026", "IF-036", "IF-043"):
        assert "EES" in _channel(broadcast)["routing"]["always"]["roles"], broadcast


# ---------------------------------------------------------------------------- demo schemas

T0 = "2026-11-20T10:00:00+00:00"
METER = {
    "meterID": "S18A012345",
    "meterType": "S2AD",
    "manufacturersMakeAndType": "LANDIS+GYR E470 5394",
    "ESMEGUID": "0C-A2-F4-00-00-76-21-BC",
    "meterLocation": "A",
    "numberOfDisplayedRegisterDigits": 5,
    "meterInstallationDate": T0,
}
MAP = {"meterAssetProviderID": "MAP1", "meterAssetProviderEffectiveFromDate": T0}
B906 = {"existingMeter": {**METER, "modifiedMeterID": None}, "historyMAP": [MAP]}
B039 = {"meterIDRemoved": "K93B004411", "meterRemovalDate": "2026-11-20T09:40:00+00:00"}
B030 = {"IHDInstallStatus": "I", "IHDEffectiveFromDate": T0}


def _if021_block(periods: int = 48) -> dict[str, Any]:
    day = datetime(2026, 11, 22, tzinfo=UTC)
    return {
        "B044": {"issuingDataServiceDIPID": "1109012345"},
        "B067": {"connectionTypeIndicator": "W", "connectionTypeEffectiveFromDate": T0},
        "B900": {
            "MQID": {"measurementQuantityID": "AI"},
            "settlementDayConsumptionPeriods": [
                {
                    "settlementDay": {
                        "settlementDayDate": day.isoformat(),
                        "periodDuration": 30,
                    },
                    "consumptionPeriods": [
                        {
                            "sp": (day + timedelta(minutes=30 * i)).isoformat(),
                            "v": f"{0.25 + i / 1000:.3f}",
                            "q": "A" if i % 7 else "E1",
                            "e": None if i % 7 else "3",
                            "arc": None,
                        }
                        for i in range(periods)
                    ],
                }
            ],
        },
    }


# (channel, event code, custom block, path to an object inside it that allows no extra fields)
SAMPLES: list[tuple[str, str, dict[str, Any], tuple[str | int, ...]]] = [
    ("IF-005", "[MeterInstall]", {"B906": B906, "B030": B030}, ("B906", "existingMeter")),
    ("IF-005", "[MeterRemoval]", {"B039": B039}, ("B039",)),
    (
        "IF-006",
        "[MeterExchange]",
        {
            "B906": B906,
            "B039": B039,
            "B030": B030,
            "B905List": [{"existingMeter": METER, "existingMAP": MAP}],
        },
        ("B905List", 0, "existingMeter"),
    ),
    ("IF-021", "[ActivePower]", _if021_block(), ("B900", "settlementDayConsumptionPeriods", 0)),
    (
        "IF-024",
        "[SN-RemoteEnabled]",
        {
            "B057": {
                "supplierNotificationEffectiveFromDate": T0,
                "supplierNotificationExpiryDate": None,
                "additionalInformation": "Customer reports the meter is in a locked cupboard.",
            },
            "B069": {"meterID": "S18A012345"},
        },
        ("B057",),
    ),
    (
        "IF-024",
        "[SN-OffPeakDec]",
        {"B097List": [{"offPeakDeclarationDate": T0, "offPeakDeclarationProportion": 42.5}]},
        ("B097List", 0),
    ),
]
sample_cases = pytest.mark.parametrize(
    ("interface_id", "event", "block", "nested"), SAMPLES, ids=[f"{s[0]}{s[1]}" for s in SAMPLES]
)


def _validator(interface_id: str) -> Any:
    return jsonschema_rs.validator_for(_demo_schemas()[interface_id])


def test_demo_schemas_cover_the_four_demo_channels() -> None:
    assert set(_demo_schemas()) == {"IF-005", "IF-006", "IF-021", "IF-024"}
    assert {s[0] for s in SAMPLES} == set(_demo_schemas())


@pytest.mark.parametrize("interface_id", ["IF-005", "IF-006", "IF-021", "IF-024"])
def test_demo_schema_is_draft_2020_12_and_compiles(interface_id: str) -> None:
    schema = _demo_schemas()[interface_id]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert isinstance(_validator(interface_id), jsonschema_rs.Draft202012Validator)


@sample_cases
def test_demo_schema_accepts_a_realistic_block(
    interface_id: str, event: str, block: dict[str, Any], nested: tuple[str | int, ...]
) -> None:
    assert event in _channel(interface_id)["eventCodes"]
    errors = [e.message for e in _validator(interface_id).iter_errors(block)]
    assert errors == []


@sample_cases
def test_demo_schema_rejects_an_unknown_field(
    interface_id: str, event: str, block: dict[str, Any], nested: tuple[str | int, ...]
) -> None:
    validator = _validator(interface_id)
    top = {**copy.deepcopy(block), "B999": {"note": "not in the interface"}}
    assert not validator.is_valid(top)
    inner = copy.deepcopy(block)
    target: Any = inner
    for step in nested:
        target = target[step]
    target["unexpectedField"] = "x"
    assert not validator.is_valid(inner)


@sample_cases
def test_demo_schema_rejects_a_block_missing_a_required_field(
    interface_id: str, event: str, block: dict[str, Any], nested: tuple[str | int, ...]
) -> None:
    broken = copy.deepcopy(block)
    target: Any = broken
    for step in nested:
        target = target[step]
    target.pop(next(iter(target)))
    assert not _validator(interface_id).is_valid(broken)


def test_if021_accepts_exactly_one_to_48_periods_per_settlement_day() -> None:
    validator = _validator("IF-021")
    assert validator.is_valid(_if021_block(48))
    assert validator.is_valid(_if021_block(1))
    assert not validator.is_valid(_if021_block(49))
    assert not validator.is_valid(_if021_block(0))


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("v", "12.5", False),  # (9,3): three decimals required
        ("v", "-0.125", True),
        ("q", "a", False),  # enumerations are case-sensitive (E2E 4.4.3)
        ("e", None, True),
        ("e", "11", False),
        ("arc", "A", True),
        ("sp", "2026-11-22T00:00:00Z", False),  # date/times carry the full +hh:mm offset
    ],
)
def test_if021_period_fields_follow_the_reference_types(field: str, value: Any, valid: bool) -> None:
    block = _if021_block(2)
    block["B900"]["settlementDayConsumptionPeriods"][0]["consumptionPeriods"][1][field] = value
    assert _validator("IF-021").is_valid(block) is valid


def test_if021_secondary_date_pointer_finds_the_settlement_day() -> None:
    pointer = _channel("IF-021")["routing"]["secondaryDate"]
    message = {"CommonBlock": {}, "CustomBlock": _if021_block()}
    assert _resolve_pointer(message, pointer) == "2026-11-22T00:00:00+00:00"


def test_if005_demo_schema_needs_a_meter_block() -> None:
    validator = _validator("IF-005")
    assert not validator.is_valid({})
    assert not validator.is_valid({"B030": B030})
