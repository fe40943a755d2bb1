"""Fuzzing the running DIP through its own OpenAPI document (issue 4): no 5xx, only documented answers.

Schemathesis reads ``GET /openapi.json`` from a real DIP (SQLite, real sockets) and, for every
operation, generates requests from the document: ones that fit it (positive) and ones that break
its schemas (negative). One run per module; its findings are asserted by the tests below:

- no answer is a 5xx (a failing example is shrunk by Hypothesis and reported with a curl command);
- every answer's status code is one the document lists for that operation (every undocumented
  code seen is reported, with one request that got it);
- the run got past authentication (so the first two say something).

Authentication would stop almost every generated request, so most are sent as an on-boarded
participant (the SDS of tests.helpers): its API key, and the signature headers computed over the
request exactly as it is sent (dip.tools.client.DipClient.signed_headers), replacing whatever the
generator put there; under ``/admin`` with the operator's key. The others keep what the
generator made, which fuzzes the 401 answers. Path parameters are mostly set to a real channel or
participant so requests get past "no such channel"; the operator routes get spare ones, so that
fuzzing ``DELETE /admin/...`` does not off-board the participant the other requests are signed as.
The DIP runs without its delivery worker, so a webhook registered with a generated URL is never
called, and without DNS (``_offline_getaddrinfo``): callback URL hosts are checked offline. Half
the bodies of ``POST /dip-channel`` and ``/validate`` are made valid IF-021 messages carrying a few
generated fields (so requests reach Level 1 and the store), and half the callback URLs get a host
name from a list of odd ones (empty or over-long labels, IDNA, IP forms) a URL generator seldom makes.

``make test`` runs a bounded number of examples per operation and generation mode (about 20 s);
a longer run::

    DIP_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_fuzz_api.py

``DIP_FUZZ_SEED=<int>`` repeats a run's generation (the seed is printed when a test fails).

schemathesis' own pytest loader (``schemathesis.pytest.from_fixture``) does not work with pytest 9.2
(it sets ``Function._nodeid``, which pytest 9.2 no longer has), so each operation's strategy is run
with Hypothesis directly (``APIOperation.as_strategy``) and checked with schemathesis' checks.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import status_code_conformance

from dip.config import Settings
from dip.signing import API_KEY
from dip.tools.client import DipClient
from dip.tools.samples import consumption_block, mpan_core
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import DCP, REGISTERED_MPANS, SDS, onboard_all

EXAMPLES = int(os.environ.get("DIP_FUZZ_EXAMPLES", "20"))  # per operation and generation mode
SEED = int(os.environ.get("DIP_FUZZ_SEED") or random.SystemRandom().getrandbits(64))
SPARE_PARTICIPANT = "1800000001"  # the operator routes may change or off-board it
SPARE_CHANNEL = "IF-990"  # the operator routes may replace or delete it

# values for path parameters, by route family (else the generated value is kept)
PARTICIPANT_PATHS = {
    "interface_id": ["IF-021", "if-021", "IF-005", "IF-006", "REP-002A"],  # the SDS receives IF-006
    "recipient_id": [SDS],
    "event": ["ActivePower", "[activepower]", "MeterInstall"],
}
ADMIN_PATHS = {
    "participant_id": [SPARE_PARTICIPANT, "1999999999"],
    "dcp_id": [DCP],
    "interface_id": [SPARE_CHANNEL, "if-990"],
}
SENDING = {"POST /dip-channel/{interface_id}", "POST /validate/{interface_id}/{event}"}
WEBHOOKS = {"POST /dip-channel/{interface_id}/pubconfig/{recipient_id}", "POST /statusmessage/config/{recipient_id}"}
# host names a URL generator seldom makes (empty and over-long labels, IDNA, IP forms), for callback URLs
ODD_HOSTS = ["a..b", "a" * 64 + ".example", ".", "-a.example", "a_b.example", "xn--a.example", "\u00fc.example",
             "\u00fc" * 64, "[::1]", "[::1", "127.0.0.1", "0", "localhost", "%00", "a%2Fb", "999.1.1.1", ""]
CONSUMPTION = consumption_block(SDS, datetime.now(UTC) - timedelta(days=1), random.Random(21))

pytestmark = pytest.mark.slow


class SignedAs(requests.auth.AuthBase):
    """The participant's API key and a signature over the request as prepared (the bytes sent)."""

    def __init__(self, client: DipClient) -> None:
        self.client = client

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        data = body.encode() if isinstance(body, str) else body
        assert isinstance(data, bytes) and request.method is not None and request.url is not None
        signed = self.client.signed_headers(request.method, request.url, data)
        del signed["Content-Type"]  # keep the generated one: a wrong Content-Type is fuzzing too
        request.headers.update(signed)
        return request


class AdminKey(requests.auth.AuthBase):
    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["x-api-key"] = self.key
        return request


_real_getaddrinfo = socket.getaddrinfo


def _offline_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    """socket.getaddrinfo without DNS, for the run: the DIP checks that a callback URL's host resolves,
    and generated host names must neither leave this machine nor wait for a resolver. A name is
    encoded as the real function encodes it (IDNA, which refuses empty and over-long labels), then
    answered with the loopback address; numeric addresses and ``localhost`` go to the real function."""
    if isinstance(host, str) and host != "localhost":
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            host.encode("idna")
            return _real_getaddrinfo("127.0.0.1", *args, **kwargs)
    return _real_getaddrinfo(host, *args, **kwargs)


@dataclass
class Findings:
    operations: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)  # operation -> status codes answered
    server_errors: dict[str, str] = field(default_factory=dict)  # "operation (mode)" -> report
    undocumented: dict[str, dict[int, str]] = field(default_factory=dict)  # operation -> status -> a request


@dataclass
class Fuzzer:
    dip: RunningDip
    sds: DipClient
    api_key: str
    session: requests.Session
    findings: Findings

    def anchored(self, item: Any, data: st.DataObject) -> dict[str, Any]:
        """A valid IF-021 message from the SDS, with a few of the generated item's common-block fields."""
        mpan = mpan_core(data.draw(st.integers(min_value=0, max_value=REGISTERED_MPANS + 3), label="MPAN seed"))
        message = self.sds.message("IF-021", "[ActivePower]", "011", CONSUMPTION, mpan=mpan)
        payload = item.get("payload") if isinstance(item, dict) else None
        common = payload.get("CommonBlock") if isinstance(payload, dict) else None
        for block in ("S1", "A0", "M0"):
            generated = common.get(block) if isinstance(common, dict) else None
            if isinstance(generated, dict) and generated:
                names = data.draw(st.lists(st.sampled_from(sorted(generated)), unique=True, max_size=2), label=block)
                message["CommonBlock"].setdefault(block, {}).update({name: generated[name] for name in names})
        return {"payload": message}

    def send(self, case: Case[Any], data: st.DataObject) -> None:
        admin = case.path.startswith("/admin")
        real = ADMIN_PATHS if admin else PARTICIPANT_PATHS
        for name in list(case.path_parameters or {}):
            if name in real and data.draw(st.integers(min_value=0, max_value=3), label=f"real {name}?"):
                case.path_parameters[name] = data.draw(st.sampled_from(real[name]), label=name)
        if case.operation.label in SENDING and isinstance(case.body, list) and data.draw(st.booleans(), label="anchor"):
            # half the batches are valid messages with a few generated fields: they reach Level 1 and the store
            anchors = {"interface_id": "IF-021", "event": "ActivePower"}
            case.path_parameters = {name: anchors.get(name, value) for name, value in case.path_parameters.items()}
            case.body = [self.anchored(item, data) for item in case.body]
        if case.operation.label in WEBHOOKS and isinstance(case.body, dict) and isinstance(
                case.body.get("callbackURL"), str) and data.draw(st.booleans(), label="odd host?"):
            scheme, host = data.draw(st.sampled_from(["http", "https"])), data.draw(st.sampled_from(ODD_HOSTS))
            case.body = {"callbackURL": f"{scheme}://{host}/hook"}  # without the (often out of range) limits
        auth: requests.auth.AuthBase | None = None
        if data.draw(st.integers(min_value=0, max_value=3), label="authenticated?"):
            auth = AdminKey(self.dip.admin_key) if admin else SignedAs(self.sds)
        elif not admin and data.draw(st.booleans(), label="API key, generated signature?"):
            headers = case.headers if case.headers is not None else CaseInsensitiveDict()
            headers[API_KEY] = self.api_key
            case.headers = headers
        response = case.call(session=self.session, auth=auth, timeout=60)
        label = case.operation.label
        self.findings.statuses.setdefault(label, Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=[status_code_conformance])
        except FailureGroup:
            seen = self.findings.undocumented.setdefault(label, {})
            seen.setdefault(response.status_code, case.as_curl_command(headers=dict(response.request.headers))[:300])
        case.validate_response(response, checks=[not_a_server_error])  # raises: Hypothesis shrinks it

    def fuzz(self, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def run(case: Case[Any], data: st.DataObject) -> None:
            self.send(case, data)

        try:
            run()
        except Unsatisfiable:
            # nothing can break the document for this operation (say, only string path parameters)
            assert mode is GenerationMode.NEGATIVE, f"no valid request can be generated for {operation.label}"
        except (Exception, BaseExceptionGroup) as exc:  # a 5xx (a FailureGroup), or no request could be made
            self.findings.server_errors[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Findings]:
    """One bounded fuzzing run of every operation against a fresh DIP on SQLite."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    settings_ = Settings(data_dir=data_dir, validation_workers=0, demo=True, state_poll_seconds=0.2, deliver=False)
    with RunningDip(settings_) as dip, AdminClient(dip.url, dip.admin_key) as admin, \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _offline_getaddrinfo)
        cast = onboard_all(admin)
        admin.put_participant(SPARE_PARTICIPANT, ["SUP"]).raise_for_status()
        spare = {**admin.get_channel("IF-021"), "interfaceID": SPARE_CHANNEL, "publicationID": "PUB-990"}
        admin.put_channel(SPARE_CHANNEL, spare).raise_for_status()
        found = Findings()
        with requests.Session() as session, DipClient(dip.url, cast["SDS"]) as sds:
            fuzzer = Fuzzer(dip, sds, cast["SDS"].api_key, session, found)
            api = schemathesis.openapi.from_url(dip.url + "/openapi.json")
            results = list(api.get_all_operations())
            operations = [r.ok() for r in results if isinstance(r, Ok)]
            assert len(operations) == len(results), "every operation of the OpenAPI document can be fuzzed"
            for operation in operations:
                found.operations.append(operation.label)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    fuzzer.fuzz(operation, mode)
        yield found


def test_every_operation_was_fuzzed_past_authentication(findings: Findings) -> None:
    assert {"POST /dip-channel/{interface_id}", "POST /validate/{interface_id}/{event}", "POST /statusmessage",
            "PUT /admin/channels/{interface_id}", "POST /admin/mpan-registry"} <= set(findings.operations)
    assert set(findings.statuses) == set(findings.operations)
    answered = {op: set(codes) for op, codes in findings.statuses.items()}
    # signed requests reach the channel's checks, and some generated messages get to Level 1 or further
    assert answered["POST /dip-channel/{interface_id}"] - {401}, answered
    assert answered["PUT /admin/channels/{interface_id}"] - {401}, answered


def test_no_server_errors(findings: Findings) -> None:
    if findings.server_errors:
        pytest.fail(f"DIP_FUZZ_SEED={SEED}: 5xx answers\n\n" + "\n\n".join(
            f"=== {where}\n{report}" for where, report in findings.server_errors.items()), pytrace=False)


def test_only_documented_status_codes(findings: Findings) -> None:
    if findings.undocumented:
        pytest.fail(f"DIP_FUZZ_SEED={SEED}: status codes the OpenAPI document does not list\n" + "\n".join(
            f"  {op}: {code}  e.g. {example}" for op, codes in sorted(findings.undocumented.items())
            for code, example in sorted(codes.items())), pytrace=False)


# ---------------------------------------------------------------------------------------------
# The 5xx found so far, as plain regression tests (SQLite, like the run above)


@pytest.fixture
def database_url() -> None:
    return None


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".example", "."], ids=["empty-label", "long-label", "dot"])
@pytest.mark.parametrize("channel", [None, "IF-006"], ids=["status-webhook", "publication-webhook"])
def test_a_callback_url_whose_host_name_is_not_a_dns_name_gets_a_400(
    dip: RunningDip, admin: AdminClient, host: str, channel: str | None,
) -> None:
    """Found by the run above: webhooks.resolve lets the IDNA codec's UnicodeError through. These names
    fail to encode before any DNS query is made, so the test stays offline."""
    with DipClient(dip.url, admin.onboard(SDS, ["SDS"])) as sds:
        response = sds.register_webhook(channel, f"https://{host}/hook")
    assert response.status_code == 400, response.text


# Channel definitions the operator API accepts, then messages on them (the run above does not
# change channels): found by the property tests in tests/unit/test_properties.py, here through HTTP.


LOOSE_SCHEMA = {"payloadSchemas": {"*": {"type": "object"}}, "routing": {"always": {"roles": ["MDS"]}}}
POINTER_INTO_ARRAY = {"routing": {"secondary": ["SUP"], "secondaryDate": "/CustomBlock/days/\u00b2"}}


@pytest.mark.parametrize(
    ("channel", "change"),
    [
        (LOOSE_SCHEMA, {"A0": ["1000000001"]}),  # validation._header: AttributeError
        (LOOSE_SCHEMA, {"S1": {"senderUniqueReference": 7}}),  # ingest.Judge: TypeError
        (POINTER_INTO_ARRAY, {}),  # registry_updates.field_at: ValueError on int("\u00b2")
    ],
    ids=["payload-schema-lets-A0-be-an-array", "payload-schema-lets-SUR-be-a-number", "superscript-index-pointer"],
)
def test_messages_on_channels_the_operator_api_accepts_never_get_a_5xx(
    dip: RunningDip, admin: AdminClient, channel: dict[str, Any], change: dict[str, Any],
) -> None:
    definition = {"publicationID": "PUB-907", "title": "Operator-defined", "senderRoles": ["SDS"],
                  "eventCodes": ["[ActivePower]"], "schemaVersions": ["011"], **channel}
    assert admin.put_channel("IF-907", definition).status_code == 201
    with DipClient(dip.url, admin.onboard(SDS, ["SDS"])) as sds:
        message = sds.message("IF-907", "[ActivePower]", "011", {"days": ["2026-11-01"]}, mpan=mpan_core(1))
        for block, fields in change.items():
            message["CommonBlock"][block] = [*fields] if isinstance(fields, list) else {
                **message["CommonBlock"][block], **fields}
        answers = [sds.send("IF-907", [message]).status_code,
                   sds.post("/validate/IF-907/ActivePower", orjson.dumps([{"payload": message}])).status_code]
    assert all(status < 500 for status in answers), answers
