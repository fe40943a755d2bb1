"""Registry maintenance from registration flows (dip.accept.registry_updates) and the registry cache
the hot path reads (dip.accept.registry.RegistryCache), FS 5.5.14.

``extract`` reads the appointments a message states, ``apply`` turns them into the rows to write
against the MPAN's history; both are pure. The cache is driven by a small in-memory source that
keeps a change log like the stores do (a version per write, the MPANs written after a version).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from dip.accept.registry import Appointment, Registry, RegistryCache
from dip.accept.registry_updates import Change, apply, day_of, extract, field_at
from dip.catalogue import RegistryUpdate
from dip.store.base import AppointmentRow

MPAN = "1234567890123"
OTHER_MPAN = "9876543210987"
SUP_A, SUP_B, SUP_C = "1000000001", "1000000002", "1000000003"
LDSO = "1500000001"

GAIN = RegistryUpdate(role="SUP", participant="/CustomBlock/B001/gainingSupplierDIPID",
                      effectiveFrom="/CustomBlock/B001/supplyStartDate", eventCodes=["[ChangeOfSupplier]"])
LOSS = RegistryUpdate(role="SUP", participant="/CustomBlock/B002/losingSupplierDIPID",
                      effectiveTo="/CustomBlock/B002/supplyEndDate")


def payload(**blocks: Any) -> dict[str, Any]:
    return {"CommonBlock": {"S0": {"eventCode": "[ChangeOfSupplier]"}}, "CustomBlock": blocks}


def gain(participant: str, start: str | None) -> dict[str, str | None]:
    return {"gainingSupplierDIPID": participant, "supplyStartDate": start}


def loss(participant: str, end: str) -> dict[str, str]:
    return {"losingSupplierDIPID": participant, "supplyEndDate": end}


# ---------------------------------------------------------------------------------------------
# extract


def test_extract_reads_an_appointment_and_a_de_appointment() -> None:
    message = payload(B001=gain(SUP_B, "2026-03-01"), B002=loss(SUP_A, "2026-02-28"))
    assert extract([GAIN, LOSS], "[ChangeOfSupplier]", message) == (
        Change("SUP", SUP_B, "2026-03-01", True),
        Change("SUP", SUP_A, "2026-02-28", False),
    )


def test_extract_applies_a_rule_only_to_its_event_codes() -> None:
    message = payload(B001=gain(SUP_B, "2026-03-01"), B002=loss(SUP_A, "2026-02-28"))
    # GAIN is limited to [ChangeOfSupplier]; LOSS (no eventCodes) applies to every event code
    assert extract([GAIN, LOSS], "[InitialRegistration]", message) == (Change("SUP", SUP_A, "2026-02-28", False),)
    assert extract([GAIN], "[InitialRegistration]", message) == ()


def test_an_absent_optional_block_gives_nothing() -> None:
    assert extract([GAIN, LOSS], "[ChangeOfSupplier]", payload()) == ()
    assert extract([GAIN, LOSS], "[ChangeOfSupplier]", payload(B001=None)) == ()
    assert extract([GAIN, LOSS], "[ChangeOfSupplier]", payload(B002=loss(SUP_A, "2026-02-28"))) == (
        Change("SUP", SUP_A, "2026-02-28", False),
    )
    assert extract([GAIN], "[ChangeOfSupplier]", {"CustomBlock": "not an object"}) == ()


def test_date_times_are_reduced_to_their_date() -> None:
    message = payload(B001=gain(SUP_B, "2026-03-01T00:00:00+00:00"))
    assert extract([GAIN], "[ChangeOfSupplier]", message) == (Change("SUP", SUP_B, "2026-03-01", True),)
    assert day_of("2026-03-01T23:30:00+00:00") == "2026-03-01"
    assert day_of("2026-03-01") == "2026-03-01"


@pytest.mark.parametrize("block", [
    gain("SUP", "2026-03-01"),  # not a 10-character DIP ID
    gain(SUP_B, "not a date"),
    gain(SUP_B, "2026-02-30"),
    gain(SUP_B, None),
    {"gainingSupplierDIPID": 1000000002, "supplyStartDate": "2026-03-01"},
    {"gainingSupplierDIPID": SUP_B},
])
def test_a_message_changes_only_what_it_clearly_states(block: dict[str, Any]) -> None:
    assert extract([GAIN], "[ChangeOfSupplier]", payload(B001=block)) == ()


def test_pointers_reach_into_arrays() -> None:
    """RFC 6901 pointers (the catalogue's format) address array items by index: the shipped
    IF-021 routing.secondaryDate is /CustomBlock/B900/settlementDayConsumptionPeriods/0/...,
    and registration blocks are often lists."""
    consumption = {"CustomBlock": {"B900": {"settlementDayConsumptionPeriods": [
        {"settlementDay": {"settlementDayDate": "2026-11-22T00:00:00+00:00"}}]}}}
    pointer = "/CustomBlock/B900/settlementDayConsumptionPeriods/0/settlementDay/settlementDayDate"
    assert field_at(consumption, pointer) == "2026-11-22T00:00:00+00:00"
    assert field_at(consumption, pointer.replace("/0/", "/1/")) is None
    rule = RegistryUpdate(role="SUP", participant="/CustomBlock/B001List/0/supplierDIPID",
                          effectiveFrom="/CustomBlock/B001List/0/effectiveFromDate")
    message = payload(B001List=[{"supplierDIPID": SUP_B, "effectiveFromDate": "2026-03-01T00:00:00+00:00"}])
    assert extract([rule], "[ChangeOfSupplier]", message) == (Change("SUP", SUP_B, "2026-03-01", True),)


# ---------------------------------------------------------------------------------------------
# apply


def appoint(participant: str, day: str, role: str = "SUP") -> Change:
    return Change(role, participant, day, True)


def de_appoint(participant: str, day: str, role: str = "SUP") -> Change:
    return Change(role, participant, day, False)


def row(participant: str, start: str, end: str | None, role: str = "SUP", mpan: str = MPAN) -> AppointmentRow:
    return AppointmentRow(mpan, role, start, participant, end)


def appointment(participant: str, start: str, end: str | None, role: str = "SUP", mpan: str = MPAN) -> Appointment:
    return Appointment(mpan, role, participant, start, end)


def after(existing: Iterable[Appointment], rows: Iterable[AppointmentRow]) -> Registry:
    """The registry once ``rows`` are upserted by (MPAN, role, effective-from), as the stores do."""
    merged = {(a.mpan, a.role, a.effective_from): a for a in existing}
    for r in rows:
        merged[(r.mpan, r.role, r.effective_from)] = Appointment(r.mpan, r.role, r.participant_id, r.effective_from,
                                                                 r.effective_to)
    return Registry(merged.values())


def test_an_appointment_closes_the_open_one_on_the_day_before() -> None:
    existing = [appointment(SUP_A, "2020-01-01", None)]
    rows = apply(MPAN, existing, [appoint(SUP_B, "2026-03-01")])
    assert sorted(rows) == [row(SUP_A, "2020-01-01", "2026-02-28"), row(SUP_B, "2026-03-01", None)]
    registry = after(existing, rows)
    assert registry.lookup(MPAN, "SUP", "2026-02-28") == [SUP_A]
    assert registry.lookup(MPAN, "SUP", "2026-03-01") == [SUP_B]
    assert registry.lookup(MPAN, "SUP", "2099-01-01") == [SUP_B]


def test_the_day_before_crosses_month_and_leap_day_boundaries() -> None:
    existing = [appointment(SUP_A, "2020-01-01", None)]
    assert row(SUP_A, "2020-01-01", "2024-02-29") in apply(MPAN, existing, [appoint(SUP_B, "2024-03-01")])
    assert row(SUP_A, "2020-01-01", "2025-12-31") in apply(MPAN, existing, [appoint(SUP_B, "2026-01-01")])


def test_a_first_appointment_is_open_ended() -> None:
    assert apply(MPAN, [], [appoint(SUP_A, "2026-03-01")]) == [row(SUP_A, "2026-03-01", None)]


def test_an_appointment_on_the_same_day_replaces_the_one_starting_then() -> None:
    existing = [appointment(SUP_A, "2020-01-01", "2026-02-28"), appointment(SUP_B, "2026-03-01", None)]
    rows = apply(MPAN, existing, [appoint(SUP_C, "2026-03-01")])
    assert rows == [row(SUP_C, "2026-03-01", None)], "the same key: the stores replace SUP_B's row"
    registry = after(existing, rows)
    assert registry.lookup(MPAN, "SUP", "2026-03-01") == [SUP_C]
    assert registry.lookup(MPAN, "SUP", "2026-02-28") == [SUP_A]
    assert len(registry) == 2


def test_a_replacement_keeps_the_end_of_the_appointment_it_replaces() -> None:
    existing = [appointment(SUP_B, "2026-03-01", "2026-06-30")]
    assert apply(MPAN, existing, [appoint(SUP_C, "2026-03-01")]) == [row(SUP_C, "2026-03-01", "2026-06-30")]


def test_an_appointment_is_bounded_by_a_later_future_appointment() -> None:
    existing = [appointment(SUP_A, "2020-01-01", "2026-12-31"), appointment(SUP_C, "2027-01-01", None)]
    rows = apply(MPAN, existing, [appoint(SUP_B, "2026-06-01")])
    assert sorted(rows) == [row(SUP_A, "2020-01-01", "2026-05-31"), row(SUP_B, "2026-06-01", "2026-12-31")]
    registry = after(existing, rows)
    assert registry.lookup(MPAN, "SUP", "2026-12-31") == [SUP_B]
    assert registry.lookup(MPAN, "SUP", "2027-01-01") == [SUP_C], "the later appointment is untouched"


def test_an_appointment_before_every_known_one_ends_where_the_first_begins() -> None:
    existing = [appointment(SUP_A, "2026-01-01", None)]
    assert apply(MPAN, existing, [appoint(SUP_B, "2025-06-01")]) == [row(SUP_B, "2025-06-01", "2025-12-31")]


def test_a_de_appointment_sets_the_inclusive_end() -> None:
    existing = [appointment(SUP_A, "2020-01-01", None)]
    rows = apply(MPAN, existing, [de_appoint(SUP_A, "2026-03-01")])
    assert rows == [row(SUP_A, "2020-01-01", "2026-03-01")]
    registry = after(existing, rows)
    assert registry.lookup(MPAN, "SUP", "2026-03-01") == [SUP_A], "data for the day of the change still reaches it"
    assert registry.lookup(MPAN, "SUP", "2026-03-02") == []


def test_a_de_appointment_can_shorten_a_closed_appointment() -> None:
    existing = [appointment(SUP_A, "2020-01-01", "2026-12-31")]
    assert apply(MPAN, existing, [de_appoint(SUP_A, "2026-03-01")]) == [row(SUP_A, "2020-01-01", "2026-03-01")]


@pytest.mark.parametrize("change", [
    de_appoint(SUP_B, "2026-03-01"),  # someone else holds the role
    de_appoint(SUP_A, "2019-06-01"),  # before the appointment
    de_appoint(SUP_A, "2026-03-01", role="LDSO"),  # another role
    de_appoint(SUP_A, "2025-12-31"),  # already ends that day
])
def test_a_de_appointment_of_nothing_held_changes_nothing(change: Change) -> None:
    existing = [appointment(SUP_A, "2020-01-01", "2025-12-31"), appointment(SUP_C, "2026-01-01", None)]
    assert apply(MPAN, existing, [change]) == []


def test_history_is_kept() -> None:
    existing = [
        appointment(SUP_A, "2018-01-01", "2019-12-31"),
        appointment(SUP_B, "2020-01-01", None),
        appointment(LDSO, "2018-01-01", None, role="LDSO"),
    ]
    rows = apply(MPAN, existing, [appoint(SUP_C, "2026-03-01"), de_appoint(SUP_C, "2026-09-30")])
    # nothing is deleted: rows only close or add appointments; past ones and other roles are not rewritten
    assert sorted(rows) == [row(SUP_B, "2020-01-01", "2026-02-28"), row(SUP_C, "2026-03-01", "2026-09-30")]
    registry = after(existing, rows)
    assert registry.lookup(MPAN, "SUP", "2019-06-01") == [SUP_A]
    assert registry.lookup(MPAN, "SUP", "2024-06-01") == [SUP_B]
    assert registry.lookup(MPAN, "SUP", "2026-06-01") == [SUP_C]
    assert registry.lookup(MPAN, "SUP", "2026-10-01") == []
    assert registry.lookup(MPAN, "LDSO", "2026-10-01") == [LDSO]
    assert len(registry) == 4


def test_changes_apply_in_order_each_seeing_the_previous() -> None:
    existing = [appointment(SUP_A, "2020-01-01", None)]
    rows = apply(MPAN, existing, [appoint(SUP_B, "2026-03-01"), appoint(SUP_C, "2026-05-01")])
    assert sorted(rows) == [
        row(SUP_A, "2020-01-01", "2026-02-28"),
        row(SUP_B, "2026-03-01", "2026-04-30"),
        row(SUP_C, "2026-05-01", None),
    ]


def test_appointments_of_other_mpans_are_ignored() -> None:
    existing = [appointment(SUP_A, "2020-01-01", None, mpan=OTHER_MPAN)]
    assert apply(MPAN, existing, [appoint(SUP_B, "2026-03-01")]) == [row(SUP_B, "2026-03-01", None)]


# ---------------------------------------------------------------------------------------------
# RegistryCache


class FakeSource:
    """The two store calls the cache makes, over an in-memory table with a change log."""

    def __init__(self, rows: Iterable[AppointmentRow] = ()) -> None:
        self.rows: dict[tuple[str, str, str], tuple[AppointmentRow, int]] = {}
        self.version = 0
        self.fetched: list[list[str]] = []  # the MPANs of every appointments() call
        self.put(list(rows))

    def put(self, rows: list[AppointmentRow]) -> None:
        self.version += 1
        for r in rows:
            self.rows[(r.mpan, r.role, r.effective_from)] = (r, self.version)

    async def registry_changes(self, since: int, limit: int) -> tuple[int, list[str] | None]:
        if since < 0 or since == self.version:
            return self.version, None if since < 0 else []
        changed = sorted({r.mpan for r, seq in self.rows.values() if seq > since})
        return self.version, None if len(changed) > limit else changed

    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]:
        self.fetched.append(list(mpans))
        return [r for r, _ in self.rows.values() if r.mpan in mpans]


def mpans(n: int) -> list[str]:
    return [f"{1000000000000 + i}" for i in range(n)]


def sup(mpan: str, participant: str = SUP_A, start: str = "2020-01-01", end: str | None = None) -> AppointmentRow:
    return AppointmentRow(mpan, "SUP", start, participant, end)


async def test_view_fetches_only_the_mpans_it_does_not_hold() -> None:
    a, b, c = mpans(3)
    source = FakeSource([sup(a), sup(b, SUP_B), sup(c, SUP_C)])
    cache = RegistryCache(source)
    await cache.refresh()
    first = await cache.view([a, b, None, ""])
    assert source.fetched == [[a, b]]
    assert first.lookup(a, "SUP", "2026-01-01") == [SUP_A] and first.lookup(b, "SUP", "2026-01-01") == [SUP_B]
    second = await cache.view([a, c, c])
    assert source.fetched == [[a, b], [c]], "one query, for the missing MPAN only"
    assert second.lookup(a, "SUP", "2026-01-01") == [SUP_A] and second.lookup(c, "SUP", "2026-01-01") == [SUP_C]
    await cache.view([b, None])
    assert len(source.fetched) == 2, "everything held: no query"
    assert len(cache) == 3


async def test_an_mpan_without_appointments_is_remembered_as_empty() -> None:
    (a,) = mpans(1)
    source = FakeSource()
    cache = RegistryCache(source)
    await cache.refresh()
    assert (await cache.view([a])).appointments(a) == ()
    assert (await cache.view([a])).lookup(a, "SUP", "2026-01-01") == []
    assert source.fetched == [[a]]


async def test_a_view_looks_up_by_role_and_day() -> None:
    (a,) = mpans(1)
    source = FakeSource([sup(a, SUP_A, "2020-01-01", "2026-02-28"), sup(a, SUP_B, "2026-03-01"),
                         AppointmentRow(a, "LDSO", "2020-01-01", LDSO, None)])
    cache = RegistryCache(source)
    await cache.refresh()
    view = await cache.view([a])
    assert view.lookup(a, "SUP", "2026-02-28") == [SUP_A]
    assert view.lookup(a, "SUP", "2026-03-01") == [SUP_B]
    assert view.lookup(a, "LDSO", "2026-03-01") == [LDSO]
    assert view.lookup(a, "MDS", "2026-03-01") == []
    assert view.lookup(a, "SUP", "2019-12-31") == []
    assert len(view.appointments(a)) == 3


async def test_refresh_forgets_the_mpans_that_changed() -> None:
    a, b = mpans(2)
    source = FakeSource([sup(a), sup(b)])
    cache = RegistryCache(source)
    await cache.refresh()
    await cache.view([a, b])
    source.put([sup(a, SUP_A, "2020-01-01", "2026-02-28"), sup(a, SUP_B, "2026-03-01")])
    await cache.refresh()
    assert cache.version == source.version
    view = await cache.view([a, b])
    assert source.fetched[-1] == [a], "only the changed MPAN is fetched again"
    assert view.lookup(a, "SUP", "2026-03-01") == [SUP_B]
    assert view.lookup(b, "SUP", "2026-03-01") == [SUP_A]


async def test_refresh_without_changes_keeps_everything() -> None:
    a, b = mpans(2)
    source = FakeSource([sup(a), sup(b)])
    cache = RegistryCache(source)
    await cache.refresh()
    await cache.view([a, b])
    version = cache.version
    await cache.refresh()
    await cache.view([a, b])
    assert cache.version == version and source.fetched == [[a, b]]


async def test_refresh_clears_everything_when_too_many_mpans_changed() -> None:
    a, b, c = mpans(3)
    source = FakeSource([sup(a), sup(b), sup(c)])
    cache = RegistryCache(source, max_changes=1)
    await cache.refresh()
    await cache.view([a, b, c])
    source.put([sup(a, SUP_B), sup(b, SUP_B)])  # two MPANs: more than max_changes
    await cache.refresh()
    assert len(cache) == 0
    view = await cache.view([a, b, c])
    assert source.fetched[-1] == [a, b, c]
    assert view.lookup(a, "SUP", "2026-01-01") == [SUP_B]
    assert view.lookup(c, "SUP", "2026-01-01") == [SUP_A]


async def test_the_first_refresh_starts_from_nothing() -> None:
    (a,) = mpans(1)
    source = FakeSource([sup(a)])
    cache = RegistryCache(source)
    await cache.view([a])  # filled before the cache knew any version
    await cache.refresh()
    assert len(cache) == 0 and cache.version == source.version


async def test_the_cache_holds_at_most_capacity_mpans_dropping_the_oldest() -> None:
    a, b, c, d = mpans(4)
    source = FakeSource([sup(m) for m in (a, b, c, d)])
    cache = RegistryCache(source, capacity=2)
    await cache.refresh()
    await cache.view([a])
    await cache.view([b])
    view = await cache.view([c])
    assert len(cache) == 2
    assert view.lookup(c, "SUP", "2026-01-01") == [SUP_A]
    await cache.view([b, c])
    assert source.fetched == [[a], [b], [c]], "b and c are still held"
    await cache.view([a])
    assert source.fetched[-1] == [a], "a, the oldest, was dropped"
    await cache.view([c, d])
    assert len(cache) == 2


async def test_a_view_stays_valid_after_its_mpans_leave_the_cache() -> None:
    a, b, c = mpans(3)
    source = FakeSource([sup(m) for m in (a, b, c)])
    cache = RegistryCache(source, capacity=1)
    await cache.refresh()
    view = await cache.view([a])
    await cache.view([b])
    await cache.view([c])
    source.put([sup(a, SUP_B)])
    await cache.refresh()
    assert view.lookup(a, "SUP", "2026-01-01") == [SUP_A], "a snapshot does not change under its reader"


async def test_a_view_of_more_mpans_than_the_capacity_is_answered_but_not_all_kept() -> None:
    a, b, c = mpans(3)
    source = FakeSource([sup(m) for m in (a, b, c)])
    cache = RegistryCache(source, capacity=2)
    await cache.refresh()
    view = await cache.view([a, b, c])
    assert [view.lookup(m, "SUP", "2026-01-01") for m in (a, b, c)] == [[SUP_A]] * 3
    assert len(cache) <= 2


async def test_cached_appointments_are_left_out_of_the_cyclic_collectors_walks() -> None:
    # half a million cached MPANs as named tuples made every full collection walk them (a pause
    # of seconds); plain tuples of strings are untracked, and a view still gives Appointments
    import gc

    a, b = mpans(2)
    cache = RegistryCache(FakeSource([sup(a), sup(a, SUP_B, "2024-01-01"), sup(b, SUP_C)]))
    await cache.refresh()
    await cache.view([a, b])
    gc.collect()
    gc.collect()  # inner tuples are untracked in one pass, the tuple holding them in the next
    assert not any(gc.is_tracked(entry) for entry in cache._by_mpan.values())
    again = await cache.view([a])
    assert sorted(again.appointments(a)) == [Appointment(a, "SUP", SUP_A, "2020-01-01"),
                                            Appointment(a, "SUP", SUP_B, "2024-01-01")]
    assert again.lookup(a, "SUP", "2025-01-01") == [SUP_A, SUP_B]
