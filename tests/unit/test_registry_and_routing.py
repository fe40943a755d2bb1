"""The MPAN registry and message routing (E2E 4.3.1; FS 5.5.3, 5.5.14; API contract ``routing``).

Who receives a message is the heart of the DIP: a missed recipient loses a market message, an
extra one leaks it. Directories are built by hand; channels from their definitions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip.accept.registry import Appointment, Registry
from dip.accept.routing import Recipient, Routed, Router, RoutingError, always_recipients, route, routing_day
from dip.catalogue import Channel, parse_definition
from dip.codes import Code
from dip.directory import Directory, Participant

MPAN = "1234567890123"
OTHER_MPAN = "9876543210987"

# ---------------------------------------------------------------------------------------------
# registry


def test_lookup_follows_the_appointment_history() -> None:
    registry = Registry(
        [
            Appointment(MPAN, "SUP", "SUPPLIER01", "2023-01-01", "2023-12-31"),
            Appointment(MPAN, "SUP", "SUPPLIER02", "2024-01-01", "2024-06-30"),
            Appointment(MPAN, "SUP", "SUPPLIER03", "2024-07-01", None),
        ]
    )
    assert registry.lookup(MPAN, "SUP", "2022-12-31") == []
    assert registry.lookup(MPAN, "SUP", "2023-01-01") == ["SUPPLIER01"]
    assert registry.lookup(MPAN, "SUP", "2023-12-31") == ["SUPPLIER01"], "an appointment covers its last day"
    assert registry.lookup(MPAN, "SUP", "2024-01-01") == ["SUPPLIER02"]
    assert registry.lookup(MPAN, "SUP", "2024-06-30") == ["SUPPLIER02"]
    assert registry.lookup(MPAN, "SUP", "2024-07-01") == ["SUPPLIER03"]
    assert registry.lookup(MPAN, "SUP", "2099-01-01") == ["SUPPLIER03"], "open-ended"
    assert len(registry) == 3


def test_lookup_does_not_depend_on_insertion_order() -> None:
    appointments = [
        Appointment(MPAN, "SUP", "SUPPLIER03", "2024-07-01", None),
        Appointment(MPAN, "SUP", "SUPPLIER01", "2023-01-01", "2023-12-31"),
        Appointment(MPAN, "SUP", "SUPPLIER02", "2024-01-01", "2024-06-30"),
    ]
    registry = Registry()
    for appointment in appointments:
        registry.add(appointment)
    assert registry.lookup(MPAN, "SUP", "2023-06-01") == ["SUPPLIER01"]
    assert registry.lookup(MPAN, "SUP", "2024-03-01") == ["SUPPLIER02"]
    assert registry.lookup(MPAN, "SUP", "2025-03-01") == ["SUPPLIER03"]


def test_a_gap_between_appointments_has_nobody() -> None:
    registry = Registry(
        [
            Appointment(MPAN, "MDS", "MDS0000001", "2024-01-01", "2024-01-31"),
            Appointment(MPAN, "MDS", "MDS0000002", "2024-03-01", None),
        ]
    )
    assert registry.lookup(MPAN, "MDS", "2024-02-15") == []


def test_overlapping_appointments_return_both() -> None:
    registry = Registry(
        [
            Appointment(MPAN, "SUP", "SUPPLIER02", "2024-01-01", None),
            Appointment(MPAN, "SUP", "SUPPLIER01", "2023-01-01", "2024-01-10"),
        ]
    )
    assert registry.lookup(MPAN, "SUP", "2024-01-05") == ["SUPPLIER01", "SUPPLIER02"]
    assert registry.lookup(MPAN, "SUP", "2024-01-10") == ["SUPPLIER01", "SUPPLIER02"]
    assert registry.lookup(MPAN, "SUP", "2024-01-11") == ["SUPPLIER02"]


def test_an_appointment_covering_a_day_is_found_even_behind_a_later_one_that_started_earlier() -> None:
    # a long open appointment, then short ones that started later: the long one still covers
    registry = Registry(
        [
            Appointment(MPAN, "SUP", "LONG000001", "2020-01-01", None),
            Appointment(MPAN, "SUP", "SHORT00001", "2021-01-01", "2021-01-31"),
            Appointment(MPAN, "SUP", "SHORT00002", "2022-01-01", "2022-01-31"),
        ]
    )
    assert registry.lookup(MPAN, "SUP", "2023-05-05") == ["LONG000001"]
    assert registry.lookup(MPAN, "SUP", "2022-01-15") == ["LONG000001", "SHORT00002"]


def test_the_same_participant_reappointed_is_listed_once() -> None:
    registry = Registry(
        [
            Appointment(MPAN, "SUP", "SUPPLIER01", "2024-01-01", None),
            Appointment(MPAN, "SUP", "SUPPLIER01", "2023-01-01", None),
        ]
    )
    assert registry.lookup(MPAN, "SUP", "2024-05-01") == ["SUPPLIER01"]


def test_lookups_are_per_mpan_and_role() -> None:
    registry = Registry(
        [
            Appointment(MPAN, "SUP", "SUPPLIER01", "2024-01-01", None),
            Appointment(MPAN, "MDS", "MDS0000001", "2024-01-01", None),
            Appointment(OTHER_MPAN, "SUP", "SUPPLIER09", "2024-01-01", None),
        ]
    )
    assert registry.lookup(MPAN, "SUP", "2024-02-01") == ["SUPPLIER01"]
    assert registry.lookup(MPAN, "MDS", "2024-02-01") == ["MDS0000001"]
    assert registry.lookup(OTHER_MPAN, "SUP", "2024-02-01") == ["SUPPLIER09"]
    assert registry.lookup(OTHER_MPAN, "MDS", "2024-02-01") == []
    assert registry.lookup("1111111111111", "SUP", "2024-02-01") == []
    assert registry.knows(MPAN) and registry.knows(OTHER_MPAN)
    assert not registry.knows("1111111111111")


def test_an_empty_registry_knows_nothing() -> None:
    registry = Registry()
    assert len(registry) == 0
    assert registry.lookup(MPAN, "SUP", "2024-01-01") == []
    assert not registry.knows(MPAN)


_days = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))


@st.composite
def appointment_lists(draw: st.DrawFn) -> list[Appointment]:
    result = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        start = draw(_days)
        end = draw(st.none() | _days.filter(lambda d, s=start: d >= s))
        pid = draw(st.sampled_from(["PARTY00001", "PARTY00002", "PARTY00003"]))
        role = draw(st.sampled_from(["SUP", "MDS"]))
        result.append(Appointment(MPAN, role, pid, start.isoformat(), None if end is None else end.isoformat()))
    return result


@given(appointment_lists(), _days, st.permutations(range(8)))
def test_lookup_agrees_with_a_plain_scan(appointments: list[Appointment], day: date, order: list[int]) -> None:
    shuffled = [appointments[i] for i in order if i < len(appointments)]
    registry = Registry(shuffled)
    iso = day.isoformat()
    for role in ("SUP", "MDS"):
        expected = sorted(
            {
                a.participant_id
                for a in appointments
                if a.role == role and a.effective_from <= iso and (a.effective_to is None or iso <= a.effective_to)
            }
        )
        assert registry.lookup(MPAN, role, iso) == expected


# ---------------------------------------------------------------------------------------------
# routing: helpers

SUP1 = "SUPPLIER01"
SUP2 = "SUPPLIER02"
MDS1 = "MDS0000001"
MDS2 = "MDS0000002"
REG1 = "REGS000001"
BOTH = "BOTHROLES1"  # holds REGS and SUP
GONE = "OFFBOARDED"
SENDER = "SENDER0001"
WATCHER = "WATCHER001"  # named in always.participants


def directory(*extra: Participant) -> Directory:
    people = [
        Participant(SUP1, "Supplier One", frozenset({"SUP"})),
        Participant(SUP2, "Supplier Two", frozenset({"SUP"})),
        Participant(MDS1, "MDS One", frozenset({"MDS"})),
        Participant(MDS2, "MDS Two", frozenset({"MDS"})),
        Participant(REG1, "Registration One", frozenset({"REGS"})),
        Participant(BOTH, "Both", frozenset({"REGS", "SUP"})),
        Participant(GONE, "Gone", frozenset({"SUP", "MDS", "REGS"}), active=False),
        Participant(SENDER, "Sender", frozenset({"MSS", "MDS"})),
        Participant(WATCHER, "Watcher", frozenset({"ADS", "MDS"})),
        *extra,
    ]
    return Directory(participants={p.id: p for p in people})


def channel(routing: dict[str, Any], interface_id: str = "IF-909") -> Channel:
    definition = {
        "publicationID": "PUB-909",
        "title": "Test channel",
        "senderRoles": ["MSS"],
        "eventCodes": ["[Appointment]"],
        "schemaVersions": ["011"],
        "routing": routing,
    }
    return parse_definition(interface_id, orjson.dumps(definition))


NOBODY = Registry()
DAY = "2024-05-01"


def routed(result: Routed | RoutingError) -> Routed:
    assert isinstance(result, Routed), result
    return result


def error(result: Routed | RoutingError) -> RoutingError:
    assert isinstance(result, RoutingError), result
    return result


def pairs(result: Routed | RoutingError) -> set[tuple[str, str, str]]:
    recipients = routed(result).recipients
    found = {(r.participant_id, r.role, r.kind) for r in recipients}
    assert len(found) == len(recipients), "a pair receives once"
    assert len({(r.participant_id, r.role) for r in recipients}) == len(recipients), "a pair receives once"
    return found


# ---------------------------------------------------------------------------------------------
# primary


PRIMARY = {"primary": ["REGS", "SUP"]}


def test_primary_routes_to_the_named_participant() -> None:
    result = route(channel(PRIMARY), directory(), NOBODY, (SENDER, "MSS"), [REG1], None, DAY)
    assert pairs(result) == {(REG1, "REGS", "primary")}
    assert routed(result).secondary_ids == () and routed(result).always_ids == ()


def test_a_named_participant_with_two_primary_roles_receives_twice() -> None:
    result = route(channel(PRIMARY), directory(), NOBODY, (SENDER, "MSS"), [BOTH], None, DAY)
    assert pairs(result) == {(BOTH, "REGS", "primary"), (BOTH, "SUP", "primary")}


def test_a_participant_only_receives_as_the_channels_primary_roles() -> None:
    result = route(channel({"primary": ["SUP"]}), directory(), NOBODY, (SENDER, "MSS"), [BOTH], None, DAY)
    assert pairs(result) == {(BOTH, "SUP", "primary")}


def test_several_named_participants_and_blanks() -> None:
    result = route(channel(PRIMARY), directory(), NOBODY, (SENDER, "MSS"), [None, SUP1, REG1, None, SUP1], None, DAY)
    assert pairs(result) == {(SUP1, "SUP", "primary"), (REG1, "REGS", "primary")}


@pytest.mark.parametrize("named", ["UNKNOWN001", GONE, ""])
def test_an_unknown_or_offboarded_primary_is_msg1031(named: str) -> None:
    result = route(channel(PRIMARY), directory(), NOBODY, (SENDER, "MSS"), [SUP1, named], None, DAY)
    assert error(result).code is Code.PRIMARY_PARTICIPANT_INVALID
    assert error(result).code.value == "MSG1031"


def test_a_primary_without_a_primary_role_is_msg1032() -> None:
    result = route(channel(PRIMARY), directory(), NOBODY, (SENDER, "MSS"), [MDS1], None, DAY)
    assert error(result).code is Code.PRIMARY_ROLE_INVALID
    assert error(result).code.value == "MSG1032"
    assert MDS1 in error(result).help


# ---------------------------------------------------------------------------------------------
# secondary

SECONDARY = {"secondary": ["SUP", "MDS"], "secondaryDate": "/CustomBlock/B001/effectiveFromDate"}


def history() -> Registry:
    return Registry(
        [
            Appointment(MPAN, "SUP", SUP1, "2023-01-01", "2024-03-31"),
            Appointment(MPAN, "SUP", SUP2, "2024-04-01", None),
            Appointment(MPAN, "MDS", MDS1, "2023-01-01", None),
            Appointment(OTHER_MPAN, "SUP", GONE, "2023-01-01", None),
            Appointment(OTHER_MPAN, "MDS", MDS2, "2023-01-01", None),
        ]
    )


def test_secondary_looks_up_the_mpan_at_the_given_day() -> None:
    now = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], MPAN, "2024-05-01")
    assert pairs(now) == {(SUP2, "SUP", "secondary"), (MDS1, "MDS", "secondary")}
    assert routed(now).secondary_ids == (SUP2, MDS1)
    then = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], MPAN, "2024-03-31")
    assert pairs(then) == {(SUP1, "SUP", "secondary"), (MDS1, "MDS", "secondary")}
    assert routed(then).secondary_ids == (SUP1, MDS1)


def test_secondary_uses_the_date_part_of_a_date_time() -> None:
    day = routing_day("2024-03-31T23:30:00+00:00", "2024-05-01")
    assert day == "2024-03-31"
    result = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], MPAN, day)
    assert pairs(result) == {(SUP1, "SUP", "secondary"), (MDS1, "MDS", "secondary")}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-31", "2024-03-31"),
        ("2024-03-31T23:30:00+00:00", "2024-03-31"),
        ("2024-06-01T00:30:00+01:00", "2024-06-01"),
        (None, "2024-05-01"),
        (20240331, "2024-05-01"),
        ("", "2024-05-01"),
        ("2024-03", "2024-05-01"),
        ("31/03/2024", "2024-05-01"),
        ({"date": "2024-03-31"}, "2024-05-01"),
    ],
)
def test_routing_day_falls_back_to_the_transaction_day(value: object, expected: str) -> None:
    assert routing_day(value, "2024-05-01") == expected


@pytest.mark.parametrize("value", ["2024-AB-CD", "abcd-ef-ghij", "2024-1--15x"])
def test_routing_day_rejects_strings_that_are_not_dates(value: str) -> None:
    assert routing_day(value, "2024-05-01") == "2024-05-01"


@pytest.mark.parametrize("mpan", [None, ""])
def test_secondary_without_an_mpan_is_msg1037(mpan: str | None) -> None:
    result = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], mpan, DAY)
    assert error(result).code is Code.SECONDARY_MISSING_MPAN
    assert error(result).code.value == "MSG1037"


def test_secondary_with_nobody_appointed_is_msg1038() -> None:
    for mpan, day in (("1111111111111", DAY), (MPAN, "2022-12-31")):
        result = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], mpan, day)
        assert error(result).code is Code.SECONDARY_UNRESOLVED
        assert error(result).code.value == "MSG1038"


def test_an_offboarded_appointee_is_skipped() -> None:
    result = route(channel(SECONDARY), directory(), history(), (SENDER, "MSS"), [], OTHER_MPAN, DAY)
    assert pairs(result) == {(MDS2, "MDS", "secondary")}
    assert routed(result).secondary_ids == (MDS2,)


def test_only_offboarded_appointees_is_msg1038() -> None:
    result = route(channel({"secondary": ["SUP"]}), directory(), history(), (SENDER, "MSS"), [], OTHER_MPAN, DAY)
    assert error(result).code is Code.SECONDARY_UNRESOLVED


def test_an_appointee_no_longer_holding_the_role_is_skipped() -> None:
    registry = Registry(
        [Appointment(MPAN, "SUP", REG1, "2024-01-01", None), Appointment(MPAN, "SUP", SUP1, "2024-01-01", None)]
    )
    result = route(channel({"secondary": ["SUP"]}), directory(), registry, (SENDER, "MSS"), [], MPAN, DAY)
    assert pairs(result) == {(SUP1, "SUP", "secondary")}


def test_overlapping_appointees_both_receive() -> None:
    registry = Registry(
        [Appointment(MPAN, "SUP", SUP1, "2024-01-01", "2024-05-31"), Appointment(MPAN, "SUP", SUP2, "2024-05-01", None)]
    )
    result = route(channel({"secondary": ["SUP"]}), directory(), registry, (SENDER, "MSS"), [], MPAN, DAY)
    assert pairs(result) == {(SUP1, "SUP", "secondary"), (SUP2, "SUP", "secondary")}
    assert routed(result).secondary_ids == (SUP1, SUP2)


def test_a_channel_without_secondary_routing_needs_no_mpan() -> None:
    result = route(channel({"always": {"roles": ["SUP"]}}), directory(), NOBODY, (SENDER, "MSS"), [], None, DAY)
    assert isinstance(result, Routed)


# ---------------------------------------------------------------------------------------------
# always


def test_always_roles_reach_every_onboarded_holder() -> None:
    result = route(channel({"always": {"roles": ["SUP"]}}), directory(), NOBODY, (SENDER, "MSS"), [], None, DAY)
    assert pairs(result) == {(SUP1, "SUP", "always"), (SUP2, "SUP", "always"), (BOTH, "SUP", "always")}
    assert sorted(routed(result).always_ids) == sorted([SUP1, SUP2, BOTH])
    assert GONE not in routed(result).always_ids


def test_always_named_participants_receive_as_a_role_the_channel_delivers_to() -> None:
    result = route(
        channel({"always": {"roles": [], "participants": [WATCHER]}, "secondary": ["MDS"]}),
        directory(),
        Registry([Appointment(MPAN, "MDS", MDS1, "2024-01-01", None)]),
        (SENDER, "MSS"),
        [],
        MPAN,
        DAY,
    )
    # WATCHER holds ADS and MDS; the channel delivers to MDS
    assert pairs(result) == {(MDS1, "MDS", "secondary"), (WATCHER, "MDS", "always")}
    assert routed(result).always_ids == (WATCHER,)
    assert routed(result).secondary_ids == (MDS1,)


def test_always_named_participant_with_no_channel_role_receives_as_its_first_role() -> None:
    result = route(
        channel({"always": {"participants": [WATCHER]}, "primary": ["REGS"]}),
        directory(),
        NOBODY,
        (SENDER, "MSS"),
        [REG1],
        None,
        DAY,
    )
    assert pairs(result) == {(REG1, "REGS", "primary"), (WATCHER, "ADS", "always")}


def test_offboarded_always_participants_are_skipped() -> None:
    result = route(
        channel({"always": {"participants": [GONE, WATCHER]}}), directory(), NOBODY, (SENDER, "MSS"), [], None, DAY
    )
    assert {(r.participant_id, r.kind) for r in routed(result).recipients} == {(WATCHER, "always")}
    assert routed(result).always_ids == (WATCHER,)


def test_always_recipients_worked_out_once_route_every_message_alike() -> None:
    """A batch works out the always recipients once (Judge); every message routes as if it had not."""
    ch = channel({"always": {"roles": ["SUP"], "participants": [GONE, WATCHER]}, "secondary": ["MDS"]})
    registry = Registry([Appointment(MPAN, "MDS", MDS1, "2024-01-01", None)])
    once = always_recipients(ch, directory())
    assert (WATCHER, "MDS") in once and all(pid != GONE for pid, _ in once)
    for sender in ((SENDER, "MSS"), (SUP1, "SUP"), (WATCHER, "MDS")):
        assert route(ch, directory(), registry, sender, [], MPAN, DAY, once) == route(
            ch, directory(), registry, sender, [], MPAN, DAY)


def test_always_role_with_nobody_holding_it_routes_to_nobody() -> None:
    result = route(channel({"always": {"roles": ["NETA"]}}), directory(), NOBODY, (SENDER, "MSS"), [], None, DAY)
    assert routed(result).recipients == ()
    assert routed(result).always_ids == ()


# ---------------------------------------------------------------------------------------------
# the kinds together

ALL = {
    "primary": ["REGS", "SUP"],
    "secondary": ["SUP", "MDS"],
    "always": {"roles": ["SUP", "MDS"], "participants": [WATCHER]},
}


def test_a_pair_found_by_several_kinds_receives_once_primary_first() -> None:
    registry = Registry(
        [Appointment(MPAN, "SUP", SUP1, "2024-01-01", None), Appointment(MPAN, "MDS", MDS1, "2024-01-01", None)]
    )
    result = route(channel(ALL), directory(), registry, (SENDER, "MSS"), [SUP1], MPAN, DAY)
    assert pairs(result) == {
        (SUP1, "SUP", "primary"),  # also secondary and always: primary wins
        (MDS1, "MDS", "secondary"),  # also always: secondary wins
        (SUP2, "SUP", "always"),
        (BOTH, "SUP", "always"),
        (MDS2, "MDS", "always"),
        (SENDER, "MDS", "always"),  # the sender, but in another role than it sent as
        (WATCHER, "MDS", "always"),
    }
    assert routed(result).secondary_ids == (SUP1, MDS1)
    assert set(routed(result).always_ids) == {SUP1, SUP2, BOTH, MDS1, MDS2, SENDER, WATCHER}
    assert len(routed(result).always_ids) == len(set(routed(result).always_ids))
    # the recipients come in the order primary, secondary, always
    kinds = [r.kind for r in routed(result).recipients]
    assert kinds == sorted(kinds, key=["primary", "secondary", "always"].index)


def test_the_sender_pair_never_receives() -> None:
    registry = Registry(
        [Appointment(MPAN, "SUP", SUP1, "2024-01-01", None), Appointment(MPAN, "MDS", SENDER, "2024-01-01", None)]
    )
    # SENDER sends as MDS: it is the MDS appointee and holds the always role MDS, yet never gets it back
    ch = channel({"secondary": ["SUP", "MDS"], "always": {"roles": ["MDS"]}})
    result = route(ch, directory(), registry, (SENDER, "MDS"), [], MPAN, DAY)
    assert (SENDER, "MDS") not in {(r.participant_id, r.role) for r in routed(result).recipients}
    assert pairs(result) == {
        (SUP1, "SUP", "secondary"),
        (MDS1, "MDS", "always"),
        (MDS2, "MDS", "always"),
        (WATCHER, "MDS", "always"),
    }


def test_the_sender_named_as_primary_in_its_own_role_is_not_sent_its_message() -> None:
    ch = channel({"primary": ["REGS", "SUP"]})
    result = route(ch, directory(), NOBODY, (BOTH, "SUP"), [BOTH], None, DAY)
    assert pairs(result) == {(BOTH, "REGS", "primary")}


@given(
    st.lists(st.sampled_from([SUP1, SUP2, REG1, BOTH, None]), max_size=4),
    st.sampled_from([(SENDER, "MSS"), (SENDER, "MDS"), (SUP1, "SUP"), (BOTH, "REGS"), (MDS1, "MDS")]),
    st.sampled_from(["2023-06-01", "2024-04-01", "2030-01-01"]),
)
def test_routing_invariants(named: list[str | None], sender: tuple[str, str], day: str) -> None:
    result = route(channel(ALL), directory(), history(), sender, named, MPAN, day)
    found = pairs(result)
    recipients = routed(result).recipients
    assert sender not in {(r.participant_id, r.role) for r in recipients}
    d = directory()
    for r in recipients:
        participant = d.active(r.participant_id)
        assert participant is not None, "only on-boarded participants receive"
        assert r.role in participant.roles
        assert isinstance(r, Recipient)
    for pid in named:
        if pid is not None:
            for role in d.participants[pid].roles & {"REGS", "SUP"}:
                if (pid, role) != sender:
                    assert (pid, role, "primary") in found
    # every holder of an always role receives it (unless found first by another kind, or the sender)
    for role in ("SUP", "MDS"):
        for p in d.holders(role):
            assert (p.id, role) == sender or (p.id, role) in {(a, b) for a, b, _ in found}


def test_a_batch_router_routes_every_message_as_route_does() -> None:
    """Router keeps results of messages routed alike; every answer is still route()'s, errors included."""
    ch = channel({"primary": ["REGS", "SUP"], "secondary": ["SUP", "MDS"],
                  "always": {"roles": ["ADS"], "participants": [WATCHER]}})
    registry, router = history(), Router(ch, directory(), max_kept=3)
    cases = [
        ((SENDER, "MSS"), (), mpan, day, )
        for mpan in (MPAN, OTHER_MPAN, "1111111111111", None)
        for day in ("2024-03-31", "2024-04-01", "2022-01-01")
    ] + [((SENDER, "MSS"), (REG1,), MPAN, DAY), ((SENDER, "MSS"), (GONE,), MPAN, DAY),
         ((SUP2, "SUP"), (), MPAN, DAY), ((SENDER, "MSS"), (None, BOTH), None, DAY)]
    for _ in range(2):  # the second time round, from what the router kept (and dropped at max_kept)
        for sender, primary, mpan, day in cases:
            assert router.route(registry, sender, primary, mpan, day) == route(
                ch, directory(), registry, sender, primary, mpan, day), (sender, primary, mpan, day)
    errors = [router.route(registry, s, p, m, d) for s, p, m, d in cases]
    assert {e.code for e in errors if isinstance(e, RoutingError)} >= {
        Code.SECONDARY_UNRESOLVED, Code.SECONDARY_MISSING_MPAN, Code.PRIMARY_PARTICIPANT_INVALID}
