"""Identifier formats the DIP makes and checks (API-CONTRACT.md section 1, dip.ids).

Participants store and index transaction and correlation IDs, and every sender builds sender
unique references (SURs) to the official pattern, so these formats are pinned here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dip import ids

OFFICIAL_SUR = r"^S-((IF|REP)-)?\d{3,4}-[0-9a-fA-F]{10}-[A-Z]{3,5}-\d{8}-[a-zA-Z0-9]+$"
TRANSACTION_ID = re.compile(r"T-(IF|REP)-\d{3}[A-Z]?-[0-9A-Za-z]{10}-[A-Z]{3,5}-(\d{8})-([0-9a-f]+)")
CORRELATION_ID = re.compile(r"CI-(\d{8})-([0-9a-f]+)")

MOMENT = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
SENDER = "0123456789"
VALID_SUR = "S-IF-005-0123456789-SUP-20261123-ref001"

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


# --- transaction and correlation IDs ----------------------------------------------------------------


def test_transaction_id_has_the_pinned_format() -> None:
    tid = ids.transaction_id("IF-005", SENDER, "SUP", MOMENT)

    match = TRANSACTION_ID.fullmatch(tid)
    assert match is not None, tid
    assert tid.startswith(f"T-IF-005-{SENDER}-SUP-20261123-")
    assert len(tid) <= 65


def test_longest_transaction_id_rep_002a_with_five_letter_role_fits_in_65_chars() -> None:
    tid = ids.transaction_id("REP-002A", "ABCDEFGHIJ", "UMSDS", MOMENT)

    assert TRANSACTION_ID.fullmatch(tid) is not None, tid
    assert tid.startswith("T-REP-002A-ABCDEFGHIJ-UMSDS-20261123-")
    assert len(tid) <= ids.TRANSACTION_ID_MAX_LENGTH == 65


def test_transaction_id_date_is_the_utc_date_of_the_moment() -> None:
    # 23:30 in New York on 23 November is 04:30 UTC on 24 November.
    moment = datetime(2026, 11, 23, 23, 30, tzinfo=timezone(timedelta(hours=-5)))

    assert "-20261124-" in ids.transaction_id("IF-005", SENDER, "SUP", moment)
    assert ids.correlation_id(moment).startswith("CI-20261124-")


def test_correlation_id_has_the_pinned_format() -> None:
    cid = ids.correlation_id(MOMENT)

    assert CORRELATION_ID.fullmatch(cid) is not None, cid
    assert cid.startswith("CI-20261123-")
    assert len(cid) <= ids.CORRELATION_ID_MAX_LENGTH == 60
    assert ids.is_correlation_id(cid)


@pytest.mark.parametrize(
    "value",
    ["", "CI-2026112-abc", "CI-20261123-", "CI-20261123-xyz", "ci-20261123-abc", "T-20261123-abc",
     "CI-20261123-abc\n", "CI-20261123-" + "a" * 49],  # the last: 61 characters
)
def test_is_correlation_id_rejects_malformed_values(value: str) -> None:
    assert not ids.is_correlation_id(value)


def test_is_correlation_id_accepts_the_official_example_and_exactly_60_chars() -> None:
    assert ids.is_correlation_id("CI-20220401-1234567890123abce123092")
    assert ids.is_correlation_id("CI-20261123-" + "a" * 48)


def test_sequences_are_unique_within_a_call_and_across_calls() -> None:
    first = ids.sequences(MOMENT, 10_000)
    second = ids.sequences(MOMENT, 10_000)

    assert len(set(first) | set(second)) == 20_000
    assert all(re.fullmatch(r"[0-9a-f]{24}", s) for s in first + second)


def test_ids_from_separate_calls_at_the_same_moment_are_distinct() -> None:
    tids = {ids.transaction_id("IF-005", SENDER, "SUP", MOMENT) for _ in range(1000)}
    cids = {ids.correlation_id(MOMENT) for _ in range(1000)}

    assert len(tids) == 1000
    assert len(cids) == 1000


def test_ids_made_in_the_same_millisecond_sort_in_order_of_creation() -> None:
    made = [ids.transaction_id("IF-005", SENDER, "SUP", MOMENT) for _ in range(100)]

    assert made == sorted(made)


@given(moments, st.integers(min_value=1, max_value=10**12))
def test_transaction_ids_sort_by_time(earlier: datetime, gap_ms: int) -> None:
    later = earlier + timedelta(milliseconds=gap_ms)

    second = ids.transaction_id("IF-005", SENDER, "SUP", later)  # made first, but later in time
    first = ids.transaction_id("IF-005", SENDER, "SUP", earlier)

    assert first < second
    assert ids.correlation_id(earlier) < ids.correlation_id(later)


def test_publication_id_of_an_interface_and_of_a_report() -> None:
    assert ids.publication_id("IF-005") == "PUB-005"
    assert ids.publication_id("IF-021") == "PUB-021"
    assert ids.publication_id("REP-002A") == "REP-002A"


@pytest.mark.parametrize(
    ("value", "ok"),
    [("IF-005", True), ("REP-002A", True), ("REP-002", True), ("IF-05", False), ("IF-0055", False),
     ("if-005", False), ("PUB-005", False), ("IF-005a", False), ("IF-005\n", False)],
)
def test_is_interface_id(value: str, ok: bool) -> None:
    assert ids.is_interface_id(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("SUP", True), ("UMSDS", True), ("SU", False), ("SUPPLY", False), ("sup", False), ("SUP\n", False)],
)
def test_is_role(value: str, ok: bool) -> None:
    assert ids.is_role(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0123456789", True), ("abcDEF1234", True), ("012345678", False), ("01234567890", False),
     ("012345678-", False), ("0123456789\n", False)],
)
def test_is_participant_id(value: str, ok: bool) -> None:
    assert ids.is_participant_id(value) is ok


# --- sender unique references -------------------------------------------------------------------------


def test_official_example_sur_parses_into_its_parts() -> None:
    parsed = ids.parse_sender_reference("S-IF-001-0123456789-SUP-20222313-12345687a1234567a")

    assert parsed == ids.SenderReference("IF", "001", "0123456789", "SUP", "20222313", "12345687a1234567a")


def test_sur_without_prefix_and_with_rep_prefix_parse() -> None:
    assert ids.parse_sender_reference("S-005-0123456789-SUP-20261123-x") == ids.SenderReference(
        None, "005", "0123456789", "SUP", "20261123", "x"
    )
    assert ids.parse_sender_reference("S-REP-0002-abcdefABCD-UMSDS-20261123-1") == ids.SenderReference(
        "REP", "0002", "abcdefABCD", "UMSDS", "20261123", "1"
    )


def test_module_pattern_is_the_official_one() -> None:
    assert ids.SUR_PATTERN == OFFICIAL_SUR


@pytest.mark.parametrize(
    "value",
    [
        "",
        "IF-005-0123456789-SUP-20261123-ref",  # no S-
        "s-IF-005-0123456789-SUP-20261123-ref",  # lower-case s
        "S-XX-005-0123456789-SUP-20261123-ref",  # unknown prefix
        "S-IF-05-0123456789-SUP-20261123-ref",  # 2-digit interface number
        "S-IF-00005-0123456789-SUP-20261123-ref",  # 5-digit interface number
        "S-IF-005-012345678-SUP-20261123-ref",  # 9-character participant
        "S-IF-005-ABCDEFGHIJ-SUP-20261123-ref",  # participant part is not hex
        "S-IF-005-0123456789-sup-20261123-ref",  # lower-case role
        "S-IF-005-0123456789-SU-20261123-ref",  # 2-letter role
        "S-IF-005-0123456789-SUPPLY-20261123-ref",  # 6-letter role
        "S-IF-005-0123456789-SUP-2026112-ref",  # 7-digit date
        "S-IF-005-0123456789-SUP-20261123-",  # empty reference
        "S-IF-005-0123456789-SUP-20261123-ref_1",  # underscore in reference
        "S-IF-005-0123456789-SUP-20261123-ref-1",  # hyphen in reference
        " S-IF-005-0123456789-SUP-20261123-ref",  # leading space
    ],
)
def test_malformed_surs_are_rejected(value: str) -> None:
    assert re.search(OFFICIAL_SUR, value) is None  # the official pattern rejects it too
    assert ids.parse_sender_reference(value) is None
    assert ids.sender_reference_problem(value, "IF-005", SENDER, "SUP") is not None


@pytest.mark.parametrize("value", [VALID_SUR + "\n", "\n" + VALID_SUR, VALID_SUR + "\n\n"])
def test_sur_with_a_newline_is_rejected(value: str) -> None:
    # JSON Schema (ECMA-262) "$" is the very end; Python's also matches before a final newline.
    assert ids.parse_sender_reference(value) is None
    assert ids.sender_reference_problem(value, "IF-005", SENDER, "SUP") is not None


def test_sur_of_200_characters_parses_and_201_does_not() -> None:
    head = "S-IF-005-0123456789-SUP-20261123-"
    at_limit = head + "a" * (200 - len(head))
    over = at_limit + "a"

    assert len(at_limit) == 200
    assert ids.parse_sender_reference(at_limit) is not None
    assert ids.parse_sender_reference(over) is None
    problem = ids.sender_reference_problem(over, "IF-005", SENDER, "SUP")
    assert problem is not None
    assert "200" in problem


HEX = "0123456789abcdefABCDEF"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

prefixes = st.sampled_from([None, "IF", "REP"])
numbers = st.text("0123456789", min_size=3, max_size=4)
participants = st.text(HEX, min_size=10, max_size=10)
roles = st.text(UPPER, min_size=3, max_size=5)
dates = st.text("0123456789", min_size=8, max_size=8)
references = st.text(ALNUM, min_size=1, max_size=40)


def _sur(prefix: str | None, number: str, participant: str, role: str, date: str, ref: str) -> str:
    return "S-" + (f"{prefix}-" if prefix else "") + f"{number}-{participant}-{role}-{date}-{ref}"


@given(prefixes, numbers, participants, roles, dates, references)
def test_every_sur_built_from_valid_parts_parses_back_into_them(
    prefix: str | None, number: str, participant: str, role: str, date: str, ref: str
) -> None:
    value = _sur(prefix, number, participant, role, date, ref)

    assert re.search(OFFICIAL_SUR, value) is not None
    assert ids.parse_sender_reference(value) == ids.SenderReference(prefix, number, participant, role, date, ref)


@st.composite
def sur_cases(draw: st.DrawFn) -> tuple[str, str, str, str, bool]:
    """(sur, channel, sender, role, parts agree): parts copied from the message or drawn at random."""
    kind = draw(st.sampled_from(["IF", "REP"]))
    channel_number = draw(st.text("0123456789", min_size=3, max_size=3))
    suffix = draw(st.sampled_from(["", "", "A", "B"])) if kind == "REP" else ""
    channel = f"{kind}-{channel_number}{suffix}"
    sender = draw(participants)
    role = draw(roles)

    prefix = draw(st.sampled_from([None, kind, draw(prefixes)]))
    number = channel_number if draw(st.booleans()) else draw(numbers)
    sur_participant = sender if draw(st.booleans()) else draw(participants)
    sur_role = role if draw(st.booleans()) else draw(roles)
    sur = _sur(prefix, number, sur_participant, sur_role, draw(dates), draw(references))

    agree = (
        prefix in (None, kind) and number == channel_number and sur_participant == sender and sur_role == role
    )
    return sur, channel, sender, role, agree


@given(sur_cases())
def test_sur_is_acceptable_exactly_when_its_parts_agree_with_the_message(
    case: tuple[str, str, str, str, bool],
) -> None:
    sur, channel, sender, role, agree = case

    problem = ids.sender_reference_problem(sur, channel, sender, role)

    assert (problem is None) == agree, (sur, channel, sender, role, problem)


def test_sur_problem_names_the_part_that_disagrees() -> None:
    problem = ids.sender_reference_problem

    assert "interface" in (problem("S-IF-006-0123456789-SUP-20261123-r", "IF-005", SENDER, "SUP") or "")
    assert "interface" in (problem("S-REP-005-0123456789-SUP-20261123-r", "IF-005", SENDER, "SUP") or "")
    assert "participant" in (problem("S-IF-005-0123456788-SUP-20261123-r", "IF-005", SENDER, "SUP") or "")
    assert "role" in (problem("S-IF-005-0123456789-MSS-20261123-r", "IF-005", SENDER, "SUP") or "")


def test_sur_for_a_lettered_report_uses_its_digits() -> None:
    assert ids.sender_reference_problem("S-REP-002-0123456789-SUP-20261123-r", "REP-002A", SENDER, "SUP") is None
    assert ids.sender_reference_problem("S-002-0123456789-SUP-20261123-r", "REP-002A", SENDER, "SUP") is None


def test_sur_date_and_reference_are_not_checked() -> None:
    # E2E 4.2.3.1: only the interface, participant and role parts are checked.
    assert ids.sender_reference_problem("S-IF-005-0123456789-SUP-99999999-r", "IF-005", SENDER, "SUP") is None


def test_make_sender_reference_builds_an_acceptable_sur() -> None:
    sur = ids.make_sender_reference("IF-005", SENDER, "SUP", MOMENT, "abc123")

    assert sur == "S-IF-005-0123456789-SUP-20261123-abc123"
    assert ids.sender_reference_problem(sur, "IF-005", SENDER, "SUP") is None


# --- timestamps ---------------------------------------------------------------------------------------


def test_timestamp_is_25_characters_in_utc() -> None:
    moment = datetime(2026, 11, 23, 11, 15, 0, 999_999, tzinfo=timezone(timedelta(hours=1)))

    assert ids.timestamp(moment) == "2026-11-23T10:15:00+00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T10:15:00+00:00", datetime(2026, 11, 23, 10, 15, tzinfo=UTC)),
        ("2026-11-23T10:15:00-05:00", datetime(2026, 11, 23, 15, 15, tzinfo=UTC)),
        ("2026-11-23T10:15:00+01:00", datetime(2026, 11, 23, 9, 15, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts_25_character_timestamps_with_an_offset(value: str, expected: datetime) -> None:
    parsed = ids.parse_timestamp(value)

    assert parsed is not None
    assert parsed.tzinfo is not None
    assert parsed == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2026-11-23T10:15:00Z",  # 20 characters
        "2026-11-23T10:15:00",  # no offset
        "2026-11-23 10:15:00+00:00",  # space instead of T
        "2026-11-23T10:15:00.000+00:00",  # fractional seconds
        "2026-13-23T10:15:00+00:00",  # month 13
        "2026-11-31T10:15:00+00:00",  # 31 November
        "2026-11-23T25:15:00+00:00",  # hour 25
        "not a timestamp, 25 chars",
        "2026-11-23T10:15:00+0000Z",
    ],
)
def test_parse_timestamp_rejects_other_forms(value: str) -> None:
    assert ids.parse_timestamp(value) is None


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_timestamp_round_trips_through_parse_timestamp(moment: datetime) -> None:
    text = ids.timestamp(moment)

    assert len(text) == 25
    assert ids.parse_timestamp(text) == moment.replace(microsecond=0)
