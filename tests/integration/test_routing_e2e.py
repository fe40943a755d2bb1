"""Routing end to end, on SQLite and PostgreSQL: from a sender's POST through the DIP's routing at
ingest to each recipient's real webhook (E2E 4.3.1, 4.6.4, 5.4; FS 5.5.3, 5.5.14).

Every recipient registers its webhook at ``{receiver}/{participant ID}``, so one receiver tells
the recipients apart by the path. Negative checks ("nobody else got it") are made once every
delivery of the messages concerned is settled as delivered: the queue then holds the complete
list of recipients, and each webhook has recorded its call before answering it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from dip import ids
from dip.egress.obfuscation import masked_value
from dip.store import AppointmentRow
from dip.tools.client import DipClient, Identity, Response
from dip.tools.samples import consumption_block, meter_install_block, mpan_core
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import (
    LDSO,
    MDS,
    MSS,
    OTHER,
    REGS,
    SDS,
    SUP,
    codes,
    consumption,
    in_store,
    items,
    meter_install,
    onboard_all,
)

SUP_B = "1000000002"  # a second supplier
Routes = dict[str, set[tuple[str, str, str]]]  # transaction ID -> {(recipient, role, kind)}
PERIODS = "/CustomBlock/B900/settlementDayConsumptionPeriods/*/consumptionPeriods/*/v"


@pytest.fixture
def dip(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    """The DIP, with a worker that polls and retries quickly (``admin`` uses this one too)."""
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05)


@pytest.fixture
def cast(admin: AdminClient) -> dict[str, Identity]:
    return onboard_all(admin)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


# -- helpers ----------------------------------------------------------------------------------


def client(dip: RunningDip, identity: Identity) -> DipClient:
    return DipClient(dip.url, identity)


def listen(dip: RunningDip, identity: Identity, interface_id: str, hook: WebhookReceiver,
           max_message_count: int | None = None) -> Response:
    """Register ``identity``'s webhook for a channel at the receiver's ``/{participant ID}``."""
    with DipClient(dip.url, identity) as c:
        return c.register_webhook(interface_id, f"{hook.url}/{identity.participant_id}",
                                  max_message_count=max_message_count)


def listening(dip: RunningDip, hook: WebhookReceiver, interface_id: str, *who: Identity) -> None:
    for identity in who:
        response = listen(dip, identity, interface_id, hook)
        assert response.status_code == 201, response.text


def accepted(response: Response) -> list[str]:
    assert response.status_code == 201, response.text
    return [entry["transactionID"] for entry in items(response)]


def routes(dip: RunningDip, transaction_ids: list[str]) -> Routes:
    found: Routes = {t: set() for t in transaction_ids}
    for tid, recipient, role, kind, _ in in_store(dip, lambda s: s.delivery_states(transaction_ids)):
        if kind != "status":
            found[tid].add((recipient, role, kind))
    return found


def wait_delivered(dip: RunningDip, transaction_ids: list[str], timeout: float = 15.0) -> Routes:
    """Wait until every delivery of these messages is delivered; return who they went to."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in in_store(dip, lambda s: s.delivery_states(transaction_ids)) if r[3] != "status"]
        if {r[0] for r in rows} == set(transaction_ids) and all(r[4] == "delivered" for r in rows):
            return routes(dip, transaction_ids)
        if time.monotonic() > deadline:
            raise AssertionError(f"not all delivered within {timeout} s: {rows}")
        time.sleep(0.05)


def received(hook: WebhookReceiver) -> dict[str, list[dict[str, Any]]]:
    """The payloads each recipient's webhook received, in arrival order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for call in hook.calls:
        found.setdefault(call.path.rsplit("/", 1)[-1], []).extend(item["payload"] for item in call.json)
    return found


def d0(payload: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = payload["CommonBlock"]["D0"]
    return block


def a0(payload: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = payload["CommonBlock"]["A0"]
    return block


def today() -> date:
    return datetime.now(UTC).date()


def usage(sender: DipClient, mpan: str | None, day: date, seed: int = 0) -> dict[str, Any]:
    """IF-021 consumption for the settlement day ``day`` (routing.secondaryDate points at it)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    block = consumption_block(sender.identity.participant_id, midnight, random.Random(seed))
    return sender.message("IF-021", "[ActivePower]", "011", block, mpan=mpan)


def appointment(mpan: str, role: str, participant: str, start: date | str,
                end: date | str | None = None) -> dict[str, Any]:
    return {"MPANCore": mpan, "role": role, "participantId": participant, "effectiveFrom": str(start),
            "effectiveTo": None if end is None else str(end)}


def put_channel(admin: AdminClient, interface_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    definition = admin.get_channel(interface_id)
    change(definition)
    response = admin.put_channel(interface_id, definition)
    assert response.status_code == 200, response.text


def periods(payload: dict[str, Any]) -> list[dict[str, Any]]:
    days = payload["CustomBlock"]["B900"]["settlementDayConsumptionPeriods"]
    return [p for day in days for p in day["consumptionPeriods"]]


# -- 1. the three kinds of addressing ---------------------------------------------------------


def test_a_primary_recipient_named_by_the_sender_receives_the_message(
    dip: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    listening(dip, hook, "IF-005", cast["REGS"])
    mss = client(dip, cast["MSS"])
    message = meter_install(mss)
    (tid,) = accepted(mss.send("IF-005", [message]))
    assert wait_delivered(dip, [tid]) == {tid: {(REGS, "REGS", "primary")}}
    (payload,) = received(hook)[REGS]
    assert a0(payload) == {"primaryRecipients": [REGS], "secondaryRecipients": [], "always": []}
    assert d0(payload)["transactionID"] == tid and d0(payload)["publicationID"] == "PUB-005"
    assert payload["CustomBlock"] == message["CustomBlock"]
    assert payload["CommonBlock"]["S1"] == message["CommonBlock"]["S1"]


def test_secondary_recipients_come_from_the_registry_and_always_recipients_from_their_roles(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    ldso = admin.onboard(LDSO, ["LDSO"])
    mpan = mpan_core(0)  # SUP is appointed to it by onboard_all
    admin.load_registry([appointment(mpan, "LDSO", LDSO, "2020-01-01")]).raise_for_status()
    listening(dip, hook, "IF-021", cast["SUP"], cast["MDS"], ldso)
    sds = client(dip, cast["SDS"])
    (tid,) = accepted(sds.send("IF-021", consumption(sds, 1)))
    assert wait_delivered(dip, [tid]) == {tid: {
        (SUP, "SUP", "secondary"), (LDSO, "LDSO", "secondary"), (MDS, "MDS", "always"),
    }}
    got = received(hook)
    assert sorted(got) == sorted([SUP, LDSO, MDS])
    for payloads in got.values():
        (payload,) = payloads
        assert d0(payload)["transactionID"] == tid
        assert a0(payload)["primaryRecipients"] == []
        assert sorted(a0(payload)["secondaryRecipients"]) == sorted([SUP, LDSO])
        assert a0(payload)["always"] == [MDS]


def test_a_participant_role_pair_receives_a_message_once_and_the_sender_never(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    # SUP qualifies as secondary (registry) and as a named always participant, MDS by its always
    # role and by name, REGS on IF-005 as primary and by name; SDS, the sender, is named too.
    put_channel(admin, "IF-021", lambda d: d["routing"]["always"].update(participants=[SUP, MDS, SDS]))
    put_channel(admin, "IF-005", lambda d: d["routing"]["always"].update(participants=[REGS]))
    listening(dip, hook, "IF-021", cast["SUP"], cast["MDS"])
    listening(dip, hook, "IF-005", cast["REGS"])
    sds, mss = client(dip, cast["SDS"]), client(dip, cast["MSS"])
    (consumed,) = accepted(sds.send("IF-021", consumption(sds, 1)))
    (installed,) = accepted(mss.send("IF-005", [meter_install(mss)]))
    assert wait_delivered(dip, [consumed, installed]) == {
        consumed: {(SUP, "SUP", "secondary"), (MDS, "MDS", "always")},
        installed: {(REGS, "REGS", "primary")},
    }
    got = received(hook)
    assert sorted(got) == sorted([SUP, MDS, REGS])
    assert [d0(p)["transactionID"] for p in got[SUP]] == [consumed]
    assert [d0(p)["transactionID"] for p in got[MDS]] == [consumed]
    assert [d0(p)["transactionID"] for p in got[REGS]] == [installed]
    assert SDS not in a0(got[MDS][0])["always"]


def test_a_participant_named_in_always_participants_receives_every_message(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    other = admin.onboard(OTHER, ["EES"])  # a role IF-021 does not deliver to: it receives as EES
    put_channel(admin, "IF-021", lambda d: d["routing"]["always"].update(participants=[OTHER]))
    listening(dip, hook, "IF-021", cast["SUP"], cast["MDS"])
    sds = client(dip, cast["SDS"])
    (tid,) = accepted(sds.send("IF-021", consumption(sds, 1)))
    assert (OTHER, "EES", "always") in routes(dip, [tid])[tid]
    # the DIP queues the message for OTHER, so OTHER must be able to say where to deliver it
    response = listen(dip, other, "IF-021", hook)
    assert response.status_code == 201, response.text
    assert wait_delivered(dip, [tid]) == {tid: {
        (SUP, "SUP", "secondary"), (MDS, "MDS", "always"), (OTHER, "EES", "always"),
    }}
    (payload,) = received(hook)[OTHER]
    assert d0(payload)["transactionID"] == tid
    assert sorted(a0(payload)["always"]) == sorted([MDS, OTHER])
    assert a0(payload)["secondaryRecipients"] == [SUP]


# -- 2. MPAN history by date ------------------------------------------------------------------


def test_consumption_goes_to_the_supplier_appointed_on_its_settlement_day(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    sup_b = admin.onboard(SUP_B, ["SUP"])
    mpan = mpan_core(200)  # not in the sample registry
    last = today() - timedelta(days=5)  # SUP's last day; SUP_B from the next
    admin.load_registry([
        appointment(mpan, "SUP", SUP, "2020-01-01", last),
        appointment(mpan, "SUP", SUP_B, last + timedelta(days=1)),
    ]).raise_for_status()
    listening(dip, hook, "IF-021", cast["SUP"], sup_b, cast["MDS"])
    sds = client(dip, cast["SDS"])
    days = [last - timedelta(days=30), last, last + timedelta(days=1), today() - timedelta(days=1)]
    tids = accepted(sds.send("IF-021", [usage(sds, mpan, day, seed) for seed, day in enumerate(days)]))
    routed = wait_delivered(dip, tids)
    suppliers = [{r for r, _, kind in routed[t] if kind == "secondary"} for t in tids]
    assert suppliers == [{SUP}, {SUP}, {SUP_B}, {SUP_B}], f"settlement days {days}"
    got = received(hook)
    assert [d0(p)["transactionID"] for p in got[SUP]] == tids[:2]
    assert [d0(p)["transactionID"] for p in got[SUP_B]] == tids[2:]
    assert [a0(p)["secondaryRecipients"] for p in got[SUP_B]] == [[SUP_B], [SUP_B]]


# -- 3. routing errors are per-message verdicts -----------------------------------------------


def test_routing_errors_refuse_only_their_message_and_the_rest_is_delivered(
    dip: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    listening(dip, hook, "IF-021", cast["SUP"], cast["MDS"])
    listening(dip, hook, "IF-005", cast["REGS"])
    sds, mss = client(dip, cast["SDS"]), client(dip, cast["MSS"])
    yesterday = today() - timedelta(days=1)
    unknown = mpan_core(9_999)  # nobody is appointed to it
    response = sds.send("IF-021", [
        usage(sds, mpan_core(0), yesterday),
        usage(sds, None, yesterday),  # no M0 block at all
        usage(sds, unknown, yesterday),
    ])
    assert response.status_code == 207, response.text
    assert codes(response) == ["MSG0000", "MSG1037", "MSG1038"]
    good, no_mpan, nobody = items(response)
    assert no_mpan["transactionID"] is None and "M0.MPANCore" in no_mpan["help"]
    assert nobody["transactionID"] is None and unknown in nobody["help"]

    response = mss.send("IF-005", [
        meter_install(mss),
        meter_install(mss, primary_recipients=[OTHER]),  # not on-boarded
        meter_install(mss, primary_recipients=[SDS]),  # on-boarded, but not a REGS
    ])
    assert response.status_code == 207, response.text
    assert codes(response) == ["MSG0000", "MSG1031", "MSG1032"]
    installed, not_onboarded, wrong_role = items(response)
    assert OTHER in not_onboarded["help"] and SDS in wrong_role["help"]

    tids = [good["transactionID"], installed["transactionID"]]
    assert wait_delivered(dip, tids) == {
        tids[0]: {(SUP, "SUP", "secondary"), (MDS, "MDS", "always")},
        tids[1]: {(REGS, "REGS", "primary")},
    }
    got = received(hook)
    assert {k: [d0(p)["transactionID"] for p in v] for k, v in got.items()} == {
        SUP: [tids[0]], MDS: [tids[0]], REGS: [tids[1]],
    }
    assert in_store(dip, lambda s: s.count_messages()) == 2


def test_a_named_primary_recipient_makes_an_unknown_mpan_acceptable(
    dip: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    # MSG1038 applies only when MPAN routing is the message's only way to its addressees
    listening(dip, hook, "IF-006", cast["MSS"])
    regs = client(dip, cast["REGS"])
    reply = regs.message("IF-006", "[MeterInstall]", "011", meter_install_block(datetime.now(UTC)),
                         mpan=mpan_core(9_999), primary_recipients=[MSS], correlation_id="CI-20261123-0a1b")
    (tid,) = accepted(regs.send("IF-006", [reply]))
    assert wait_delivered(dip, [tid]) == {tid: {(MSS, "MSS", "primary")}}


def test_a_null_mpan_core_fails_the_schema_and_refuses_the_whole_batch(
    dip: RunningDip, cast: dict[str, Identity]
) -> None:
    """The common-block schema (dip.schemas.M0) requires MPANCore to be a 13-digit string, so a
    null MPAN never reaches routing (MSG1037 is for a message without M0): it is MSG1001 and,
    as for every schema failure, nothing of the batch is stored."""
    sds = client(dip, cast["SDS"])
    good, bad = consumption(sds, 2)
    bad["CommonBlock"]["M0"]["MPANCore"] = None
    response = sds.send("IF-021", [good, bad])
    assert response.status_code == 400, response.text
    assert codes(response) == ["MSG1001"]
    assert "MPANCore" in items(response)[0]["help"]
    assert in_store(dip, lambda s: s.count_messages()) == 0


# -- 4. correlation (BP009, E2E 5.4) ----------------------------------------------------------


def test_the_workflow_correlation_id_travels_from_request_to_reply(
    dip: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    listening(dip, hook, "IF-005", cast["REGS"])
    listening(dip, hook, "IF-006", cast["MSS"], cast["SUP"])
    mss, regs = client(dip, cast["MSS"]), client(dip, cast["REGS"])
    response = mss.send("IF-005", [meter_install(mss)])
    assert response.status_code == 201, response.text
    (entry,) = items(response)
    correlation = entry["correlationID"]
    assert isinstance(correlation, str) and ids.is_correlation_id(correlation)
    wait_delivered(dip, [entry["transactionID"]])
    (request,) = received(hook)[REGS]
    assert d0(request)["initialCorrelationID"] == correlation

    common = request["CommonBlock"]
    reply = regs.message("IF-006", common["S0"]["eventCode"], "011", meter_install_block(datetime.now(UTC)),
                         mpan=common["M0"]["MPANCore"], primary_recipients=[common["S1"]["senderDIPID"]],
                         correlation_id=correlation)
    response = regs.send("IF-006", [reply])
    assert response.status_code == 201, response.text
    (answer_entry,) = items(response)
    assert answer_entry["correlationID"] == correlation
    tid = answer_entry["transactionID"]
    # the metering service named; the MPAN's supplier from the registry (SUP, by onboard_all)
    assert wait_delivered(dip, [tid]) == {tid: {(MSS, "MSS", "primary"), (SUP, "SUP", "secondary")}}
    got = received(hook)
    (answer,) = got[MSS]
    assert d0(answer)["transactionID"] == tid and d0(answer)["publicationID"] == "PUB-006"
    assert d0(answer)["initialCorrelationID"] == correlation
    assert answer["CommonBlock"]["S1"]["senderCorrelationID"] == correlation
    assert a0(answer)["primaryRecipients"] == [MSS] and a0(answer)["secondaryRecipients"] == [SUP]
    assert [d0(p)["initialCorrelationID"] for p in got[SUP]] == [correlation]


def test_a_reply_without_the_correlation_id_is_refused(dip: RunningDip, cast: dict[str, Identity]) -> None:
    regs = client(dip, cast["REGS"])

    def reply(correlation: str | None) -> dict[str, Any]:
        return regs.message("IF-006", "[MeterInstall]", "011", meter_install_block(datetime.now(UTC)),
                            mpan=mpan_core(7), primary_recipients=[MSS], correlation_id=correlation)

    response = regs.send("IF-006", [reply(None), reply("not-a-correlation-id"), reply("CI-20261123-00ff")])
    assert response.status_code == 207, response.text
    assert codes(response) == ["MSG1012", "MSG1012", "MSG0000"]
    missing, malformed, fine = items(response)
    assert "senderCorrelationID" in missing["help"] and missing["transactionID"] is None
    assert "not-a-correlation-id" in malformed["help"]
    assert fine["correlationID"] == "CI-20261123-00ff"


# -- 5. obfuscation per role ------------------------------------------------------------------


def test_obfuscated_fields_reach_the_masked_role_masked_and_everyone_else_intact(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    put_channel(admin, "IF-021", lambda d: d.update(obfuscation={"SUP": [PERIODS]}))
    listening(dip, hook, "IF-021", cast["SUP"], cast["MDS"])
    sds = client(dip, cast["SDS"])
    (message,) = consumption(sds, 1)
    (tid,) = accepted(sds.send("IF-021", [message]))
    wait_delivered(dip, [tid])
    got = received(hook)
    (to_sup,), (to_mds,) = got[SUP], got[MDS]

    originals = [p["v"] for p in periods(message)]
    masked = [p["v"] for p in periods(to_sup)]
    assert masked == [masked_value(v) for v in originals] == ["x" * len(v) for v in originals]
    assert all(m != o for m, o in zip(masked, originals, strict=True))
    # only the pointed-at values are masked
    assert [{k: v for k, v in p.items() if k != "v"} for p in periods(to_sup)] == [
        {k: v for k, v in p.items() if k != "v"} for p in periods(message)
    ]
    assert {k: v for k, v in to_sup["CustomBlock"].items() if k != "B900"} == {
        k: v for k, v in message["CustomBlock"].items() if k != "B900"
    }
    assert to_mds["CustomBlock"] == message["CustomBlock"]
    assert d0(to_sup)["transactionID"] == d0(to_mds)["transactionID"] == tid

    stored = in_store(dip, lambda s: s.get_message(tid))
    assert stored is not None and orjson.loads(stored.payload) == message, "the archive keeps the original"



def test_recipients_share_one_built_copy_only_where_they_see_the_same_message(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    """A delivery node builds a message's copy once for every recipient it looks the same to;
    a role the channel masks, even from a change made after the first copy went out, gets its own."""
    listening(dip, hook, "IF-021", cast["MDS"])
    sds = client(dip, cast["SDS"])
    (message,) = consumption(sds, 1)
    (tid,) = accepted(sds.send("IF-021", [message]))
    hook.wait_for(lambda calls: len(calls) == 1)
    put_channel(admin, "IF-021", lambda d: d.update(obfuscation={"SUP": [PERIODS]}))
    listening(dip, hook, "IF-021", cast["SUP"])  # SUP's copy is built after the change
    wait_delivered(dip, [tid])
    (to_mds,), (to_sup,) = received(hook)[MDS], received(hook)[SUP]
    assert periods(to_mds) == periods(message)
    assert [p["v"] for p in periods(to_sup)] == [masked_value(p["v"]) for p in periods(message)]
    assert d0(to_sup) == d0(to_mds) and d0(to_mds)["transactionID"] == tid
    assert a0(to_sup) == a0(to_mds)

# -- 6. registry maintenance from registration flows ------------------------------------------

REGISTRATION_BLOCK: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "B001": {"type": "object", "additionalProperties": False,
                 "required": ["gainingSupplierDIPID", "supplyStartDate"],
                 "properties": {"gainingSupplierDIPID": {"type": "string", "minLength": 10, "maxLength": 10},
                                "supplyStartDate": {"type": "string", "minLength": 25, "maxLength": 25}}},
        "B002": {"type": "object", "additionalProperties": False,
                 "required": ["losingSupplierDIPID", "supplyEndDate"],
                 "properties": {"losingSupplierDIPID": {"type": "string", "minLength": 10, "maxLength": 10},
                                "supplyEndDate": {"type": "string", "minLength": 25, "maxLength": 25}}},
    },
}
REGISTRY_UPDATES = [
    {"role": "SUP", "participant": "/CustomBlock/B001/gainingSupplierDIPID",
     "effectiveFrom": "/CustomBlock/B001/supplyStartDate", "eventCodes": ["[ChangeOfSupplier]"]},
    {"role": "SUP", "participant": "/CustomBlock/B002/losingSupplierDIPID",
     "effectiveTo": "/CustomBlock/B002/supplyEndDate"},
]


def midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


def supplier_rows(dip: RunningDip, mpan: str) -> list[AppointmentRow]:
    return sorted(r for r in in_store(dip, lambda s: s.appointments([mpan])) if r.role == "SUP")


def test_registration_flows_keep_the_mpan_registry_current(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    """IF-001 [ChangeOfSupplier] (REGS to the gaining and losing suppliers) appoints the gaining
    supplier from the supply start date, and a later one de-appoints it; IF-021 follows."""
    sup_b = admin.onboard(SUP_B, ["SUP"])
    put_channel(admin, "IF-001", lambda d: d.update(customBlockSchema=REGISTRATION_BLOCK,
                                                    registryUpdates=REGISTRY_UPDATES))
    mpan = mpan_core(300)
    admin.load_registry([appointment(mpan, "SUP", SUP, "2020-01-01")]).raise_for_status()
    listening(dip, hook, "IF-021", cast["SUP"], sup_b, cast["MDS"])
    regs, sds = client(dip, cast["REGS"]), client(dip, cast["SDS"])
    start = today() - timedelta(days=10)

    def registration(event_code: str, primary: list[str], **blocks: dict[str, str]) -> Response:
        return regs.send("IF-001", [regs.message("IF-001", event_code, "011", blocks, mpan=mpan,
                                                 primary_recipients=primary)])

    # [InitialRegistration] is not among the gaining rule's event codes: no change
    accepted(registration("[InitialRegistration]", [SUP_B],
                          B001={"gainingSupplierDIPID": SUP_B, "supplyStartDate": midnight(start)}))
    assert supplier_rows(dip, mpan) == [AppointmentRow(mpan, "SUP", "2020-01-01", SUP, None)]

    accepted(registration("[ChangeOfSupplier]", [SUP_B, SUP],
                          B001={"gainingSupplierDIPID": SUP_B, "supplyStartDate": midnight(start)}))
    assert supplier_rows(dip, mpan) == [
        AppointmentRow(mpan, "SUP", "2020-01-01", SUP, (start - timedelta(days=1)).isoformat()),
        AppointmentRow(mpan, "SUP", start.isoformat(), SUP_B, None),
    ]
    (tid,) = accepted(sds.send("IF-021", [usage(sds, mpan, start)]))
    assert wait_delivered(dip, [tid]) == {tid: {(SUP_B, "SUP", "secondary"), (MDS, "MDS", "always")}}
    assert [d0(p)["transactionID"] for p in received(hook)[SUP_B]] == [tid]
    assert SUP not in received(hook)

    end = today() - timedelta(days=3)
    accepted(registration("[ChangeOfSupplier]", [SUP_B],
                          B002={"losingSupplierDIPID": SUP_B, "supplyEndDate": midnight(end)}))
    assert supplier_rows(dip, mpan) == [
        AppointmentRow(mpan, "SUP", "2020-01-01", SUP, (start - timedelta(days=1)).isoformat()),
        AppointmentRow(mpan, "SUP", start.isoformat(), SUP_B, end.isoformat()),
    ], "closed, not deleted: the history is kept"
    response = sds.send("IF-021", [usage(sds, mpan, today() - timedelta(days=1))])
    assert response.status_code == 207 and codes(response) == ["MSG1038"], response.text


def test_registry_changes_of_one_batch_build_on_each_other(
    dip: RunningDip, admin: AdminClient, cast: dict[str, Identity]
) -> None:
    admin.onboard(SUP_B, ["SUP"])
    put_channel(admin, "IF-001", lambda d: d.update(customBlockSchema=REGISTRATION_BLOCK,
                                                    registryUpdates=REGISTRY_UPDATES))
    mpan = mpan_core(301)
    admin.load_registry([appointment(mpan, "SUP", SUP, "2020-01-01")]).raise_for_status()
    regs = client(dip, cast["REGS"])
    start, end = today() - timedelta(days=20), today() - timedelta(days=2)
    accepted(regs.send("IF-001", [
        regs.message("IF-001", "[ChangeOfSupplier]", "011",
                     {"B001": {"gainingSupplierDIPID": SUP_B, "supplyStartDate": midnight(start)}},
                     mpan=mpan, primary_recipients=[SUP_B]),
        regs.message("IF-001", "[ChangeOfSupplier]", "011",
                     {"B002": {"losingSupplierDIPID": SUP_B, "supplyEndDate": midnight(end)}},
                     mpan=mpan, primary_recipients=[SUP_B]),
    ]))
    assert supplier_rows(dip, mpan) == [
        AppointmentRow(mpan, "SUP", "2020-01-01", SUP, (start - timedelta(days=1)).isoformat()),
        AppointmentRow(mpan, "SUP", start.isoformat(), SUP_B, end.isoformat()),
    ]


# -- 7. FIFO per recipient queue --------------------------------------------------------------


def test_batches_reach_a_recipient_in_acceptance_order(
    dip: RunningDip, cast: dict[str, Identity], hook: WebhookReceiver
) -> None:
    response = listen(dip, cast["MDS"], "IF-021", hook, max_message_count=2)
    assert response.status_code == 201, response.text
    hook.respond(503)  # the first call fails: the head is held and retried, nothing overtakes it
    sds = client(dip, cast["SDS"])
    order: list[str] = []
    for n in (3, 1, 4, 2):
        order += accepted(sds.send("IF-021", consumption(sds, n)))
    calls = hook.wait_for(lambda calls: sum(len(c.json) for c in calls[1:]) >= len(order))
    delivered = [d0(m["payload"])["transactionID"] for c in calls[1:] for m in c.json]
    assert delivered == order
    assert all(len(c.json) <= 2 for c in calls)
    assert [d0(m["payload"])["transactionID"] for m in calls[0].json] == order[:len(calls[0].json)]
