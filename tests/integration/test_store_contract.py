"""The Store contract, written once and run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from dip.config import Settings
from dip.exceptions import ConstraintViolation, StoreError, UniqueViolation, UnstorableValue
from dip.queue import IDLE
from dip.signing import generate_identity
from dip.store import DeliveryRow, MessageRow, ParticipantRow, Store, open_store
from dip.store.message_cache import MessageCache, StoredMessage
from dip.store.sql_store import SqlStore
from dip.tools.client import DipClient, Identity
from dip.tools.samples import sample_payloads

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


async def test_the_archive_keeps_payloads_compressed_and_reads_older_ones_as_they_were(store: Store) -> None:
    """Payloads are most of the archive's size: they are kept compressed (payload_codec), every
    read gives back the accepted bytes, and a message stored before compression still reads."""
    assert isinstance(store, SqlStore)
    client = DipClient("http://127.0.0.1:1", Identity("1300000001", "SDS", "", *generate_identity("1300000001"),
                                                      "", "DEV"))
    payload = orjson.dumps(sample_payloads(client, "IF-021", 1)[0])
    message = row(1)._replace(payload=payload)
    await store.insert_messages([message])
    kept = bytes(await store.db.fetchval("SELECT payload FROM messages WHERE transaction_id = $1",
                                         message.transaction_id))
    assert len(kept) < len(payload) // 4, (len(kept), len(payload))
    assert await store.get_message(message.transaction_id) == message
    assert (await store.stored_messages([message.transaction_id]))[message.transaction_id].payload == payload
    async with store.db.transaction() as tx:
        await tx.execute("UPDATE messages SET payload = $1 WHERE transaction_id = $2", payload, message.transaction_id)
    assert await store.get_message(message.transaction_id) == message


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
    # what other nodes ask to keep their caches coherent: the MPANs written after a version
    assert await store.registry_changes(v2, 10) == (v2, [])
    assert await store.registry_changes(v1, 10) == (v2, ["1200000000009"])
    version, changed = await store.registry_changes(v0, 10)
    assert version == v2 and sorted(changed or []) == ["1200000000009", "1300000000002"]
    assert await store.registry_changes(v0, 2) == (v2, None)  # too many (5 rows): forget everything
    assert await store.registry_changes(-1, 10) == (v2, None)  # a cache that never loaded


def delivery(n: int, queue: str = "1400000001|IF-021", kind: str = "always") -> DeliveryRow:
    from dip.store import DeliveryRow

    return DeliveryRow(queue, row(n).transaction_id, queue.split("|")[0], "MDS", kind, NOW + n)


async def test_queues_serve_deliveries_in_order_with_the_stored_message(store: Store) -> None:
    await store.insert_messages([row(1), row(2), row(3)])
    await store.enqueue([delivery(1), delivery(2)], NOW)
    await store.enqueue([delivery(3), delivery(3, queue="1000000001|IF-021", kind="secondary")], NOW)
    claims = await store.claim("node-a", NOW, 30_000_000, 10)
    assert sorted(c.queue for c in claims) == ["1000000001|IF-021", "1400000001|IF-021"]
    assert {c.interface_id for c in claims} == {"IF-021"}
    pending = await store.pending("1400000001|IF-021", 10)
    assert [p.transaction_id for p in pending] == [row(1).transaction_id, row(2).transaction_id,
                                                   row(3).transaction_id]
    assert pending[0].payload == row(1).payload and pending[0].received_at == row(1).received_at
    assert [p.transaction_id for p in await store.pending("1400000001|IF-021", 2)] == [
        row(1).transaction_id, row(2).transaction_id]
    # leased queues are not claimed again
    assert await store.claim("node-b", NOW, 30_000_000, 10) == []


async def test_a_message_cache_reads_each_stored_message_once_for_all_its_queues(store: Store) -> None:
    await store.insert_messages([row(1), row(2)])
    await store.enqueue([delivery(1), delivery(2), delivery(1, queue="1000000001|IF-021", kind="secondary")], NOW)
    cache = MessageCache(1024 * 1024)
    uncached = await store.pending("1400000001|IF-021", 10)
    first = await store.pending("1400000001|IF-021", 10, cache)
    assert first == uncached and (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    (other,) = await store.pending("1000000001|IF-021", 10, cache)
    assert (cache.hits, cache.misses) == (1, 2)  # the second queue's message came from the cache
    assert other.payload == row(1).payload and other.role == "MDS" and other.kind == "secondary"
    # what the cache holds is what a queue gets (so the store is not read again for it)
    cache.put(row(2).transaction_id, StoredMessage(b'{"cached": true}', None, NOW, "", "", None, None))
    assert [p.payload for p in await store.pending("1400000001|IF-021", 10, cache)] == [
        row(1).payload, b'{"cached": true}']


async def test_queues_served_at_once_read_their_shared_messages_from_the_store_once(store: Store) -> None:
    await store.insert_messages([row(1), row(2)])
    await store.enqueue([delivery(1), delivery(2), delivery(1, queue="1000000001|IF-021", kind="secondary"),
                         delivery(2, queue="1000000001|IF-021", kind="secondary")], NOW)
    cache = MessageCache(1024 * 1024)
    first, second = await asyncio.gather(store.pending("1400000001|IF-021", 10, cache),
                                         store.pending("1000000001|IF-021", 10, cache))
    assert cache.reads == 2  # whichever queue got there first read them; the other shared or hit
    assert [p.payload for p in first] == [p.payload for p in second] == [row(1).payload, row(2).payload]


async def test_settle_records_outcomes_relays_and_releases(store: Store) -> None:
    from dip.store import DeliveryRow, Settlement

    await store.insert_messages([row(1), row(2)])
    await store.enqueue([delivery(1), delivery(2)], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    first, second = await store.pending(claim.queue, 10)
    status = DeliveryRow("1300000001|status", row(2).transaction_id, "1300000001", "", "status", NOW, b'{"m": 1}')
    assert not await store.settle(claim.queue, "someone-else", [], NOW, 0, [], NOW)
    assert await store.settle(claim.queue, "node-a", [Settlement(first.id, "delivered", 201, None),
                                                        Settlement(second.id, "rejected", 207, "RCP1022")],
                              NOW, 0, [status], NOW + 5, drained=claim.arrivals)
    states = await store.delivery_states([row(1).transaction_id, row(2).transaction_id])
    assert ("T-IF-021-1300000001-SDS-20261123-" + f"{1:024x}", "1400000001", "MDS", "always", "delivered") in states
    assert (row(2).transaction_id, "1400000001", "MDS", "always", "rejected") in states
    assert (row(2).transaction_id, "1300000001", "", "status", "pending") in states
    assert await store.pending(claim.queue, 10) == []
    # the relayed status message is its own queue, with its body
    claims = await store.claim("node-a", NOW + 10, 30_000_000, 10)
    assert [c.queue for c in claims] == ["1300000001|status"]
    (relayed,) = await store.pending("1300000001|status", 10)
    assert relayed.body == b'{"m": 1}' and relayed.kind == "status"


async def test_a_backing_off_head_holds_its_queue_and_new_messages_wait(store: Store) -> None:
    from dip.store import Settlement

    await store.insert_messages([row(1), row(2)])
    await store.enqueue([delivery(1)], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    (head,) = await store.pending(claim.queue, 10)
    later = NOW + 60_000_000
    assert await store.settle(claim.queue, "node-a", [Settlement(head.id, "pending", 503, "busy")], later, 1, [], NOW)
    await store.enqueue([delivery(2)], NOW + 1)  # must not pull the retry forward
    assert await store.claim("node-a", NOW + 1_000_000, 30_000_000, 10) == []
    (claim,) = await store.claim("node-a", later, 30_000_000, 10)
    assert claim.retries == 1
    pending = await store.pending(claim.queue, 10)
    assert [p.transaction_id for p in pending] == [row(1).transaction_id, row(2).transaction_id]
    assert pending[0].attempts == 1


async def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    await store.insert_messages([row(1)])
    await store.enqueue([delivery(1)], NOW)
    assert len(await store.claim("node-a", NOW, 1_000_000, 10)) == 1
    assert await store.claim("node-b", NOW + 500_000, 1_000_000, 10) == []
    (taken,) = await store.claim("node-b", NOW + 2_000_000, 1_000_000, 10)
    assert taken.queue == "1400000001|IF-021"
    assert not await store.settle(taken.queue, "node-a", [], NOW, 0, [], NOW)  # node-a lost it


async def test_a_drained_queue_is_idle_until_something_is_enqueued(store: Store) -> None:
    from dip.store import Settlement

    queue = "1400000001|IF-021"
    await store.insert_messages([row(n) for n in range(1, 4)])
    await store.enqueue([delivery(1)], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    (one,) = await store.pending(queue, 10)
    assert await store.settle(queue, "node-a", [Settlement(one.id, "delivered", 201, None)], NOW, 0, [], NOW,
                              drained=claim.arrivals)
    far = NOW + 365 * 86_400 * 1_000_000
    assert await store.claim("node-a", far, 30_000_000, 10) == []  # idle, however late
    assert [q.next_attempt_at for q in await store.queue_overview()] == [IDLE]
    await store.enqueue([delivery(2)], NOW + 5)  # an arrival wakes it at once
    (claim,) = await store.claim("node-a", NOW + 5, 30_000_000, 10)
    (two,) = await store.pending(queue, 10)
    # a message enqueued while the call was out: the queue stays due, though the call drained
    # what it had read
    await store.enqueue([delivery(3)], NOW + 6)
    assert await store.settle(queue, "node-a", [Settlement(two.id, "delivered", 201, None)], NOW + 7, 0, [], NOW + 7,
                              drained=claim.arrivals)
    (claim,) = await store.claim("node-a", NOW + 7, 30_000_000, 10)
    assert [p.transaction_id for p in await store.pending(queue, 10)] == [row(3).transaction_id]
    # a call that did not take everything leaves the queue due at the time it names
    assert await store.settle(queue, "node-a", [], NOW + 9, 0, [], NOW + 8)
    assert await store.claim("node-a", NOW + 8, 30_000_000, 10) == []
    (claim,) = await store.claim("node-a", NOW + 9, 30_000_000, 10)
    # an idle queue whose recipient's webhook changed is due again
    assert await store.settle(queue, "node-a", [], NOW + 9, 0, [], NOW + 9, drained=claim.arrivals)
    assert await store.claim("node-a", far, 30_000_000, 10) == []
    await store.make_due("1400000001", NOW + 10)
    assert [c.queue for c in await store.claim("node-a", NOW + 10, 30_000_000, 10)] == [queue]


async def test_a_queue_remembers_how_far_back_its_pending_deliveries_go(store: Store) -> None:
    """A read looks back to the oldest acceptance the queue's last read saw (less the ingest
    skew), not to the dead-letter deadline; the floor never moves back."""
    from dip.egress.retry import ENQUEUE_SKEW, RetryPolicy
    from dip.store import Settlement

    queue, policy = "1400000001|IF-021", RetryPolicy()
    await store.insert_messages([row(n) for n in range(1, 4)])
    await store.enqueue([delivery(1), delivery(2)], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == 0  # never read: the read looks back to the dead-letter floor
    assert policy.read_from(NOW / 1e6, claim.pending_floor) == policy.oldest_pending(NOW / 1e6)
    one, two = await store.pending(queue, 10, since=policy.read_from(NOW / 1e6, claim.pending_floor))
    # one delivered, the other to be tried again: the floor is the oldest the call read
    assert await store.settle(queue, "node-a", [Settlement(one.id, "delivered", 201, None),
                                                Settlement(two.id, "pending", 503, "busy")],
                              NOW, 1, [], NOW, since=one.accepted_at)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == NOW + 1
    since = policy.read_from(NOW / 1e6, claim.pending_floor)
    assert since == NOW + 1 - int(ENQUEUE_SKEW * 1_000_000)
    # a delivery enqueued after the read, accepted within the skew before the floor, is read
    await store.enqueue([DeliveryRow(queue, row(3).transaction_id, "1400000001", "MDS", "always", NOW - 60_000_000)],
                        NOW)
    assert [p.transaction_id for p in await store.pending(queue, 10, since=since)] == [
        row(2).transaction_id, row(3).transaction_id]
    assert await store.settle(queue, "node-a", [Settlement(two.id, "delivered", 201, None)], NOW, 0, [], NOW,
                              since=two.accepted_at)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == NOW + 2
    # a call that read nothing, or older deliveries than the floor, leaves it where it is
    assert await store.settle(queue, "node-a", [], NOW, 0, [], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert await store.settle(queue, "node-a", [], NOW, 0, [], NOW, since=NOW - 60_000_000)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert claim.pending_floor == NOW + 2


async def test_concurrent_claims_never_share_a_queue(store: Store) -> None:
    await store.insert_messages([row(i) for i in range(40)])
    await store.enqueue([delivery(i, queue=f"{1400000000 + i}|IF-021") for i in range(40)], NOW)
    results = await asyncio.gather(*(store.claim(f"node-{k}", NOW, 30_000_000, 7) for k in range(6)))
    claimed = [c.queue for claims in results for c in claims]
    assert len(claimed) == len(set(claimed)) == 40


async def _status_rows(store: Store, queue: str) -> list[tuple[object, ...]]:
    """(transaction ID, state, attempts, done_at, last_status, last_error) from the delivery_status view."""
    query = ("SELECT transaction_id, state, attempts, done_at, last_status, last_error FROM delivery_status"
             f" WHERE queue = '{queue}' ORDER BY id")
    assert isinstance(store, SqlStore)
    return [tuple(r) for r in await store.db.fetch(query)]


async def test_a_delivered_call_moves_the_queue_watermark_instead_of_writing_each_row(store: Store) -> None:
    from dip.store import Settlement

    queue = "1400000001|IF-021"
    await store.insert_messages([row(n) for n in range(1, 6)])
    await store.enqueue([delivery(1), delivery(2), delivery(3)], NOW)
    assert [c.queue for c in await store.claim("node-a", NOW, 30_000_000, 10)] == [queue]
    one, two, three = await store.pending(queue, 10)
    # the head failed once (retried), then a call delivered 1-3 with 3 rejected by the recipient
    assert await store.settle(queue, "node-a", [Settlement(one.id, "pending", 503, "HTTP 503")], NOW, 1, [], NOW)
    (claim,) = await store.claim("node-a", NOW, 30_000_000, 10)
    assert [p.id for p in await store.pending(queue, 10)] == [one.id, two.id, three.id]
    assert await store.settle(queue, "node-a", [Settlement(one.id, "delivered", 207, None),
                                                Settlement(two.id, "delivered", 207, None),
                                                Settlement(three.id, "rejected", 207, "bad reading")],
                              NOW, 0, [], NOW + 7, drained=claim.arrivals)
    assert await store.pending(queue, 10) == []
    assert await store.claim("node-a", NOW, 30_000_000, 10) == []  # nothing left to serve: idle
    # messages that arrive later are served next, and only they
    await store.enqueue([delivery(4), delivery(5)], NOW + 8)
    assert [c.queue for c in await store.claim("node-a", NOW + 8, 30_000_000, 10)] == [queue]
    four, five = await store.pending(queue, 10)
    assert (four.transaction_id, five.transaction_id) == (row(4).transaction_id, row(5).transaction_id)
    assert await store.settle(queue, "node-a", [Settlement(four.id, "delivered", 200, "answered 200, not 201")],
                              NOW, 0, [], NOW + 9)
    assert [p.id for p in await store.pending(queue, 10)] == [five.id]
    assert await _status_rows(store, queue) == [
        (row(1).transaction_id, "delivered", 2, NOW + 7, 207, None),
        (row(2).transaction_id, "delivered", 1, NOW + 7, 207, None),
        (row(3).transaction_id, "rejected", 1, NOW + 7, 207, "bad reading"),
        (row(4).transaction_id, "delivered", 1, NOW + 9, 200, "answered 200, not 201"),
        (row(5).transaction_id, "pending", 0, None, None, None),
    ]
    states = await store.delivery_states([row(n).transaction_id for n in range(1, 6)])
    assert [s[4] for s in states] == ["delivered", "delivered", "rejected", "delivered", "pending"]


async def test_a_value_the_database_cannot_hold_is_the_requests_fault_not_an_outage(store: Store) -> None:
    # PostgreSQL text cannot hold NUL (SQLite's can): a data exception is UnstorableValue (400),
    # never StoreError (503, "retry later", which would never help)
    row = ParticipantRow("1900000001", "Acme\x00", ("SUP",), True)
    if not (isinstance(store, SqlStore) and store.db.dialect == "postgres"):
        assert await store.put_participant(row, NOW)
        return
    with pytest.raises(UnstorableValue, match="0x00") as raised:
        await store.put_participant(row, NOW)
    assert not isinstance(raised.value, StoreError)
    with pytest.raises(UnstorableValue):
        await store.queue_overview("x\x00")


async def test_a_broken_reference_is_a_constraint_violation_not_a_duplicate(store: Store) -> None:
    # an API key for a participant that does not exist breaks a foreign key: on both databases
    # that is a ConstraintViolation, never the UniqueViolation that ingest would take for a
    # duplicate sender reference
    with pytest.raises(ConstraintViolation) as raised:
        await store.add_api_key("1999999999", "hash-of-nobody", NOW)
    assert not isinstance(raised.value, UniqueViolation)
    await store.put_participant(ParticipantRow("1300000001", "Data", ("SDS",), True), NOW)
    await store.add_api_key("1300000001", "hash1", NOW)
    with pytest.raises(UniqueViolation):
        await store.add_api_key("1300000001", "hash1", NOW)
    assert (await store.load_directory()).api_keys == [("hash1", "1300000001")]  # nothing half-written


async def test_a_failed_transaction_leaves_the_store_usable(store: Store) -> None:
    # the failed write is rolled back before the next transaction begins (SQLite: one writer)
    results = await asyncio.gather(*(store.add_api_key("1999999999", f"h{i}", NOW) for i in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, ConstraintViolation) for r in results)
    assert await store.insert_messages([row(1)]) == []
    assert await store.count_messages() == 1


async def test_both_dialects_build_the_same_schema(pg_database: str, tmp_path: Path) -> None:
    """One folder of migrations: SQLite's translation gives the tables, columns and indexes
    PostgreSQL has (a column or index left out of one dialect would fail here). PostgreSQL's
    partitions are its own (compared: the partitioned tables), and so are the few indexes the
    partitions change: what PostgreSQL does by dropping a partition SQLite does by index."""
    postgres = open_store(pg_database, tmp_path)
    sqlite = open_store(None, tmp_path / "sqlite")
    for s in (postgres, sqlite):
        await s.open()
    try:
        assert isinstance(postgres, SqlStore) and isinstance(sqlite, SqlStore)
        pg_columns = await postgres.db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns c"
            " JOIN pg_class r ON r.relname = c.table_name WHERE table_schema = 'public'"
            " AND table_name <> 'schema_migrations' AND NOT r.relispartition")
        pg_indexes = await postgres.db.fetch(
            "SELECT i.relname FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace"
            " WHERE n.nspname = 'public' AND i.relkind IN ('i', 'I') AND NOT i.relispartition"
            " AND i.relname NOT LIKE '%_pkey'")
        tables = await sqlite.db.fetch(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
            " AND name <> 'schema_migrations'")
        sqlite_columns = {(t, c[1]) for (t,) in tables for c in await sqlite.db.fetch(f"PRAGMA table_info({t})")}
        sqlite_indexes = await sqlite.db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")
        assert {(t, c) for t, c in pg_columns} == sqlite_columns
        postgres_only = {"messages_transaction", "deliveries_id"}  # the primary keys' stand-ins
        sqlite_only = {"messages_expiry", "deliveries_expiry"}  # its purge's
        assert {i for (i,) in pg_indexes} - postgres_only == {i for (i,) in sqlite_indexes} - sqlite_only
        assert postgres_only <= {i for (i,) in pg_indexes} and sqlite_only <= {i for (i,) in sqlite_indexes}
        assert len(sqlite_columns) > 60
    finally:
        for s in (postgres, sqlite):
            await s.close()


async def test_a_write_that_fails_undoes_its_whole_transaction(store: Store) -> None:
    # SQLite sends writes whose result is not needed with the transaction's next statement: a
    # failure among them still fails (and rolls back) the transaction they belong to
    assert isinstance(store, SqlStore)

    async def three_writes() -> None:
        async with store.db.transaction() as tx:
            await tx.write(store.q.insert_admin_key, "first", NOW)
            await tx.write(store.q.insert_api_key, "hash", "1999999999", NOW)  # no such participant
            await tx.write(store.q.insert_admin_key, "second", NOW)

    with pytest.raises(ConstraintViolation):
        await three_writes()
    assert (await store.load_directory()).admin_keys == []
    async with store.db.transaction() as tx:  # and the next transaction starts clean
        await tx.write(store.q.insert_admin_key, "third", NOW)
    assert (await store.load_directory()).admin_keys == ["third"]
