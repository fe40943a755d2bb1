"""Conformance with the official DIP API v2.1.0 (runs where ../shared/reference is present).

`dip catalogue import-openapi` loads the official per-interface schemas into a running DIP;
then the official example messages (corrected where stale, see tests/data/examples_corrected.json)
are accepted, broken copies are refused, and the DIP's responses validate against the
official StandardResponse schema.

Everything else the DIP writes is checked against the official definitions of
SubmitEvents-unresolved.yaml too:

- the answers to ``POST /dip-channel/{id}``: 201, 207 and 400 are ``StandardResponse`` in the
  official API. 401, 403, 404, 413 and 429 have no body there; the DIP answers them with a
  ``StandardResponse`` as well (docs/api.md: MSG1000 with the HTTP reason first in ``help``,
  MSG1002 for an unknown channel, MSG1010 for a 403), so those are checked against the same schema
  and against what docs/api.md says;
- what a recipient's webhook receives: the ``DIPMessageEgressArray`` of the pubconfig callback
  (``payload`` one of the per-interface payload schemas, whose optional ``D0`` block is
  RealCommonBlocks ``D0``), with the DIP's own schemas and after import-openapi;
- what a sender's status webhook receives (a recipient's 207 rejection relayed, a dead letter, a
  Level 4 ``POST /statusmessage`` relayed): the ``StandardResponseArray`` of the status callback;
  and the DIP's answers to ``POST /statusmessage`` (``StandardResponse``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml

from dip import ids
from dip.tools.catalogue_import import import_into_dip
from dip.tools.client import DipClient, Identity, Response
from dip.tools.openapi_import import ReferenceImportError, component_schema
from dip.tools.samples import sample_appointments
from dip.tools.testing import AdminClient, RecordedCall, RunningDip, WebhookReceiver
from tests.conftest import REFERENCE
from tests.helpers import MDS, REGS, SDS, SUP, codes, consumption, in_store, items, meter_install, onboard_all

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"official reference not found at {REFERENCE}")

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "examples_corrected.json").read_text(encoding="utf-8")
)
RECIPIENT = "2300000900"


def _import_and_onboard(dip: RunningDip, admin: AdminClient) -> dict[str, Identity]:
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


@pytest.fixture
def imported(dip: RunningDip, admin: AdminClient) -> dict[str, Identity]:
    """The official schemas imported; example senders and recipients on-board."""
    return _import_and_onboard(dip, admin)


@pytest.fixture(scope="module")
def examples_dip(shared_dip: RunningDip) -> tuple[RunningDip, dict[str, Identity]]:
    """``imported`` on the module's shared DIP, for the example tests: each sends an example of its
    own (or one that is refused)."""
    with AdminClient(shared_dip.url, shared_dip.admin_key) as admin:
        return shared_dip, _import_and_onboard(shared_dip, admin)


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
def test_official_example_is_accepted(examples_dip: tuple[RunningDip, dict[str, Identity]], name: str) -> None:
    response = _send(*examples_dip, EXAMPLES[name])
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
def test_broken_examples_are_refused_with_msg1001(examples_dip: tuple[RunningDip, dict[str, Identity]],
                                                  mutate: Any, fragment: str) -> None:
    example = copy.deepcopy(EXAMPLES["IF-021"])
    mutate(example["payload"])
    response = _send(*examples_dip, example)
    assert response.status_code == 400
    body = response.json()
    official = jsonschema_rs.validator_for(
        component_schema(REFERENCE, "SubmitEvents-unresolved.yaml", "StandardResponse"))
    official.validate(body)
    assert body["messageArray"][0]["message"] == "MSG1001 - Schema Failure"
    assert fragment in body["messageArray"][0]["help"]


# ---------------------------------------------------------------------------------------------
# Everything the DIP writes, against the official definitions
# ---------------------------------------------------------------------------------------------

API = "SubmitEvents-unresolved.yaml"
INTERFACES = "Interfaces-EventCodes-unresolved.yaml"
SIGNATURE_HEADERS = ("x-dip-signature", "x-dip-signature-date", "x-dip-content-hash", "x-dip-signature-certificate")
OTHER_SDS = "1300000002"  # a second data service, whose rate limit the 429 case uses up
LIMIT = 20  # messages per call, and the rate limiter's burst, in the send-answers test
MAX_BYTES = 200_000


@functools.cache
def _official(file: str, name: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(component_schema(REFERENCE, file, name))


def problems(name: str, instance: Any, file: str = API) -> list[str]:
    """Every way ``instance`` breaks the official ``components/schemas/<name>`` of ``file``."""
    return [
        f"{name} at /{'/'.join(str(p) for p in error.instance_path)}: {error.message[:300]}"
        for error in _official(file, name).iter_errors(instance)
    ]


def egress_problems(body: Any) -> list[str]:
    """``body`` against the pubconfig callback's DIPMessageEgressArray, plus a D0 block in every message.

    The official payload is ``oneOf`` every interface's payload, whose error says only "not valid
    under any of the given schemas": on failure each message is checked against its own
    interface's payload schema too, to name the field. D0 is optional in the payload schemas (they
    serve ingress too), but the DIP stamps it on every publication (E2E 4.6.4, docs/api.md)."""
    found = problems("DIPMessageEgressArray", body)
    for index, element in enumerate(body if isinstance(body, list) else []):
        payload = element.get("payload") if isinstance(element, dict) else None
        common = payload.get("CommonBlock") if isinstance(payload, dict) else None
        if not isinstance(common, dict) or "D0" not in common:
            found.append(f"[{index}] no D0 block")
        s0 = common.get("S0") if isinstance(common, dict) else None
        interface_id = s0.get("interfaceID") if isinstance(s0, dict) else None
        if found and isinstance(interface_id, str):
            try:
                found += [f"[{index}] {p}" for p in problems(f"{interface_id}-Payload", payload, INTERFACES)]
            except ReferenceImportError:
                found.append(f"[{index}] {interface_id!r} has no payload schema in the reference")
    return found


def answer_problems(response: Response, status: int, code: str | None, help_starts: str | None = None) -> list[str]:
    """A DIP answer: its status, a StandardResponse (official schema; all ten fields, docs/api.md),
    when given the code of every item (``"MSG1000 - ..."``) and how ``help`` starts."""
    if response.status_code != status:
        return [f"HTTP {response.status_code}, expected {status}: {response.text[:300]}"]
    try:
        entries = items(response)  # exactly messageArray and timestamp; the ten fields in every item
    except (AssertionError, ValueError) as exc:
        return [f"not a StandardResponse with the ten fields: {exc!r} {response.text[:300]}"]
    found = problems("StandardResponse", response.json())
    if code is not None:
        found += [f"item {i}: {e['message']!r} is not {code}" for i, e in enumerate(entries)
                  if not str(e["message"]).startswith(f"{code} - ")]
    if help_starts is not None:
        found += [f"item {i}: help {e['help']!r} does not start {help_starts!r}" for i, e in enumerate(entries)
                  if not str(e["help"]).startswith(help_starts)]
    return found


def has_signature(call: RecordedCall) -> bool:
    """The callback's required parameters (CommonSignature*, CommonSHA256Header) are all there."""
    headers = {k.lower() for k in call.headers}
    return all(h in headers for h in SIGNATURE_HEADERS)


def test_the_official_checks_bite() -> None:
    """The validators are the official definitions, not something vacuous: they refuse what the DIP
    must not send. The official response examples of POST /dip-channel/{id} break their own schema
    in one field only: ``senderID: "00000000000"`` has 11 digits where DT-006 wants exactly 10."""
    item = {"transactionID": None, "senderUniqueReference": None, "correlationID": None,
            "sentTimestamp": "2026-11-23T10:15:00+00:00", "senderID": "0000000000", "recipientID": None,
            "DIPConnectionProviderID": None, "message": "MSG1000 - Message Processing Failed", "help": None,
            "serviceTicketURL": None}
    assert problems("StandardResponseArray", [item]) == []
    for broken in ({k: v for k, v in item.items() if k != "help"}, {**item, "sentTimestamp": "2026-11-23T10:15:00Z"},
                   {**item, "transactionID": ""}, {**item, "senderUniqueReference": "ref"}):
        assert problems("StandardResponseArray", [broken]), broken
    assert problems("StandardResponseArray", [])  # minItems 1
    element = {"payload": copy.deepcopy(EXAMPLES["IF-021"]["payload"])}
    element["payload"]["CommonBlock"]["D0"] = {
        "transactionID": "T-IF-021-1009012345-ADS-20261123-0123456789abcdef01234567",
        "transactionTimestamp": "2026-11-23T10:15:00+00:00", "publicationID": "PUB-021",
        "initialCorrelationID": None, "replayIndicator": False, "serviceTicketURL": None}
    assert egress_problems([element]) == []
    for key in element["payload"]["CommonBlock"]["D0"]:
        without = copy.deepcopy(element)
        del without["payload"]["CommonBlock"]["D0"][key]
        assert any("D0" in p for p in egress_problems([without])), key
    without = copy.deepcopy(element)
    del without["payload"]["CommonBlock"]["D0"]
    assert egress_problems([without]) == ["[0] no D0 block"]
    api = yaml.safe_load((REFERENCE / API).read_text(encoding="utf-8"))
    responses = api["paths"]["/dip-channel/{id}"]["post"]["responses"]
    for status in ("201", "207", "400"):
        example = responses[status]["content"]["application/json"]["example"]
        found = problems("StandardResponse", example)
        assert found and all("/senderID:" in p and "longer than 10" in p for p in found), (status, found)


@pytest.fixture
def limited(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(max_messages_per_call=LIMIT, max_body_bytes=MAX_BYTES, rate_limit_burst=LIMIT,
                       rate_limit_messages_per_second=0.001)


@pytest.fixture
def fast(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    return dip_factory(retry_initial_seconds=0.1, retry_max_seconds=0.2, delivery_poll_seconds=0.05)


@pytest.fixture
def hooks() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    with WebhookReceiver() as first, WebhookReceiver() as second:
        yield first, second


def test_every_answer_to_a_send_validates_against_the_official_schema(limited: RunningDip) -> None:
    """201, 207 and 400 against the official StandardResponse; 401, 403, 404, 413 and 429, which
    have no body in the official API, as docs/api.md describes them (and as StandardResponse)."""
    with AdminClient(limited.url, limited.admin_key) as admin:
        cast = onboard_all(admin)
        other = admin.onboard(OTHER_SDS, ["SDS"])
    sds = DipClient(limited.url, cast["SDS"])
    failures: list[str] = []

    def check(label: str, response: Response, status: int, code: str | None, help_starts: str | None = None,
              ) -> None:
        failures.extend(f"{label}: {p}" for p in answer_problems(response, status, code, help_starts))

    # 201
    created = sds.send("IF-021", consumption(sds, 2))
    check("201", created, 201, "MSG0000")
    if created.status_code == 201:
        for entry in items(created):
            assert entry["transactionID"] in entry["serviceTicketURL"] and entry["help"] is None
    # 207: one accepted; a reference repeated in the batch, a timestamp in the future, a primary
    # recipient on a channel without primary routing
    good, repeated, future, addressed = consumption(sds, 4)
    repeated["CommonBlock"]["S1"]["senderUniqueReference"] = good["CommonBlock"]["S1"]["senderUniqueReference"]
    future["CommonBlock"]["S1"]["senderTimestamp"] = ids.timestamp(datetime.now(UTC) + timedelta(hours=1))
    addressed["CommonBlock"]["A0"]["primaryRecipients"] = [REGS]
    partial = sds.send("IF-021", [good, repeated, future, addressed])
    check("207", partial, 207, None)
    if partial.status_code == 207:
        assert codes(partial) == ["MSG0000", "MSG1006", "MSG1007", "MSG1030"], partial.text
        accepted, *refused = items(partial)
        assert accepted["transactionID"] and accepted["serviceTicketURL"]
        assert all(e["transactionID"] is None and e["help"].startswith(f"message {i}: ")
                   for i, e in enumerate(refused, 1)), refused
    # 400: schema failure (the batch), and the request-level 400s
    (broken,) = consumption(sds, 1)
    broken["CommonBlock"]["S1"]["extra"] = "x"
    check("400 schema", sds.send("IF-021", [broken]), 400, "MSG1001", "message 0: ")
    check("400 content type", sds.post("/dip-channel/IF-021", b"[]", headers={"Content-Type": "text/plain"}),
          400, "MSG1001")
    check("400 not an array", sds.send_raw("IF-021", b'{"payload": {}}'), 400, "MSG1001")
    check("400 empty array", sds.send_raw("IF-021", b"[]"), 400, "MSG1001")
    # POST /validate: the official 201 and 400 bodies are a JSON string
    valid = sds.post("/validate/IF-021/ActivePower", orjson.dumps([{"payload": consumption(sds, 1)[0]}]))
    invalid = sds.post("/validate/IF-021/ActivePower", orjson.dumps([{"payload": broken}]))
    assert (valid.status_code, invalid.status_code) == (201, 400), (valid.text, invalid.text)
    assert isinstance(valid.json(), str) and valid.json().startswith("MSG0000")
    assert isinstance(invalid.json(), str) and "MSG1001" in invalid.json()
    # 401: key missing, key unknown, signature wrong
    body = orjson.dumps([{"payload": good}])
    check("401 no key", sds.post("/dip-channel/IF-021", body, headers={"X-API-Key": ""}), 401, "MSG1000",
          "401 Unauthorised")
    check("401 unknown key", sds.post("/dip-channel/IF-021", body, headers={"X-API-Key": "nope"}), 401, "MSG1000",
          "401 Unauthorised")
    check("401 bad signature", sds.post("/dip-channel/IF-021", body, headers={"X-DIP-Signature": "AAAA"}), 401,
          "MSG1000", "401 Unauthorised")
    # 403: a supplier may not send on IF-021; 404: no such channel
    supplier = DipClient(limited.url, cast["SUP"])
    check("403", supplier.send_raw("IF-021", body), 403, "MSG1010", "403 Forbidden")
    check("404", sds.send_raw("IF-999", body), 404, "MSG1002", "404 Not Found")
    # 413: too many bytes (refused before anything else), too many messages
    check("413 bytes", sds.send_raw("IF-021", b"[" + b" " * MAX_BYTES + b"]"), 413, "MSG1000",
          "413 Payload Too Large")
    check("413 messages", sds.send_raw("IF-021", orjson.dumps([{"payload": {}}] * (LIMIT + 1))), 413, "MSG1000",
          "413 Payload Too Large")
    # 429: the other data service uses its whole burst, then one more message is over the limit
    throttled = DipClient(limited.url, other)
    check("400 burst", throttled.send_raw("IF-021", orjson.dumps([{"payload": {}}] * LIMIT)), 400, "MSG1001")
    over = throttled.send_raw("IF-021", orjson.dumps([{"payload": {}}]))
    check("429", over, 429, "MSG1000", "429 Too Many Requests")
    assert int(over.headers.get("retry-after", "0")) >= 1
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "reference",
    ["my-reference-1", "S-IF-021-1300000001-SDS-20261123-" + "a" * 200],
    ids=["pattern", "too-long"],
)
def test_a_400_does_not_echo_a_sender_reference_the_schema_refuses(dip: RunningDip, admin: AdminClient,
                                                                   reference: str) -> None:
    """StandardResponseBodyType.senderUniqueReference is DT-995N: null, or 1-200 characters matching
    the reference pattern. A message refused because its reference breaks that pattern cannot have
    it echoed (the official 400 example answers null)."""
    sds = DipClient(dip.url, onboard_all(admin)["SDS"])
    (payload,) = consumption(sds, 1)
    payload["CommonBlock"]["S1"]["senderUniqueReference"] = reference
    response = sds.send("IF-021", [payload])
    assert response.status_code == 400 and codes(response) == ["MSG1001"], response.text
    found = problems("StandardResponse", response.json())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("schemas", ["own", "official"])
def test_webhook_bodies_validate_against_the_official_egress_schema(fast: RunningDip, schemas: str) -> None:
    """IF-021 from a data service reaches MDS (always) and SUP (by MPAN); IF-005 from a metering
    service reaches REGS (primary) with the workflow correlation ID the DIP created. Every call is a
    signed DIPMessageEgressArray with a complete D0, with the DIP's own schemas and after
    import-openapi (which also lets the official IF-021 example through, from its own sender)."""
    with contextlib.ExitStack() as stack:
        hooks = {who: stack.enter_context(WebhookReceiver()) for who in (MDS, SUP, REGS)}
        with AdminClient(fast.url, fast.admin_key) as admin:
            cast = onboard_all(admin)
            sends: list[tuple[Identity, str, list[dict[str, Any]]]] = [
                (cast["SDS"], "IF-021", consumption(DipClient(fast.url, cast["SDS"]), 2)),
                (cast["MSS"], "IF-005", [meter_install(DipClient(fast.url, cast["MSS"]))]),
            ]
            if schemas == "official":
                lines = import_into_dip(REFERENCE, fast.url, fast.admin_key, only=["IF-005", "IF-021"])
                assert [line.split(":")[0] for line in lines] == ["IF-005", "IF-021"], lines
                assert all("refused" not in line for line in lines), lines
                assert set(admin.get_channel("IF-021")["payloadSchemas"]) == {"[ActivePower]", "[ReactivePower]"}
                example = copy.deepcopy(EXAMPLES["IF-021"]["payload"])
                s1 = example["CommonBlock"]["S1"]
                admin.load_registry(sample_appointments([example["CommonBlock"]["M0"]["MPANCore"]], {"SUP": SUP})
                                    ).raise_for_status()
                sends.append((admin.onboard(s1["senderDIPID"], [s1["senderRoleID"]]), "IF-021", [example]))
        for who, role in ((MDS, "MDS"), (SUP, "SUP")):
            assert DipClient(fast.url, cast[role]).register_webhook("IF-021", hooks[who].url).status_code == 201
        assert DipClient(fast.url, cast["REGS"]).register_webhook("IF-005", hooks[REGS].url).status_code == 201
        answers: dict[str, dict[str, Any]] = {}  # by sender unique reference
        sent: dict[str, dict[str, Any]] = {}
        for identity, interface_id, payloads in sends:
            response = DipClient(fast.url, identity).send(interface_id, payloads)
            assert response.status_code == 201, response.text
            answers.update({entry["senderUniqueReference"]: entry for entry in items(response)})
            sent.update({p["CommonBlock"]["S1"]["senderUniqueReference"]: p for p in payloads})
        expected_a0 = {"IF-021": {"primaryRecipients": [], "secondaryRecipients": [SUP], "always": [MDS]},
                       "IF-005": {"primaryRecipients": [REGS], "secondaryRecipients": [], "always": []}}
        for who, interface_id in ((MDS, "IF-021"), (SUP, "IF-021"), (REGS, "IF-005")):
            wanted = sum(len(payloads) for _, iid, payloads in sends if iid == interface_id)
            calls = hooks[who].wait_for(lambda calls, n=wanted: sum(len(c.json or []) for c in calls) >= n)
            for call in calls:
                assert has_signature(call), call.headers
                found = egress_problems(call.json)
                assert not found, f"to {who}:\n" + "\n".join(found)
            received = [element["payload"] for call in calls for element in call.json]
            assert len(received) == wanted
            for payload in received:
                common = payload["CommonBlock"]
                answer = answers[common["S1"]["senderUniqueReference"]]
                assert common["D0"] == {
                    "transactionID": answer["transactionID"],
                    "transactionTimestamp": answer["sentTimestamp"],
                    "publicationID": "PUB-" + interface_id[3:],
                    "initialCorrelationID": answer["correlationID"],
                    "replayIndicator": False,
                    "serviceTicketURL": answer["serviceTicketURL"],
                }
                assert (answer["correlationID"] is None) == (interface_id == "IF-021")  # IF-005 creates one
                assert common["A0"] == expected_a0[interface_id]
                original = sent[common["S1"]["senderUniqueReference"]]  # passed on as sent
                assert payload["CustomBlock"] == original["CustomBlock"]
                assert {k: v for k, v in common.items() if k not in ("A0", "D0")} == {
                    k: v for k, v in original["CommonBlock"].items() if k != "A0"}

def _states(dip: RunningDip, transactions: list[str]) -> dict[tuple[str, str], str]:
    """(transaction, recipient) -> delivery state, publications only."""
    return {(s[0], s[1]): s[4] for s in in_store(dip, lambda store: store.delivery_states(transactions))
            if s[3] != "status"}


def _status_entries(calls: list[RecordedCall]) -> list[dict[str, Any]]:
    return [entry for call in calls if isinstance(call.json, list) for entry in call.json if isinstance(entry, dict)]


def test_status_messages_and_statusmessage_answers_validate(
    dip_factory: Callable[..., RunningDip], hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    """What the sender's status webhook receives (a recipient's 207 rejection relayed, dead letters,
    Level 4 reports relayed) is the status callback's StandardResponseArray; the DIP's 201 and 400
    to POST /statusmessage are StandardResponse."""
    mds_hook, status_hook = hooks
    server = dip_factory(retry_initial_seconds=0.1, retry_max_seconds=0.2, delivery_poll_seconds=0.05,
                         dead_letter_after_seconds=3.0)
    with AdminClient(server.url, server.admin_key) as admin:
        cast = onboard_all(admin)
    sds, mds = DipClient(server.url, cast["SDS"]), DipClient(server.url, cast["MDS"])
    assert sds.register_webhook(None, status_hook.url).status_code == 201
    response = sds.send("IF-021", consumption(sds, 2))
    assert response.status_code == 201, response.text
    good, bad = (entry["transactionID"] for entry in items(response))
    stamp = ids.timestamp(datetime.now(UTC))
    blank = {"senderUniqueReference": None, "correlationID": None, "sentTimestamp": stamp, "senderID": MDS,
             "recipientID": SDS, "DIPConnectionProviderID": None, "help": None, "serviceTicketURL": None}
    # MDS answers 207 rejecting one message (scripted before its webhook exists: no race with the worker);
    # SUP has no webhook, so both messages are dead-lettered for it after 3 s
    mds_hook.respond(207, body={"messageArray": [
        {**blank, "transactionID": good, "message": "RCP0000 - Message Success"},
        {**blank, "transactionID": bad, "message": "RCP1022 - Msg Contains Invalid Value for Value Restricted Field",
         "help": "v out of range"},
    ], "timestamp": stamp})
    assert mds.register_webhook("IF-021", mds_hook.url).status_code == 201
    mds_hook.wait_for(lambda calls: len(calls) == 1)
    # Level 4: a complete StandardResponseBodyType, and the three fields docs/api.md requires
    report = {**blank, "transactionID": good, "message": "RCP1061 - MPAN Invalid or Unknown",
              "help": "MPAN not in our portfolio"}
    minimal = {"transactionID": good, "senderID": MDS, "message": "RCP1063 - Message Data Content Differs"}
    assert problems("StandardResponseArray", [report]) == []
    failures = answer_problems(mds.post("/statusmessage", orjson.dumps([report])), 201, "MSG0000")
    failures += answer_problems(mds.post("/statusmessage", orjson.dumps([minimal])), 201, "MSG0000")
    # refused reports: an unknown transaction, someone else's transaction, not an array
    failures += answer_problems(mds.post("/statusmessage", orjson.dumps([{**report, "transactionID": "T-nope"}])),
                                400, "MSG1000", "status message 0: ")
    failures += answer_problems(mds.post("/statusmessage", orjson.dumps([{**report, "senderID": SUP}])),
                                400, "MSG1000", "status message 0: ")
    failures += answer_problems(mds.post("/statusmessage", b'{"x": 1}'), 400, "MSG1001")
    # 401 has no body in the official API; the DIP answers as on /dip-channel (docs/api.md)
    failures += answer_problems(mds.post("/statusmessage", orjson.dumps([report]), headers={"X-API-Key": "nope"}),
                                401, "MSG1000", "401 Unauthorised")

    def complete(calls: list[RecordedCall]) -> bool:
        return len(_status_entries(calls)) >= 5  # 207 relay, two Level 4 relays, two dead letters

    calls = status_hook.wait_for(complete, timeout=20)
    for call in calls:
        assert has_signature(call), call.headers
        failures += [f"status call: {p}" for p in problems("StandardResponseArray", call.json)]
    entries = _status_entries(calls)
    assert all(e["recipientID"] == SDS for e in entries), entries
    seen = sorted((e["transactionID"] == good, e["senderID"], e["message"].split(" ", 1)[0]) for e in entries)
    assert seen == sorted([
        (False, MDS, "RCP1022"),  # the 207 rejection, relayed
        (True, MDS, "RCP1061"), (True, MDS, "RCP1063"),  # Level 4
        (False, server.settings.dip_id, "MSG1000"), (True, server.settings.dip_id, "MSG1000"),  # dead letters
    ]), entries
    assert _states(server, [good, bad]) == {(good, MDS): "delivered", (bad, MDS): "rejected",
                                            (good, SUP): "dead", (bad, SUP): "dead"}
    assert not failures, "\n".join(failures)


def test_a_refused_status_message_answer_validates(dip: RunningDip, admin: AdminClient) -> None:
    """The 400 to POST /statusmessage names each bad item's transactionID (DT-014N: null or 1-65
    characters), whatever the caller sent."""
    mds = DipClient(dip.url, onboard_all(admin)["MDS"])
    for transaction_id in ("T-" + "0" * 80, ""):
        response = mds.post("/statusmessage", orjson.dumps([
            {"transactionID": transaction_id, "senderID": MDS, "message": "RCP1043 - DIP Txn ID Invalid"}]))
        # both break the item's official schema (1 to 65 characters): a schema failure
        found = answer_problems(response, 400, "MSG1001", "status message 0: ")
        assert not found, f"transactionID {transaction_id!r}: " + "\n".join(found)


def test_a_level_4_report_is_refused_or_relayed_in_the_official_form(fast: RunningDip,
                                                                     hooks: tuple[WebhookReceiver, WebhookReceiver],
                                                                     ) -> None:
    """POST /statusmessage's body is an official StandardResponseArray. A report whose fields break it
    (a timestamp without the +hh:mm offset, empty strings where DT-019N/DT-018N/DT-995N want 1 or more
    characters or a pattern) must either be refused (400) or reach the sender in the official form:
    the sender's status webhook must never receive a body that fails the callback's schema."""
    status_hook, _ = hooks
    with AdminClient(fast.url, fast.admin_key) as admin:
        cast = onboard_all(admin)
    sds, mds = DipClient(fast.url, cast["SDS"]), DipClient(fast.url, cast["MDS"])
    assert sds.register_webhook(None, status_hook.url).status_code == 201
    response = sds.send("IF-021", consumption(sds, 1))
    assert response.status_code == 201, response.text
    (tid,) = (entry["transactionID"] for entry in items(response))
    report = {"transactionID": tid, "senderUniqueReference": "", "correlationID": "", "senderID": MDS,
              "sentTimestamp": "2026-11-23T10:00:00Z", "recipientID": None, "DIPConnectionProviderID": None,
              "message": "RCP1061 - MPAN Invalid or Unknown", "help": "", "serviceTicketURL": ""}
    assert problems("StandardResponseArray", [report]) != []
    answer = mds.post("/statusmessage", orjson.dumps([report]))
    if answer.status_code == 400:
        found = answer_problems(answer, 400, "MSG1001")
        assert not found, "\n".join(found)
        return
    found = answer_problems(answer, 201, "MSG0000")
    assert not found, "\n".join(found)
    (call,) = status_hook.wait_for(lambda calls: len(calls) == 1)
    found = problems("StandardResponseArray", call.json)
    assert not found, "relayed as:\n" + "\n".join(found)
