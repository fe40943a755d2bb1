"""The Store contract, written once and run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from dip.config import Settings
from dip.store import MessageRow, ParticipantRow, Store, open_store

NOW = 1_790_000_000_000_000


def row(n: int, sender: str = "1300000001", sur: str | None = None) -> MessageRow:
    return MessageRow(
        transaction_id=f"T-IF-021-{sender}-SDS-20261123-{n:024x}",
        interface_id="IF-021",
        event_code="[ActivePower]",
        schema_version="011",
        sender_id=sender,
        sender_role="SDS",
        dcp_id=None,
        sur=sur or f"S-IF-021-{sender}-SDS-20261123-{n:x}",
        correlation_id=None,
        mpan="1200000000009",
        received_at=NOW + n,
        payload=b'{"n": %d}' % n,
    )


async def test_participants_keys_certificates_and_providers(store: Store) -> None:
    v0 = await store.state_version()
    assert await store.put_participant(ParticipantRow("1300000001", "Data", ("SDS",), True), NOW) is True
    assert await store.put_participant(ParticipantRow("1300000001", "Data Co", ("SDS", "ADS"), True), NOW) is False
    await store.put_participant(ParticipantRow("1600000001", "Provider", ("DCP",), True), NOW)
    await store.add_api_key("1300000001", "hash1", NOW)
    assert await store.add_certificate("1300000001", "fp1", "PEM", NOW + 10, NOW) is True
    assert await store.add_certificate("1300000001", "fp1", "PEM", NOW + 10, NOW) is False
    assert await store.certificate_holder("fp1") == "1300000001"
    assert await store.certificate_holder("nope") is None
    await store.put_connection_provider("1300000001", "1600000001", ("SDS",), NOW)
    await store.add_admin_key("adminhash", NOW)
    rows = await store.load_directory()
    assert {(p.id, p.name, p.roles, p.active) for p in rows.participants} == {
        ("1300000001", "Data Co", ("SDS", "ADS"), True), ("1600000001", "Provider", ("DCP",), True)}
    assert rows.api_keys == [("hash1", "1300000001")]
    assert rows.certificates == [("fp1", "1300000001")]
    assert rows.providers == [("1300000001", "1600000001", ("SDS",))]
    assert rows.admin_keys == ["adminhash"]
    assert await store.state_version() > v0
    # removing the roles removes the grant
    await store.put_connection_provider("1300000001", "1600000001", (), NOW)
    assert (await store.load_directory()).providers == []


async def test_offboarding_is_one_transaction(store: Store) -> None:
    await store.put_participant(ParticipantRow("1300000001", "Data", ("SDS",), True), NOW)
    await store.put_participant(ParticipantRow("1600000001", "Provider", ("DCP",), True), NOW)
    await store.put_connection_provider("1300000001", "1600000001", ("SDS",), NOW)
    await store.put_channel("IF-021", b'{"v": 1}', NOW)
    assert await store.offboard_participant("1300000001", [("IF-021", b'{"v": 2}')], NOW) is True
    assert await store.offboard_participant("1300000001", [], NOW) is False
    rows = await store.load_directory()
    assert [p.active for p in rows.participants if p.id == "1300000001"] == [False]
    assert rows.providers == []
    assert await store.load_channels() == [("IF-021", b'{"v": 2}')]


async def test_channels(store: Store) -> None:
    assert await store.put_channel("IF-021", b'{"a": 1}', NOW) is True
    assert await store.put_channel("IF-021", b'{"a": 2}', NOW) is False
    assert await store.load_channels() == [("IF-021", b'{"a": 2}')]
    v = await store.state_version()
    assert await store.delete_channel("IF-021") is True
    assert await store.delete_channel("IF-021") is False
    assert await store.state_version() > v
    assert await store.load_channels() == []


async def test_messages_are_stored_and_duplicates_reported(store: Store) -> None:
    assert await store.insert_messages([]) == []
    assert await store.insert_messages([row(1), row(2)]) == []
    assert await store.count_messages() == 2
    got = await store.get_message(row(1).transaction_id)
    assert got == row(1)
    assert await store.get_message("T-nope") is None
    # the same sender unique reference again, in a batch with a new one
    again = row(3, sur=row(1).sur)
    assert await store.insert_messages([row(4), again]) == [1]
    assert await store.count_messages() == 3
    # the same reference from another sender is a different key
    assert await store.insert_messages([row(5, sender="1300000002", sur=row(1).sur)]) == []


async def test_concurrent_batches_store_a_reference_once(store: Store) -> None:
    batches = [[row(10 + i, sur="S-IF-021-1300000001-SDS-20261123-same")] for i in range(5)]
    results = await asyncio.gather(*(store.insert_messages(b) for b in batches))
    assert sorted(len(r) for r in results) == [0, 1, 1, 1, 1]
    assert await store.count_messages() == 1


async def test_data_survives_reopening(settings: Settings) -> None:
    first = open_store(settings.database_url, settings.data_dir)
    await first.open()
    await first.insert_messages([row(1)])
    await first.put_channel("IF-021", b"{}", NOW)
    await first.close()
    second = open_store(settings.database_url, settings.data_dir)
    await second.open()  # migrations already applied: must be a no-op
    try:
        assert await second.get_message(row(1).transaction_id) == row(1)
        assert await second.load_channels() == [("IF-021", b"{}")]
        assert await second.insert_messages([row(2, sur=row(1).sur)]) == [0]
    finally:
        await second.close()


async def test_mpan_appointments_are_upserted_by_key_and_versioned(store: Store) -> None:
    from dip.store import AppointmentRow

    v0 = await store.registry_version()
    rows = [
        AppointmentRow("1200000000009", "SUP", "2024-01-01", "1000000001", "2025-12-31"),
        AppointmentRow("1200000000009", "SUP", "2026-01-01", "1000000002", None),
        AppointmentRow("1200000000009", "LDSO", "2020-01-01", "1500000001", None),
        AppointmentRow("1300000000002", "SUP", "2024-01-01", "1000000001", None),
    ]
    v1 = await store.put_appointments(rows)
    assert v1 > v0 and await store.registry_version() == v1
    got = await store.appointments(["1200000000009", "1999999999999"])
    assert sorted(got) == sorted(rows[:3])
    # same key (MPAN, role, effective-from): replaced, e.g. an appointment closed later
    closed = AppointmentRow("1200000000009", "SUP", "2026-01-01", "1000000002", "2026-06-30")
    v2 = await store.put_appointments([closed])
    assert v2 > v1
    got = await store.appointments(["1200000000009"])
    assert closed in got and rows[1] not in got and len(got) == 3
