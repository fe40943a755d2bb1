"""Property tests over generated input (issue 4, "Fuzzing"): zero crashes in the pure core.

Four parts, each a promise a participant or the operator relies on, checked on input Hypothesis
makes up rather than on hand-picked cases:

(a) Level 1 validation (dip.accept.schema.check_chunk, dip.accept.level1.judge): any bytes, any JSON, and
    near-valid messages (a valid message with a few fields changed, removed, added or renamed
    in another case, sent in several JSON spellings) never raise, always give one verdict per
    message with a known code, and what is accepted is exactly the payload that was validated;
(b) signatures (dip.signing.verify_request): any headers, body, method, URL and clock either
    verify or raise SignatureError, a valid signature verifies and any single-byte change of
    body, method, URL or date makes it fail;
(c) masking (dip.egress.obfuscation.mask): never raises, never changes its argument, keeps the shape
    (same keys, array lengths, leaf kinds and string lengths), and masking twice is masking once;
(d) routing (dip.accept.routing.route): never raises, never sends a message back to the sender's own
    participant/role pair, never lists a pair twice, every recipient holds the role it receives
    as, and MSG1038 comes only when nobody was found and the sender named no primary recipient.

The tests whose name ends in ``_catalogue_accepts`` feed channel definitions the operator API
accepts but the shipped catalogue does not use (a permissive ``payloadSchemas``, unusual JSON
pointer tokens), and MSG1038's rule has a test of its own: kept apart so that the main properties
stay meaningful while one of these finds a bug. Each carries the reproducer it found as an
``@example``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dip import signing
from dip.accept.level1 import Caller, Verdict, judge
from dip.accept.registry import Appointment, Registry
from dip.accept.routing import Routed, RoutingError, route, routing_day
from dip.accept.schema import MAX_HELP, Checked, check_chunk, payload_bytes, spec_for, split_batch
from dip.catalogue import Channel, default_catalogue, parse_definition
from dip.codes import Code
from dip.directory import Directory, Participant
from dip.egress.obfuscation import mask
from dip.exceptions import SignatureError
from dip.tools.samples import consumption_block, meter_install_block

# `make fuzz` raises the number of examples (DIP_FUZZ_PROPERTY_EXAMPLES); make test keeps it bounded
_EXAMPLES = int(os.environ.get("DIP_FUZZ_PROPERTY_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ_MORE = settings(FUZZ, max_examples=_EXAMPLES * 3 // 2)

# ---------------------------------------------------------------------------------------------
# arbitrary JSON

_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),  # what JSON parsers keep as integers
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json: st.SearchStrategy[Any] = st.recursive(
    _json_leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                                 max_size=4)),
    max_leaves=20,
)


def _exact(value: Any) -> bytes:
    """A comparison key that tells 1 from 1.0 and True (Python's == does not)."""
    return orjson.dumps(value)


# ---------------------------------------------------------------------------------------------
# (a) Level 1 validation: the cast, the channels, valid messages

NOW = datetime(2026, 11, 23, 10, 20, tzinfo=UTC)
SENT = "2026-11-23T10:15:00+00:00"
RECEIVED_AT = 1_795_429_200_000_000
MPAN = "1234567890123"

SUP, REGS, MSS, SDS, MDS, LDSO, DCP, MULTI, IDLE, UNKNOWN = (
    "1000000001", "1100000001", "1200000001", "1300000001", "1400000001", "1500000001", "1600000001",
    "1700000001", "1900000001", "1999999999",
)
PARTICIPANTS = {
    SUP: Participant(SUP, "Supplier", frozenset({"SUP"})),
    REGS: Participant(REGS, "Registration", frozenset({"REGS"})),
    MSS: Participant(MSS, "Metering", frozenset({"MSS", "MSA"})),
    SDS: Participant(SDS, "Smart data", frozenset({"SDS"})),
    MDS: Participant(MDS, "Meter data", frozenset({"MDS"})),
    LDSO: Participant(LDSO, "Distributor", frozenset({"LDSO"})),
    DCP: Participant(DCP, "Connection provider", frozenset({"DCP"})),
    MULTI: Participant(MULTI, "Several roles", frozenset({"SUP", "SDS", "REGS"})),
    IDLE: Participant(IDLE, "Off-boarded", frozenset({"SUP", "SDS", "REGS", "MSS"}), active=False),
}
DIRECTORY = Directory(
    participants=PARTICIPANTS,
    providers={(SDS, DCP): frozenset({"SDS"}), (MSS, DCP): frozenset({"MSS"}), (IDLE, DCP): frozenset({"SUP"})},
)
REGISTRY = Registry([
    Appointment(MPAN, "SUP", SUP, "2020-01-01", None),
    Appointment(MPAN, "LDSO", LDSO, "2020-01-01", None),
    Appointment(MPAN, "SUP", IDLE, "2019-01-01", "2019-12-31"),
])
CALLERS = [
    Caller(PARTICIPANTS[pid], PARTICIPANTS[pid]) for pid in (SUP, REGS, MSS, SDS, MULTI)
] + [Caller(PARTICIPANTS[SDS], PARTICIPANTS[DCP]), Caller(PARTICIPANTS[MSS], PARTICIPANTS[DCP])]

_SHIPPED = dict(default_catalogue(with_demo_schemas=True))
REGISTRATION = parse_definition("IF-909", orjson.dumps({
    "publicationID": "PUB-909",
    "title": "A registration flow that appoints suppliers",
    "senderRoles": ["REGS"],
    "eventCodes": ["[Appoint]"],
    "schemaVersions": ["011"],
    "routing": {"primary": ["SUP"], "secondary": ["LDSO"], "secondaryDate": "/CustomBlock/B001/from",
                "always": {"roles": ["MDS"]}},
    "correlation": "create",
    "registryUpdates": [
        {"role": "SUP", "participant": "/CustomBlock/B001/supplier", "effectiveFrom": "/CustomBlock/B001/from"},
        {"role": "SUP", "participant": "/CustomBlock/B002/supplier", "effectiveTo": "/CustomBlock/B002/to"},
    ],
}))
CHANNELS: dict[str, Channel] = {
    **{iid: parse_definition(iid, _SHIPPED[iid]) for iid in ("IF-005", "IF-006", "IF-021")},
    "IF-909": REGISTRATION,
}
EVENT_CODES = {"IF-005": "[MeterInstall]", "IF-006": "[MeterInstall]", "IF-021": "[ActivePower]",
               "IF-909": "[Appoint]"}
CUSTOM_BLOCKS: dict[str, dict[str, Any]] = {
    "IF-005": meter_install_block(NOW),
    "IF-006": meter_install_block(NOW),
    "IF-021": consumption_block(SDS, NOW - timedelta(days=1), random.Random(7)),
    "IF-909": {"B001": {"supplier": MULTI, "from": "2026-11-01"}, "B002": {"supplier": SUP, "to": "2026-10-31"}},
}
# who normally sends on each channel, and to whom it is addressed
SENDERS = {"IF-005": (MSS, "MSS"), "IF-006": (REGS, "REGS"), "IF-021": (SDS, "SDS"), "IF-909": (REGS, "REGS")}
PRIMARY = {"IF-005": [REGS], "IF-006": [MSS], "IF-021": [], "IF-909": [SUP]}

SCHEMA_CODES = {Code.SCHEMA_FAILURE.value, Code.INTERFACE_INVALID.value}
LEVEL1_CODES = {
    Code.SUCCESS, Code.SENDER_INVALID, Code.CONNECTION_PROVIDER_INVALID, Code.SENDER_ROLE_INVALID,
    Code.SUR_DUPLICATED, Code.SENDER_TIMESTAMP_INVALID, Code.SENDER_CORRELATION_INVALID, Code.ROUTING_ERROR,
    Code.PRIMARY_PARTICIPANT_INVALID, Code.PRIMARY_ROLE_INVALID, Code.SECONDARY_MISSING_MPAN,
    Code.SECONDARY_UNRESOLVED,
}


def valid_payload(interface_id: str, ref: str = "r1", sender: tuple[str, str] | None = None,
                  dcp: str | None = None) -> dict[str, Any]:
    pid, role = sender or SENDERS[interface_id]
    return {
        "CommonBlock": {
            "S0": {"interfaceID": interface_id, "schemaVersion": "011", "eventCode": EVENT_CODES[interface_id]},
            "S1": {
                "environmentTag": "DEV",
                "subText": None,
                "senderUniqueReference": f"S-{interface_id}-{pid}-{role}-20261123-{ref}",
                "senderTimestamp": SENT,
                "senderDIPID": pid,
                "senderRoleID": role,
                "senderCorrelationID": "CI-20261120-abc" if interface_id == "IF-006" else None,
                "DIPConnectionProviderID": dcp,
            },
            "A0": {"primaryRecipients": list(PRIMARY[interface_id]), "secondaryRecipients": [], "always": []},
            "M0": {"MPANCore": MPAN, "distributorDIPID": LDSO, "GSPGroupID": "_A"},
        },
        "CustomBlock": copy.deepcopy(CUSTOM_BLOCKS[interface_id]),
    }


def test_the_unmutated_messages_are_accepted_on_every_channel() -> None:
    """The base the near-valid messages start from is valid, so mutations explore the edges of acceptance."""
    for interface_id, channel in CHANNELS.items():
        pid, _ = SENDERS[interface_id]
        verdicts, _ = _judged(channel, Caller(PARTICIPANTS[pid], PARTICIPANTS[pid]),
                              [orjson.dumps({"payload": valid_payload(interface_id)})])
        assert [v.code for v in verdicts] == [Code.SUCCESS], [v.help for v in verdicts]


# ---- near-valid messages: a valid one, then a few mutations, then one of several JSON spellings

_INTERESTING: st.SearchStrategy[Any] = st.sampled_from([
    SUP, REGS, MSS, SDS, MDS, LDSO, DCP, MULTI, IDLE, UNKNOWN, "SUP", "REGS", "MSS", "SDS", "ADS", "DCP",
    "DEV", "PRD", "011", "IF-021", "IF-005", "[ActivePower]", "[MeterInstall]", MPAN, "_A",
    "S-IF-021-1300000001-SDS-20261123-x1", "S-IF-005-1200000001-MSS-20261123-r1", "S-021-1300000001-SDS-1-a",
    SENT, "2026-11-23T10:26:00+00:00", "2026-11-23T23:59:59-14:00", "2026-13-45T10:00:00+00:00",
    "2026-11-23T10:15:00Z", "0001-01-01T00:00:00+00:00", "2026-11-01", "2026-W47-1", "9999-12-31",
    "CI-20261120-abc", "CI-2026-xyz", "", " ", None, [], {}, [None], [SUP, None, UNKNOWN],
])
_values = st.one_of(_INTERESTING, _json).map(copy.deepcopy)  # never share a mutable value between draws

Path = tuple[str | int, ...]

# schema-valid values for the fields the Level 1 rules read, so that those rules decide the verdict
# (sender, role and connection provider vary with the sender drawn for each message)
_TARGETED: dict[Path, list[Any]] = {
    ("CommonBlock", "S1", "senderTimestamp"): [
        "2026-11-23T10:26:00+00:00", "2026-11-23T10:24:59+00:00", "2026-02-30T10:00:00+00:00",
        "2026-11-23T05:15:00-05:00", "2026-11-23T20:15:00+10:00", "1970-01-01T00:00:00+00:00",
        "2026-11-23 10:15:00+00:00",
    ],
    ("CommonBlock", "S1", "senderCorrelationID"): [None, "CI-2026-xyz", "CI-20261120-abc", "CI-20261120-" + "a" * 48],
    ("CommonBlock", "S1", "senderUniqueReference"): [
        "S-IF-021-1300000001-SDS-20261123-r1", "S-IF-005-1200000001-MSS-20261123-r1",
        "S-IF-006-1100000001-REGS-20261123-r1", "S-IF-909-1100000001-REGS-20261123-r1", "S-021-1300000001-SDS-1-a",
        "S-REP-021-1300000001-SDS-20261123-r1", "S-909-1100000001-REGS-20261123-r2",
    ],
    ("CommonBlock", "S1", "environmentTag"): ["DEV", "PRD"],
    ("CommonBlock", "A0", "primaryRecipients"): [[], [None], [UNKNOWN], [SUP], [REGS], [MSS], [IDLE], [MULTI],
                                                 [REGS, REGS], [REGS, None, SUP]],
    ("CommonBlock", "M0", "MPANCore"): [MPAN, "9876543210987"],
    ("CustomBlock", "B001", "from"): ["2026-11-01", "2019-06-01", "2026-11-01T00:00:00+00:00", "not a date"],
    ("CustomBlock", "B002", "to"): ["2026-10-31", "2019-06-01", None],
    ("CustomBlock", "B001", "supplier"): [SUP, MULTI, UNKNOWN, None],
}


def _children(node: Any, prefix: Path = ()) -> Iterator[Path]:
    """The path of every value below ``node`` (not ``node`` itself)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _children(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _children(value, (*prefix, index))


def _at(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def _mutated(draw: st.DrawFn, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with 0 to 3 changes: a field set, removed, added or renamed in another case."""
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        paths = list(_children(payload))
        if not paths:
            break
        common = [p for p in paths if p[0] == "CommonBlock"]  # where most checks look: 3 in 4 changes
        kind = draw(st.sampled_from(["targeted", "targeted", "targeted", "set", "set", "delete", "recase", "add"]))
        if kind == "targeted":
            path = draw(st.sampled_from(sorted(_TARGETED, key=repr)))
            node: Any = payload
            for step in path[:-1]:
                node = node.get(step) if isinstance(node, dict) else None
            if isinstance(node, dict) and path[-1] in node:
                node[path[-1]] = copy.deepcopy(draw(st.sampled_from(_TARGETED[path])))
            continue
        mostly_common = common and draw(st.integers(min_value=0, max_value=3)) > 0
        path = draw(st.sampled_from(common if mostly_common else paths))
        parent: Any = _at(payload, path[:-1])
        last = path[-1]
        if kind == "set":
            parent[last] = draw(_values)
        elif kind == "delete" and isinstance(parent, dict):
            del parent[last]
        elif kind == "recase" and isinstance(parent, dict) and isinstance(last, str):
            other = draw(st.sampled_from([last.lower(), last.upper(), last.swapcase()]))
            if other != last and other not in parent:
                parent[other] = parent.pop(last)
        elif kind == "add":
            target = _at(payload, path) if isinstance(_at(payload, path), dict) else payload
            target[draw(st.text(max_size=12))] = draw(_values)
    return payload


def _encode(payload: dict[str, Any], spelling: str) -> bytes:
    compact = orjson.dumps(payload)
    if spelling == "compact":  # what dip.tools.client sends: stored as sliced from the body
        return b'{"payload":' + compact + b"}"
    if spelling == "spaced":  # re-encoded by the schema stage
        return json.dumps({"payload": payload}, indent=1).encode()
    if spelling == "key-case":  # the wrapper's key in another case
        return b'{"PayLoad":' + compact + b"}"
    # a duplicate key: JSON parsers keep the last one, and so must what is stored
    return b'{"payload": {"CommonBlock": {}}, "payload":' + compact + b"}"


OTHER_SENDERS = [(pid, role) for pid in (SUP, REGS, MSS, SDS, MULTI, IDLE, UNKNOWN)
                 for role in ("SUP", "REGS", "MSS", "SDS", "ADS")]
Batch = tuple[Channel, Caller, list[bytes], list[dict[str, Any]]]


@st.composite
def near_valid_batches(draw: st.DrawFn) -> Batch:
    """1-4 near-valid messages for one channel and who sends them: (channel, caller, items, the payloads sent)."""
    interface_id = draw(st.sampled_from(sorted(CHANNELS)))
    usual = SENDERS[interface_id]
    # mostly the channel's usual sender calling for itself, so that mutations decide the verdicts
    itself = Caller(PARTICIPANTS[usual[0]], PARTICIPANTS[usual[0]])
    caller = draw(st.sampled_from([itself] * 8 + CALLERS))
    raws, payloads = [], []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        sender = draw(st.sampled_from([usual] * len(OTHER_SENDERS) * 2 + OTHER_SENDERS))
        acting = caller.physical.id == DCP
        dcp = draw(st.sampled_from([DCP] * 6 + [None] if acting else [None] * 10 + [DCP, SUP]))
        ref = draw(st.sampled_from(["r1", "r2", "r3", "x"]))  # repeats give duplicate references
        payload = draw(_mutated(valid_payload(interface_id, ref, sender, dcp)))
        raws.append(_encode(payload, draw(st.sampled_from(["compact", "spaced", "key-case", "duplicate"]))))
        payloads.append(payload)
    return CHANNELS[interface_id], caller, raws, payloads


def _names(value: Any) -> list[str]:
    """Every field name in a document, depth first."""
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in (k, *_names(v))]
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    return []


def _folded(value: Any) -> Any:
    """Field names lower-cased, for comparing a payload with its canonical spelling."""
    if isinstance(value, dict):
        return {str(k).lower(): _folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_folded(v) for v in value]
    return value


def _check_schema_stage(channel: Channel, raws: list[bytes]) -> list[Checked]:
    spec = spec_for(channel, "DEV")
    checked = check_chunk(spec, 0, raws)
    assert [c.index for c in checked] == list(range(len(raws))), "one result per message, in order"
    for c, raw in zip(checked, raws, strict=True):
        if c.code is None:
            assert c.header is not None and c.help is None
            stored = payload_bytes(c, raw)
            # the stored bytes are themselves a compact, valid message with the same header
            [again] = check_chunk(spec, 0, [b'{"payload":' + stored + b"}"])
            assert again.code is None, again.help
            assert again.header == c.header
            assert again.payload is None, "what is stored is already in its compact canonical form"
        else:
            assert c.code in SCHEMA_CODES
            assert c.header is None
            assert isinstance(c.help, str) and 0 < len(c.help) <= MAX_HELP
    return checked


def _judged(channel: Channel, caller: Caller, raws: list[bytes]) -> tuple[list[Verdict], list[Checked]]:
    checked = _check_schema_stage(channel, raws)
    passed = [c for c in checked if c.code is None]
    verdicts = judge(channel, DIRECTORY, caller, passed, raws, NOW, RECEIVED_AT, REGISTRY)
    assert [v.index for v in verdicts] == [c.index for c in passed], "one verdict per message, in order"
    return verdicts, checked


@FUZZ
@given(near_valid_batches())
def test_near_valid_messages_get_one_known_verdict_each_and_accepted_ones_round_trip(batch: Batch) -> None:
    channel, caller, raws, payloads = batch
    verdicts, checked = _judged(channel, caller, raws)
    accepted_refs: set[tuple[str, str]] = set()
    transaction_ids: set[str] = set()
    for v in verdicts:
        assert v.code in LEVEL1_CODES
        if not v.accepted:
            assert v.code is not Code.SUCCESS and v.row is None and v.deliveries == ()
            assert isinstance(v.help, str) and v.help
            continue
        assert v.code is Code.SUCCESS and v.help is None and v.row is not None
        c = checked[v.index]
        assert c.header is not None
        row = v.row
        assert row.payload == payload_bytes(c, raws[v.index])
        stored, sent = orjson.loads(row.payload), payloads[v.index]
        if _exact(stored) != _exact(sent):
            # only field names may differ, and only in case: the DIP stores the schema's spelling
            assert _exact(_folded(stored)) == _exact(_folded(sent)), "the payload is stored as validated"
            assert _names(stored) != _names(sent)
        assert (row.interface_id, row.sender_id, row.sender_role, row.sur) == (
            channel.interface_id, c.header.sender_id, c.header.sender_role, c.header.sur)
        assert (row.sender_id, row.sur) not in accepted_refs, "a sender reference is accepted once per batch"
        accepted_refs.add((row.sender_id, row.sur))
        assert row.transaction_id not in transaction_ids
        transaction_ids.add(row.transaction_id)
        pairs = [(d.recipient_id, d.role) for d in v.deliveries]
        assert len(pairs) == len(set(pairs))
        assert (row.sender_id, row.sender_role) not in pairs
        for d in v.deliveries:
            participant = DIRECTORY.active(d.recipient_id)
            assert participant is not None and d.role in participant.roles


@FUZZ
@given(
    st.sampled_from(sorted(CHANNELS)),
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            _json.map(orjson.dumps),
            _json.map(lambda p: orjson.dumps({"payload": p})),
            _json.map(lambda p: orjson.dumps({"payload": {"CommonBlock": p, "CustomBlock": {}}})),
        ),
        min_size=1, max_size=4,
    ),
)
def test_any_bytes_or_json_get_one_schema_verdict_each(interface_id: str, raws: list[bytes]) -> None:
    checked = _check_schema_stage(CHANNELS[interface_id], raws)
    passed = [c for c in checked if c.code is None]
    verdicts = judge(CHANNELS[interface_id], DIRECTORY, CALLERS[0], passed, raws, NOW, RECEIVED_AT, REGISTRY)
    assert len(verdicts) == len(passed)


@FUZZ
@given(st.one_of(st.binary(max_size=200), _json.map(orjson.dumps),
                 st.lists(_json, max_size=5).map(lambda items: json.dumps(items, indent=1).encode())))
@example(b"[" * 100_000)
@example(b'[{"payload": {}} , {"a": 1}]')
def test_splitting_a_body_never_raises(body: bytes) -> None:
    items = split_batch(body)
    if isinstance(items, str):
        assert items
    else:
        decoded = orjson.loads(body)
        assert isinstance(decoded, list) and len(items) == len(decoded)
        assert [orjson.loads(bytes(item)) for item in items] == decoded


# ---- channel definitions the catalogue accepts but the shipped one does not use

LOOSE = parse_definition("IF-908", orjson.dumps({
    "publicationID": "PUB-908",
    "title": "A channel whose imported payload schema constrains little",
    "senderRoles": ["SDS"],
    "eventCodes": ["[ActivePower]"],
    "schemaVersions": ["011"],
    "routing": {"always": {"roles": ["MDS"]}},
    "payloadSchemas": {"*": {"type": "object", "required": ["CommonBlock", "CustomBlock"]}},
}))


def _loose_payload(common: dict[str, Any]) -> dict[str, Any]:
    s1 = valid_payload("IF-021")["CommonBlock"]["S1"]
    return {
        "CommonBlock": {"S0": {"interfaceID": "IF-908", "schemaVersion": "011", "eventCode": "[ActivePower]"},
                        "S1": {**s1, "senderUniqueReference": "S-IF-908-1300000001-SDS-20261123-r1"}, **common},
        "CustomBlock": {},
    }


@FUZZ
@given(st.dictionaries(st.sampled_from(["S0", "S1", "A0", "M0", "R0"]), _values, max_size=3).map(_loose_payload))
@example(_loose_payload({"A0": [SUP]}))  # A0 an array: AttributeError in validation._header
@example(_loose_payload({"M0": "1234567890123"}))  # M0 a string: AttributeError in validation._header
@example(_loose_payload({"S1": {**valid_payload("IF-021")["CommonBlock"]["S1"], "senderUniqueReference": 7}}))
def test_messages_on_a_channel_with_a_loose_payload_schema_the_catalogue_accepts(payload: dict[str, Any]) -> None:
    """payloadSchemas are the operator's (imported) schemas: the DIP must not assume they pin the
    common blocks' types. A message they let through is judged, or refused, but never crashes."""
    raws = [orjson.dumps({"payload": payload})]
    checked = check_chunk(spec_for(LOOSE, "DEV"), 0, raws)
    assert len(checked) == 1 and (checked[0].code is None or checked[0].code in SCHEMA_CODES)
    passed = [c for c in checked if c.code is None]
    verdicts = judge(LOOSE, DIRECTORY, CALLERS[3], passed, raws, NOW, RECEIVED_AT, REGISTRY)
    assert all(v.code in LEVEL1_CODES for v in verdicts)


def _pointer_channel(token: str) -> Channel:
    escaped = token.replace("~", "~0").replace("/", "~1")
    return parse_definition("IF-907", orjson.dumps({
        "publicationID": "PUB-907",
        "title": "Routed by a date inside an array",
        "senderRoles": ["SDS"],
        "eventCodes": ["[ActivePower]"],
        "schemaVersions": ["011"],
        "routing": {"secondary": ["SUP"], "secondaryDate": f"/CustomBlock/days/{escaped}"},
        "registryUpdates": [{"role": "SUP", "participant": f"/CustomBlock/suppliers/{escaped}",
                             "effectiveFrom": f"/CustomBlock/days/{escaped}"}],
    }))


@FUZZ
@given(st.one_of(st.text(max_size=6), st.from_regex(r"[0-9]{1,6}", fullmatch=True)))
@example("²")  # str.isdigit() is true, int() refuses it: ValueError in registry_updates.field_at
@example("9" * 5000)  # past int()'s 4300-digit limit: ValueError in registry_updates.field_at
def test_schema_stage_with_routing_and_registry_pointers_the_catalogue_accepts(token: str) -> None:
    channel = _pointer_channel(token)
    payload = {
        "CommonBlock": {"S0": {"interfaceID": "IF-907", "schemaVersion": "011", "eventCode": "[ActivePower]"},
                        "S1": {**valid_payload("IF-021")["CommonBlock"]["S1"],
                               "senderUniqueReference": "S-IF-907-1300000001-SDS-20261123-r1"},
                        "M0": {"MPANCore": MPAN, "distributorDIPID": LDSO, "GSPGroupID": "_A"}},
        "CustomBlock": {"days": ["2026-11-01", "2026-11-02"], "suppliers": [SUP, MULTI]},
    }
    raws = [orjson.dumps({"payload": payload})]
    [checked] = check_chunk(spec_for(channel, "DEV"), 0, raws)
    assert checked.code is None, checked.help
    verdicts = judge(channel, DIRECTORY, CALLERS[3], [checked], raws, NOW, RECEIVED_AT, REGISTRY)
    assert [v.code in LEVEL1_CODES for v in verdicts] == [True]


# ---------------------------------------------------------------------------------------------
# (b) signatures

URL = "https://dip.example.com/dip-channel/IF-021"
BODY = b'[{"payload": {"CommonBlock": {}, "CustomBlock": {}}}]'
SIGNED_AT = datetime.now(UTC).replace(microsecond=0)
HEADER_NAMES = (signing.SIGNATURE, signing.SIGNATURE_DATE, signing.CONTENT_HASH, signing.SIGNATURE_CERTIFICATE)


def _identity(key: Any = None) -> tuple[signing.SigningKey, bytes]:
    key_pem, cert_pem = signing.generate_identity("1300000001", key=key)
    return signing.load_private_key_pem(key_pem), cert_pem


def _rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


IDENTITIES = {"ec": _identity(), "rsa": _identity(_rsa_key())}
VALID_HEADERS = signing.sign_headers(*IDENTITIES["ec"], "POST", URL, BODY, now=SIGNED_AT)

_offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_dates = st.datetimes(timezones=_offsets)
_latin1 = st.text(st.characters(max_codepoint=255, exclude_categories=["Cs"]), max_size=60)
_header_values = st.one_of(
    _latin1,
    st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
    _dates.map(datetime.isoformat),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=_offsets).map(
        signing.format_date),  # (a client-side helper: for the years a clock can show)
    st.sampled_from(["9999-12-31T24:00:00+00:00", "0001-01-01T00:00:00+14:00", "2026-11-23T10:15:00",
                     signing.certificate_header(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                     signing.certificate_header(signing.generate_identity("x")[0])]),  # a key, not a certificate
)


@st.composite
def _headers(draw: st.DrawFn) -> dict[str, str]:
    """Each signature header valid, missing, or replaced by something made up."""
    headers: dict[str, str] = {}
    for name in HEADER_NAMES:
        choice = draw(st.sampled_from(["valid", "random", "missing"]))
        if choice == "valid":
            headers[name] = VALID_HEADERS[name]
        elif choice == "random":
            headers[name] = draw(_header_values)
    return headers


@FUZZ_MORE
@given(
    _headers(),
    st.one_of(st.sampled_from(["POST", "DELETE", "GET"]), _latin1),
    st.one_of(st.just(URL), _latin1),
    st.one_of(st.just(BODY), st.binary(max_size=100)),
    st.one_of(st.just(SIGNED_AT), st.datetimes(timezones=st.just(UTC))),
)
def test_any_headers_body_and_clock_verify_or_raise_signature_error(
    headers: dict[str, str], method: str, url: str, body: bytes, now: datetime,
) -> None:
    try:
        signer = signing.verify_request(headers, method, url, body, now)
    except SignatureError as exc:
        reason = str(exc)
    else:
        reason = "verified"
        assert signer.fingerprint == signing.fingerprint(signer.certificate)
    assert reason, "a refusal says why"


_url_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?=&%"


@FUZZ_MORE
@given(
    st.sampled_from(sorted(IDENTITIES)),
    st.sampled_from(["POST", "DELETE", "GET", "PUT"]),
    st.text(_url_chars, max_size=40).map(lambda tail: "http://127.0.0.1:8080/" + tail),
    st.binary(max_size=300),
    st.integers(min_value=-299, max_value=299),
    st.sampled_from(["body", "rehashed-body", "method", "url", "date"]),
    st.data(),
)
def test_a_valid_signature_verifies_and_any_single_byte_change_fails(
    kind: str, method: str, url: str, body: bytes, skew: int, target: str, data: st.DataObject,
) -> None:
    key, cert_pem = IDENTITIES[kind]
    headers = signing.sign_headers(key, cert_pem, method, url, body, now=SIGNED_AT + timedelta(seconds=skew))
    signer = signing.verify_request(headers, method, url, body, SIGNED_AT)
    assert signer.fingerprint == signing.fingerprint(signing.load_certificate_pem(cert_pem))
    # case does not count in the method and the URL (both are normalised before signing)
    signing.verify_request(headers, method.lower(), url.upper(), body, SIGNED_AT)

    def changed(value: bytes, normalise: Callable[[bytes], bytes] = lambda b: b) -> bytes:
        assume(len(value) > 0)
        position = data.draw(st.integers(min_value=0, max_value=len(value) - 1), label="position")
        byte = data.draw(st.integers(min_value=0x21, max_value=0x7E), label="byte")
        out = value[:position] + bytes([byte]) + value[position + 1:]
        assume(normalise(out) != normalise(value))
        return out

    tampered = dict(headers)
    if target in ("body", "rehashed-body"):
        new_body = changed(body) if body else body + b" "
        if target == "rehashed-body":
            tampered[signing.CONTENT_HASH] = signing.content_hash(new_body)
        args = (method, url, new_body)
    elif target == "method":
        args = (changed(method.encode(), bytes.upper).decode(), url, body)
    elif target == "url":
        args = (method, changed(url.encode(), bytes.lower).decode(), body)
    else:
        tampered[signing.SIGNATURE_DATE] = changed(headers[signing.SIGNATURE_DATE].encode()).decode()
        args = (method, url, body)
    with pytest.raises(SignatureError):
        signing.verify_request(tampered, *args, SIGNED_AT)


# ---------------------------------------------------------------------------------------------
# (c) masking

_keys = st.one_of(st.text(max_size=6), st.sampled_from(["*", "~", "/", "0", "1", "01", "-", "", "²", "١"]))
_mask_leaves = st.one_of(
    _json_leaves,
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.sampled_from(["١٢٣٤٥٦٧٨٩٠", "٢٠٢٦-١١-٢٣", "xxx", "1900-01-01", "9999999999", -0.0, 1e308]),
)
_documents: st.SearchStrategy[Any] = st.recursive(
    _mask_leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)),
    max_leaves=25,
)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@st.composite
def documents_and_pointers(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A document and pointers into it: along its real keys and indexes, with "*" and made-up tokens."""
    document = draw(_documents)
    pointers = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        node, tokens = document, []
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            real = list(node) if isinstance(node, dict) else [str(i) for i in range(len(node))] \
                if isinstance(node, list) else []
            token = draw(st.one_of(st.sampled_from(real), _keys) if real else _keys)
            if draw(st.booleans()) and isinstance(node, dict | list):
                token = "*" if draw(st.booleans()) else token
            tokens.append(token)
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isascii() and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                node = None
        pointers.append("".join("/" + _escape(t) for t in tokens))
    return document, pointers


def _shape(value: Any) -> Any:
    """What masking keeps: object keys in order, array lengths, leaf kinds, string lengths."""
    if isinstance(value, dict):
        return ("object", tuple((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_shape(v) for v in value))
    if value is None or isinstance(value, bool):
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    assert isinstance(value, str)
    return ("string", len(value))


@FUZZ_MORE
@given(documents_and_pointers())
def test_masking_never_raises_never_touches_its_argument_keeps_the_shape_and_is_idempotent(
    case: tuple[Any, list[str]],
) -> None:
    document, pointers = case
    before = _exact(document)
    once = mask(document, pointers)
    assert _exact(document) == before, "the argument (the archived payload) is never modified"
    assert _shape(once) == _shape(document)
    twice = mask(once, pointers)
    assert _exact(twice) == _exact(once), "masking twice equals masking once"
    assert _exact(document) == before


@settings(FUZZ, max_examples=50)
@given(st.from_regex(r"[0-9]{1,12}", fullmatch=True))
@example("9" * 5000)  # past int()'s 4300-digit limit: ValueError in obfuscation._mask_at
def test_masking_with_index_tokens_the_catalogue_accepts(token: str) -> None:
    channel = parse_definition("IF-906", orjson.dumps({
        "publicationID": "PUB-906", "title": "t", "senderRoles": ["MSS"], "eventCodes": ["[X]"],
        "schemaVersions": ["011"], "obfuscation": {"SUP": [f"/list/{token}/serial"]},
    }))
    document = {"list": [{"serial": "S1"}, {"serial": "S2"}]}
    masked = mask(document, channel.definition.obfuscation["SUP"])
    assert _shape(masked) == _shape(document)


# ---------------------------------------------------------------------------------------------
# (d) routing

ROLE_POOL = ["SUP", "REGS", "MDS", "LDSO", "ADS"]
PID_POOL = [f"P00000000{i}" for i in range(6)]
NOBODY = "P999999999"  # never on-boarded
DAYS = ["2023-06-01", "2024-04-01", "2030-01-01"]
OTHER_MPAN = "9876543210987"


@st.composite
def routing_cases(draw: st.DrawFn) -> tuple[Channel, Directory, Registry, tuple[str, str], list[str | None],
                                            str | None, str]:
    people = {}
    for pid in PID_POOL:
        if draw(st.integers(min_value=0, max_value=4)):
            held = draw(st.frozensets(st.sampled_from(ROLE_POOL), min_size=1, max_size=3))
            people[pid] = Participant(pid, pid, held, active=draw(st.integers(min_value=0, max_value=5)) > 0)
    roles = st.lists(st.sampled_from(ROLE_POOL), unique=True, max_size=3)
    definition = {
        "publicationID": "PUB-909", "title": "t", "senderRoles": ROLE_POOL, "eventCodes": ["[X]"],
        "schemaVersions": ["011"],
        "routing": {
            "primary": draw(roles), "secondary": draw(roles),
            "always": {"roles": draw(roles), "participants": draw(st.lists(st.sampled_from([*PID_POOL, NOBODY]),
                                                                           max_size=3))},
        },
    }
    channel = parse_definition("IF-909", orjson.dumps(definition))
    appointments = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        start = draw(st.sampled_from(["2020-01-01", "2024-01-01", "2024-04-01"]))
        end = draw(st.sampled_from([None, *(e for e in ("2023-12-31", "2024-03-31", "2029-12-31") if e >= start)]))
        appointments.append(Appointment(draw(st.sampled_from([MPAN, OTHER_MPAN])), draw(st.sampled_from(ROLE_POOL)),
                                        draw(st.sampled_from([*PID_POOL, NOBODY])), start, end))
    sender = (draw(st.sampled_from(PID_POOL)), draw(st.sampled_from(ROLE_POOL)))
    primary = draw(st.lists(st.sampled_from([*PID_POOL, NOBODY, None, ""]), max_size=3))
    mpan = draw(st.sampled_from([MPAN, MPAN, OTHER_MPAN, None, ""]))
    return (channel, Directory(participants=people), Registry(appointments), sender, primary, mpan,
            draw(st.sampled_from(DAYS)))


RoutingCase = tuple[Channel, Directory, Registry, tuple[str, str], list[str | None], str | None, str]


@FUZZ_MORE
@given(routing_cases())
def test_routing_invariants_on_generated_directories_registries_and_channels(case: RoutingCase) -> None:
    channel, directory, registry, sender, primary, mpan, day = case
    rules = channel.definition.routing
    named = [p for p in primary if p is not None]
    result = route(channel, directory, registry, sender, primary, mpan, day)
    assert isinstance(result, Routed | RoutingError)
    if isinstance(result, RoutingError):
        assert result.help
        if result.code is Code.PRIMARY_PARTICIPANT_INVALID:
            assert any(directory.active(p) is None for p in named)
        elif result.code is Code.PRIMARY_ROLE_INVALID:
            assert any((a := directory.active(p)) is not None and not a.roles & set(rules.primary) for p in named)
        elif result.code is Code.SECONDARY_MISSING_MPAN:
            assert rules.secondary and not mpan
        else:
            assert result.code is Code.SECONDARY_UNRESOLVED
            assert rules.secondary and mpan
            assert not [pid for role in rules.secondary for pid in registry.lookup(mpan, role, day)
                        if (p := directory.active(pid)) is not None and role in p.roles], "nobody was found"
        return
    pairs = [(r.participant_id, r.role) for r in result.recipients]
    assert len(pairs) == len(set(pairs)), "a participant/role pair receives a message once"
    assert sender not in pairs, "the sender's own pair never receives its message"
    for r in result.recipients:
        participant = directory.active(r.participant_id)
        assert participant is not None, "only on-boarded participants receive"
        assert r.role in participant.roles, "every recipient holds the role it receives as"
        if r.kind == "primary":
            assert r.participant_id in named and r.role in rules.primary
        elif r.kind == "secondary":
            assert mpan and r.role in rules.secondary and r.participant_id in registry.lookup(mpan, r.role, day)
        else:
            assert r.kind == "always"
            assert r.role in rules.always.roles or r.participant_id in rules.always.participants
    receiving = {r.participant_id for r in result.recipients}
    for ids in (result.secondary_ids, result.always_ids):
        assert len(ids) == len(set(ids)) and set(ids) <= receiving
    # nobody who should receive is left out
    for pid in named:
        for role in sorted(_roles_of(directory, pid) & set(rules.primary)):
            assert (pid, role) == sender or (pid, role) in pairs
    for role in rules.always.roles:
        for p in directory.holders(role):
            assert (p.id, role) == sender or (p.id, role) in pairs


def _roles_of(directory: Directory, pid: str) -> frozenset[str]:
    participant = directory.active(pid)
    return participant.roles if participant is not None else frozenset()


@FUZZ_MORE
@given(routing_cases())
@example((  # the sender names itself, in the role it sends as, and nobody is appointed to the MPAN
    parse_definition("IF-041", orjson.dumps({
        "publicationID": "PUB-041", "title": "t", "senderRoles": ["SUP"], "eventCodes": ["[X]"],
        "schemaVersions": ["011"], "routing": {"primary": ["SUP"], "secondary": ["LDSO"]}})),
    Directory(participants={"P000000000": Participant("P000000000", "Supplier", frozenset({"SUP"}))}),
    Registry(), ("P000000000", "SUP"), ["P000000000"], MPAN, "2024-04-01",
))
def test_msg1038_only_when_nobody_was_found_and_no_primary_recipient_was_named(case: RoutingCase) -> None:
    """docs/api.md and dip.accept.routing: MSG1038 "only when the sender named no primary recipient"."""
    channel, directory, registry, sender, primary, mpan, day = case
    result = route(channel, directory, registry, sender, primary, mpan, day)
    if isinstance(result, RoutingError) and result.code is Code.SECONDARY_UNRESOLVED:
        assert [p for p in primary if p is not None] == [], "MSG1038 although the sender named a primary recipient"


@FUZZ
@given(st.one_of(_json, _dates.map(datetime.isoformat), st.text(max_size=12)))
@example("2024-W01-1")
@example("20240101T00:00")
def test_routing_day_is_always_an_iso_date(value: Any) -> None:
    day = routing_day(value, "2024-05-01")
    assert len(day) == 10 and datetime.strptime(day, "%Y-%m-%d")
