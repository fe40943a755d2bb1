"""Conformance with the official DIP API v2.1.0 (runs where ../shared/reference is present).

`dip catalogue import-openapi` loads the official per-interface schemas into a running DIP;
then the official example messages (corrected where stale, see tests/data/examples_corrected.json)
are accepted, broken copies are refused, and the DIP's responses validate against the
official StandardResponse schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from dip.catalogue_import import import_into_dip
from dip.client import DipClient, Identity
from dip.openapi_import import component_schema
from dip.samples import sample_appointments
from dip.testing import AdminClient, RunningDip
from tests.conftest import REFERENCE

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"official reference not found at {REFERENCE}")

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "examples_corrected.json").read_text(encoding="utf-8")
)
RECIPIENT = "2300000900"


@pytest.fixture
def imported(dip: RunningDip, admin: AdminClient) -> dict[str, Identity]:
    """The official schemas imported; example senders and recipients on-board."""
    lines = import_into_dip(REFERENCE, dip.url, dip.admin_key)
    assert len(lines) == 58 and all("refused" not in line and "skipped" not in line for line in lines), lines
    admin.put_participant(RECIPIENT, ["SUP", "MSS"]).raise_for_status()
    # the example MPANs' supplier, so the channels routed by MPAN find a recipient
    mpans = {e["payload"]["CommonBlock"].get("M0", {}).get("MPANCore") for e in EXAMPLES.values()}
    admin.load_registry(sample_appointments(sorted(m for m in mpans if m), {"SUP": RECIPIENT})).raise_for_status()
    senders: dict[str, set[str]] = {}
    for example in EXAMPLES.values():
        s1 = example["payload"]["CommonBlock"]["S1"]
        senders.setdefault(s1["senderDIPID"], set()).add(s1["senderRoleID"])
    return {pid: admin.onboard(pid, sorted(roles)) for pid, roles in senders.items()}


def _send(dip: RunningDip, identities: dict[str, Identity], example: dict[str, Any]) -> Any:
    sender = example["payload"]["CommonBlock"]["S1"]["senderDIPID"]
    with DipClient(dip.url, identities[sender]) as client:
        return client.send_raw(example["interfaceID"], orjson.dumps([{"payload": example["payload"]}]))


def test_import_sets_official_event_codes_and_schemas(admin: AdminClient, imported: dict[str, Identity]) -> None:
    channel = admin.get_channel("IF-005")
    assert channel["eventCodes"] == ["[MeterInstall]", "[MeterRemoval]", "[MeterExchange]", "[MeterUpdate]",
                                     "[MeterHistoryUpdate]"]
    assert set(channel["payloadSchemas"]) == set(channel["eventCodes"])
    assert channel["routing"]["primary"] == ["REGS"]  # routing rules are kept


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_official_example_is_accepted(dip: RunningDip, imported: dict[str, Identity], name: str) -> None:
    response = _send(dip, imported, EXAMPLES[name])
    assert response.status_code == 201, response.text
    official = jsonschema_rs.validator_for(
        component_schema(REFERENCE, "SubmitEvents-unresolved.yaml", "StandardResponse"))
    official.validate(response.json())
    assert response.json()["messageArray"][0]["message"] == "MSG0000 - Success"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda p: p["CommonBlock"]["S1"].update(extra="x"), "extra"),
        (lambda p: p["CommonBlock"]["S1"].update(environmentTag="Dev"), "environmentTag"),
        (lambda p: p["CustomBlock"].pop(next(iter(p["CustomBlock"]))), "required"),
    ],
    ids=["unknown-field", "enum-case", "missing-block"],
)
def test_broken_examples_are_refused_with_msg1001(dip: RunningDip, imported: dict[str, Identity],
                                                  mutate: Any, fragment: str) -> None:
    example = copy.deepcopy(EXAMPLES["IF-021"])
    mutate(example["payload"])
    response = _send(dip, imported, example)
    assert response.status_code == 400
    body = response.json()
    official = jsonschema_rs.validator_for(
        component_schema(REFERENCE, "SubmitEvents-unresolved.yaml", "StandardResponse"))
    official.validate(body)
    assert body["messageArray"][0]["message"] == "MSG1001 - Schema Failure"
    assert fragment in body["messageArray"][0]["help"]
