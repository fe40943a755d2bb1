"""Level 1 checks after the schema stage (dip.accept.level1.judge): who may send what, and what the DIP stamps.

Each test sends schema-valid messages (made by dip.accept.schema.check_chunk) through judge() with
a hand-built directory and caller, and checks the response code a participant would get.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dip import ids
from dip.accept.level1 import Caller, Verdict, judge, may_send_on, sender_role_problem
from dip.accept.schema import check_chunk, spec_for
from dip.catalogue import Channel, parse_definition
from dip.codes import Code
from dip.directory import Directory, Participant

SUP, MULTI, REGS, MDS, DCP, IDLE, OUTSIDER = (
    "1000000001", "1000000002", "1100000001", "1400000001", "1600000001", "1900000001", "1999999999"
)
PARTICIPANTS = {
    SUP: Participant(SUP, "Supplier", frozenset({"SUP"})),
    MULTI: Participant(MULTI, "Supplier and MSS", frozenset({"SUP", "MSS"})),
    REGS: Participant(REGS, "Registration", frozenset({"REGS"})),
    MDS: Participant(MDS, "Meter data", frozenset({"MDS"})),
    DCP: Participant(DCP, "Connection provider", frozenset({"DCP"})),
    IDLE: Participant(IDLE, "Off-boarded supplier", frozenset({"SUP", "REGS"}), active=False),
}
DIRECTORY = Directory(
    participants=PARTICIPANTS,
    providers={
        (SUP, DCP): frozenset({"SUP"}),
        (MULTI, DCP): frozenset({"MSS"}),
        (IDLE, DCP): frozenset({"SUP"}),
    },
)
NOW = datetime(2026, 11, 23, 10, 20, tzinfo=UTC)
SENT = "2026-11-23T10:15:00+00:00"
RECEIVED_AT = 1_795_429_200_000_000


def make_channel(interface_id: str = "IF-909", **overrides: Any) -> Channel:
    definition: dict[str, Any] = {
        "publicationID": "PUB-" + interface_id[3:],
        "title": "Test channel",
        "senderRoles": ["SUP", "MSS"],
        "eventCodes": ["[MeterInstall]"],
        "schemaVersions": ["011"],
        "routing": {"primary": ["REGS"]},
        "correlation": "create",
        **overrides,
    }
    return parse_definition(interface_id, json.dumps(definition).encode())


PRIMARY_ONLY = make_channel()
COPY = make_channel("IF-910", correlation="copy", routing={"primary": ["REGS"], "always": {"roles": ["MDS"]}})
NONE = make_channel("IF-911", correlation="none", routing={"primary": ["REGS"], "always": {"roles": ["MDS"]}})
SUP_ONLY = make_channel("IF-912", senderRoles=["SUP"], routing={"always": {"roles": ["MDS"]}})


def caller(physical: str, principal: str | None = None) -> Caller:
    return Caller(principal=PARTICIPANTS[principal or physical], physical=PARTICIPANTS[physical])


def message(
    channel: Channel = PRIMARY_ONLY,
    *,
    sender: str = SUP,
    role: str = "SUP",
    ref: str = "r1",
    sur: str | None = None,
    timestamp: str = SENT,
    correlation: str | None = None,
    dcp: str | None = None,
    primary: list[str | None] | None = None,
    mpan: str = "1234567890123",
) -> dict[str, Any]:
    iface = channel.interface_id
    return {
        "CommonBlock": {
            "S0": {"interfaceID": iface, "schemaVersion": "011", "eventCode": "[MeterInstall]"},
            "S1": {
                "environmentTag": "DEV",
                "subText": None,
                "senderUniqueReference": sur or f"S-{iface}-{sender}-{role}-20261123-{ref}",
                "senderTimestamp": timestamp,
                "senderDIPID": sender,
                "senderRoleID": role,
                "senderCorrelationID": correlation,
                "DIPConnectionProviderID": dcp,
            },
            "A0": {"primaryRecipients": [REGS] if primary is None else primary, "secondaryRecipients": [],
                   "always": []},
            "M0": {"MPANCore": mpan, "distributorDIPID": "1500000001", "GSPGroupID": "_A"},
        },
        "CustomBlock": {"B001": {"meterSerial": "M 1"}},
    }


def run(channel: Channel, by: Caller, *payloads: dict[str, Any] | bytes, now: datetime = NOW,
        directory: Directory = DIRECTORY) -> list[Verdict]:
    raws = [p if isinstance(p, bytes) else orjson.dumps({"payload": p}) for p in payloads]
    checked = check_chunk(spec_for(channel, "DEV"), 0, raws)
    assert [c.code for c in checked] == [None] * len(raws), [c.help for c in checked]
    return judge(channel, directory, by, checked, raws, now, RECEIVED_AT)


def one(channel: Channel, by: Caller, payload: dict[str, Any], now: datetime = NOW) -> Verdict:
    [verdict] = run(channel, by, payload, now=now)
    return verdict


def rejected(channel: Channel, by: Caller, payload: dict[str, Any], code: Code, now: datetime = NOW) -> str:
    verdict = one(channel, by, payload, now)
    assert verdict.code == code, (verdict.code, verdict.help)
    assert not verdict.accepted
    assert verdict.row is None
    assert verdict.help
    return verdict.help


def accepted(channel: Channel, by: Caller, payload: dict[str, Any], now: datetime = NOW) -> Verdict:
    verdict = one(channel, by, payload, now)
    assert verdict.code == Code.SUCCESS, verdict.help
    assert verdict.accepted
    assert verdict.help is None
    return verdict


# --- accepted messages ----------------------------------------------------------------------------------


def test_accepted_message_row_carries_ids_header_and_the_validated_payload() -> None:
    payload_text = orjson.dumps(message()).decode().replace('":', '" :\t ')
    raw = ('{"payload":   ' + payload_text + "\n}").encode()

    [verdict] = run(PRIMARY_ONLY, caller(SUP), raw)

    assert verdict.code == Code.SUCCESS
    assert (verdict.index, verdict.sur, verdict.sender_id, verdict.dcp_id) == (
        0, "S-IF-909-1000000001-SUP-20261123-r1", SUP, None
    )
    row = verdict.row
    assert row is not None
    assert row.transaction_id.startswith(f"T-IF-909-{SUP}-SUP-20261123-")
    assert len(row.transaction_id) <= ids.TRANSACTION_ID_MAX_LENGTH
    assert (row.interface_id, row.event_code, row.schema_version) == ("IF-909", "[MeterInstall]", "011")
    assert (row.sender_id, row.sender_role, row.dcp_id) == (SUP, "SUP", None)
    assert row.sur == "S-IF-909-1000000001-SUP-20261123-r1"
    assert row.mpan == "1234567890123"
    assert row.received_at == RECEIVED_AT
    assert row.payload == orjson.dumps(orjson.loads(payload_text))


def test_every_accepted_message_gets_its_own_transaction_id() -> None:
    verdicts = run(PRIMARY_ONLY, caller(SUP), *(message(ref=f"r{i}") for i in range(50)))

    tids = [v.row.transaction_id for v in verdicts if v.row is not None]
    assert len(set(tids)) == 50
    assert all(t.startswith(f"T-IF-909-{SUP}-SUP-20261123-") for t in tids)
    assert tids == sorted(tids)  # made at the same moment: in batch order


def test_create_channel_gives_each_message_a_fresh_correlation_id() -> None:
    verdicts = run(PRIMARY_ONLY, caller(SUP), message(ref="a"), message(ref="b", correlation="CI-20261101-abc"))

    cids = [v.row.correlation_id for v in verdicts if v.row is not None]
    assert len(cids) == 2
    assert len(set(cids)) == 2
    assert all(c is not None and ids.is_correlation_id(c) and c.startswith("CI-20261123-") for c in cids)
    assert "CI-20261101-abc" not in cids


def test_copy_channel_passes_the_senders_correlation_id_on() -> None:
    row = accepted(COPY, caller(SUP), message(COPY, correlation="CI-20261101-abc123")).row

    assert row is not None
    assert row.correlation_id == "CI-20261101-abc123"


def test_none_channel_keeps_the_senders_correlation_id_or_none() -> None:
    with_id = accepted(NONE, caller(SUP), message(NONE, ref="a", correlation="CI-20261101-abc")).row
    without = accepted(NONE, caller(SUP), message(NONE, ref="b")).row

    assert with_id is not None
    assert without is not None
    assert with_id.correlation_id == "CI-20261101-abc"
    assert without.correlation_id is None


def test_connection_provider_may_send_for_a_participant_in_a_registered_role() -> None:
    verdict = accepted(PRIMARY_ONLY, caller(DCP), message(dcp=DCP))

    assert verdict.dcp_id == DCP
    assert verdict.row is not None
    assert (verdict.row.sender_id, verdict.row.dcp_id) == (SUP, DCP)


def test_sender_naming_itself_as_connection_provider_is_accepted() -> None:
    accepted(PRIMARY_ONLY, caller(SUP), message(dcp=SUP))


def test_participant_with_several_roles_sends_in_any_of_them() -> None:
    accepted(PRIMARY_ONLY, caller(MULTI), message(sender=MULTI, role="MSS"))
    accepted(PRIMARY_ONLY, caller(MULTI), message(sender=MULTI, role="SUP"))


def test_one_verdict_per_message_in_batch_order_with_failures_alongside_successes() -> None:
    verdicts = run(
        PRIMARY_ONLY, caller(SUP),
        message(ref="a"),
        message(ref="b", sender=OUTSIDER),
        message(ref="c", timestamp="2026-11-24T10:15:00+00:00"),
        message(ref="d"),
    )

    assert [(v.index, v.code) for v in verdicts] == [
        (0, Code.SUCCESS), (1, Code.SENDER_INVALID), (2, Code.SENDER_TIMESTAMP_INVALID), (3, Code.SUCCESS)
    ]
    assert [v.accepted for v in verdicts] == [True, False, False, True]


# --- MSG1009 sender DIP ID -------------------------------------------------------------------------------


def test_unknown_sender_is_msg1009() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(sender=OUTSIDER), Code.SENDER_INVALID)

    assert OUTSIDER in help_text
    assert "not an on-boarded" in help_text


def test_off_boarded_sender_is_msg1009() -> None:
    rejected(PRIMARY_ONLY, caller(DCP), message(sender=IDLE, dcp=DCP), Code.SENDER_INVALID)


def test_sender_who_is_not_the_caller_without_a_connection_provider_is_msg1009() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(MULTI), message(sender=SUP), Code.SENDER_INVALID)

    assert "DIPConnectionProviderID" in help_text
    assert MULTI in help_text


def test_the_certificates_participant_is_the_caller_not_the_api_keys() -> None:
    # A DCP's certificate with the supplier's API key: the physical sender is the DCP.
    rejected(PRIMARY_ONLY, caller(DCP, principal=SUP), message(), Code.SENDER_INVALID)


# --- MSG1011 connection provider --------------------------------------------------------------------------


def test_connection_provider_named_when_the_sender_sent_it_itself_is_msg1011() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(dcp=DCP), Code.CONNECTION_PROVIDER_INVALID)

    assert "leave it null" in help_text


def test_connection_provider_that_is_not_the_caller_is_msg1011() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(MULTI), message(dcp=DCP), Code.CONNECTION_PROVIDER_INVALID)

    assert f"'{DCP}' is not the authenticated caller '{MULTI}'" in help_text


def test_connection_provider_not_registered_for_the_role_is_msg1011() -> None:
    # DCP acts for MULTI as MSS only.
    help_text = rejected(PRIMARY_ONLY, caller(DCP), message(sender=MULTI, role="SUP", dcp=DCP),
                         Code.CONNECTION_PROVIDER_INVALID)

    assert "in role SUP" in help_text
    accepted(PRIMARY_ONLY, caller(DCP), message(sender=MULTI, role="MSS", dcp=DCP))


def test_connection_provider_not_registered_for_the_participant_is_msg1011() -> None:
    rejected(PRIMARY_ONLY, caller(DCP), message(sender=REGS, role="REGS", dcp=DCP), Code.CONNECTION_PROVIDER_INVALID)


# --- MSG1010 sender role -----------------------------------------------------------------------------------


def test_role_the_sender_does_not_hold_is_msg1010() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(role="MSS"), Code.SENDER_ROLE_INVALID)

    assert f"MSS is not a role of '{SUP}'" in help_text


def test_role_that_may_not_send_on_the_channel_is_msg1010() -> None:
    help_text = rejected(SUP_ONLY, caller(MULTI), message(SUP_ONLY, sender=MULTI, role="MSS"),
                         Code.SENDER_ROLE_INVALID)

    assert "may not send on IF-912" in help_text
    assert "SUP" in help_text


def test_lower_case_role_passes_the_schema_but_is_msg1010() -> None:
    rejected(PRIMARY_ONLY, caller(SUP), message(role="sup", sur=f"S-IF-909-{SUP}-SUP-20261123-r1"),
             Code.SENDER_ROLE_INVALID)


# --- MSG1006 sender unique reference ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sur", "part"),
    [
        (f"S-IF-908-{SUP}-SUP-20261123-r1", "interface"),
        (f"S-REP-909-{SUP}-SUP-20261123-r1", "interface"),
        (f"S-IF-909-{MULTI}-SUP-20261123-r1", "participant"),
        (f"S-IF-909-{SUP}-MSS-20261123-r1", "role"),
    ],
)
def test_sur_whose_parts_do_not_match_the_message_is_msg1006(sur: str, part: str) -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(sur=sur), Code.SUR_DUPLICATED)

    assert part in help_text


def test_sur_without_the_if_prefix_is_accepted() -> None:
    accepted(PRIMARY_ONLY, caller(SUP), message(sur=f"S-909-{SUP}-SUP-20261123-r1"))


def test_sur_repeated_within_a_batch_is_msg1006_for_the_repeat_only() -> None:
    verdicts = run(PRIMARY_ONLY, caller(SUP), message(ref="same"), message(ref="other"), message(ref="same"))

    assert [v.code for v in verdicts] == [Code.SUCCESS, Code.SUCCESS, Code.SUR_DUPLICATED]
    assert verdicts[2].help == "senderUniqueReference repeats an earlier message in this batch"


def test_sur_of_a_rejected_message_may_be_used_again_in_the_batch() -> None:
    verdicts = run(PRIMARY_ONLY, caller(SUP), message(ref="x", timestamp="2027-01-01T00:00:00+00:00"),
                   message(ref="x"))

    assert [v.code for v in verdicts] == [Code.SENDER_TIMESTAMP_INVALID, Code.SUCCESS]


# --- MSG1007 sender timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", ["2026-11-23X10:15:00+00:00", "2026-13-23T10:15:00+00:00",
                                       "not a timestamp, 25 chars", "2026-11-23T10:15:00.00000"])
def test_unparseable_timestamp_is_msg1007(timestamp: str) -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(timestamp=timestamp), Code.SENDER_TIMESTAMP_INVALID)

    assert timestamp in help_text


@pytest.mark.parametrize("ahead", [timedelta(minutes=5, seconds=1), timedelta(minutes=6), timedelta(days=1)])
def test_timestamp_more_than_five_minutes_ahead_is_msg1007(ahead: timedelta) -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(timestamp=ids.timestamp(NOW + ahead)),
                         Code.SENDER_TIMESTAMP_INVALID)

    assert "future" in help_text


@pytest.mark.parametrize("ahead", [timedelta(minutes=4), timedelta(minutes=5), timedelta(0), -timedelta(days=30)])
def test_timestamp_up_to_five_minutes_ahead_or_in_the_past_is_fine(ahead: timedelta) -> None:
    accepted(PRIMARY_ONLY, caller(SUP), message(timestamp=ids.timestamp(NOW + ahead)))


def test_timestamp_with_an_offset_is_compared_as_an_instant() -> None:
    # 11:19+01:00 is 10:19 UTC, a minute before NOW; 15:30-05:00 is 20:30 UTC, hours ahead.
    accepted(PRIMARY_ONLY, caller(SUP), message(ref="a", timestamp="2026-11-23T11:19:00+01:00"))
    rejected(PRIMARY_ONLY, caller(SUP), message(ref="b", timestamp="2026-11-23T15:30:00-05:00"),
             Code.SENDER_TIMESTAMP_INVALID)


# --- MSG1012 sender correlation ID ---------------------------------------------------------------------


def test_copy_channel_without_a_correlation_id_is_msg1012() -> None:
    help_text = rejected(COPY, caller(SUP), message(COPY), Code.SENDER_CORRELATION_INVALID)

    assert "senderCorrelationID" in help_text


@pytest.mark.parametrize("channel", [COPY, NONE, PRIMARY_ONLY], ids=["copy", "none", "create"])
@pytest.mark.parametrize("cid", ["CI-bad", "CI-2026112-abc", "T-20261123-abc", "CI-20261123-xyz"])
def test_malformed_correlation_id_is_msg1012(channel: Channel, cid: str) -> None:
    help_text = rejected(channel, caller(SUP), message(channel, correlation=cid), Code.SENDER_CORRELATION_INVALID)

    assert cid in help_text


# --- MSG1030..1032 addressing on primary-only channels --------------------------------------------------


@pytest.mark.parametrize("primary", [[], [None]])
def test_primary_only_channel_without_a_named_recipient_is_msg1030(primary: list[str | None]) -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(primary=primary), Code.ROUTING_ERROR)

    assert "REGS" in help_text


@pytest.mark.parametrize("recipient", [OUTSIDER, IDLE])
def test_primary_recipient_not_on_boarded_is_msg1031(recipient: str) -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(primary=[REGS, recipient]),
                         Code.PRIMARY_PARTICIPANT_INVALID)

    assert recipient in help_text


def test_primary_recipient_without_a_primary_role_is_msg1032() -> None:
    help_text = rejected(PRIMARY_ONLY, caller(SUP), message(primary=[MDS]), Code.PRIMARY_ROLE_INVALID)

    assert MDS in help_text
    assert "REGS" in help_text


def test_channel_with_other_routing_needs_no_named_recipient() -> None:
    accepted(NONE, caller(SUP), message(NONE, primary=[]))
    accepted(COPY, caller(SUP), message(COPY, primary=[], correlation="CI-20261101-abc"))


def test_named_recipients_are_checked_on_channels_with_other_routing_too() -> None:
    rejected(NONE, caller(SUP), message(NONE, primary=[MDS]), Code.PRIMARY_ROLE_INVALID)


# --- order of the checks (E2E 4.4.3) ---------------------------------------------------------------------


def test_checks_run_in_order_sender_provider_role_sur_timestamp_correlation_addressing() -> None:
    bad: dict[str, Any] = {"timestamp": "2027-01-01T00:00:00+00:00", "correlation": "CI-bad", "primary": [OUTSIDER]}

    assert one(COPY, caller(SUP), message(COPY, sender=OUTSIDER, role="MSS", **bad)).code == Code.SENDER_INVALID
    assert one(COPY, caller(SUP), message(COPY, dcp=DCP, role="MSS", **bad)).code == Code.CONNECTION_PROVIDER_INVALID
    assert one(COPY, caller(SUP), message(COPY, role="MSS", **bad)).code == Code.SENDER_ROLE_INVALID
    assert one(COPY, caller(SUP), message(COPY, sur="S-IF-001-1000000001-SUP-20261123-a", **bad)).code == (
        Code.SUR_DUPLICATED
    )
    assert one(COPY, caller(SUP), message(COPY, **bad)).code == Code.SENDER_TIMESTAMP_INVALID
    del bad["timestamp"]
    assert one(COPY, caller(SUP), message(COPY, **bad)).code == Code.SENDER_CORRELATION_INVALID
    del bad["correlation"]
    assert one(COPY, caller(SUP), message(COPY, **bad)).code == Code.SENDER_CORRELATION_INVALID  # copy: required
    assert one(COPY, caller(SUP), message(COPY, correlation="CI-20261101-a", **bad)).code == (
        Code.PRIMARY_PARTICIPANT_INVALID
    )


# --- MSG1010: one rule, behind the per-message check and the 403 ------------------------------------------


def test_the_sender_role_rule_names_what_is_wrong() -> None:
    supplier, multi, regs = PARTICIPANTS[SUP], PARTICIPANTS[MULTI], PARTICIPANTS[REGS]
    assert sender_role_problem(SUP_ONLY, supplier, "SUP") is None
    assert sender_role_problem(SUP_ONLY, supplier) is None  # some role it holds may send
    assert sender_role_problem(SUP_ONLY, multi, "MSS") == "role MSS may not send on IF-912 (senders: SUP)"
    assert sender_role_problem(SUP_ONLY, supplier, "MSS") == f"senderRoleID MSS is not a role of '{SUP}'"
    assert sender_role_problem(SUP_ONLY, regs) == f"'{REGS}' holds no role that may send on IF-912 (SUP)"


# --- may_send_on ------------------------------------------------------------------------------------------


def test_may_send_on_when_the_caller_holds_a_sender_role() -> None:
    assert may_send_on(SUP_ONLY, caller(SUP), DIRECTORY)
    assert may_send_on(SUP_ONLY, caller(MULTI), DIRECTORY)


def test_may_not_send_on_without_a_sender_role() -> None:
    assert not may_send_on(SUP_ONLY, caller(REGS), DIRECTORY)
    assert not may_send_on(SUP_ONLY, caller(MDS), DIRECTORY)


def test_connection_provider_may_send_on_channels_of_its_registered_roles_only() -> None:
    mss_only = make_channel("IF-913", senderRoles=["MSS"])
    regs_only = make_channel("IF-914", senderRoles=["REGS"])

    assert may_send_on(SUP_ONLY, caller(DCP), DIRECTORY)  # for SUP as SUP
    assert may_send_on(mss_only, caller(DCP), DIRECTORY)  # for MULTI as MSS
    assert not may_send_on(regs_only, caller(DCP), DIRECTORY)


def test_connection_provider_for_an_off_boarded_participant_only_may_not_send() -> None:
    directory = Directory(participants=PARTICIPANTS, providers={(IDLE, DCP): frozenset({"SUP"})})

    assert not may_send_on(SUP_ONLY, caller(DCP), directory)
