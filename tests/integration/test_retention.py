"""Retention and the job schedule, on SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dip.archive.retention import DAY, Retention
from dip.catalogue import Catalogue
from dip.egress.retry import RetryPolicy
from dip.jobs import Job, Scheduler
from dip.queue import DeliveryKind, publication_queue
from dip.store import DeliveryRow, MessageRow, Store, open_store
from dip.store.partitions import AHEAD_DAYS
from dip.store.sql_store import SqlStore
from dip.tools.testing import RunningDip

NOW = 1_790_000_000_000_000
SDS, SUP = "1300000001", "1000000001"


@dataclass
class NoChannels:
    catalogue: Catalogue = field(default_factory=lambda: Catalogue({}))


def message(n: int, days: int, at: int) -> MessageRow:
    return MessageRow(f"T-IF-021-{SDS}-SDS-20261123-{n:024x}", "IF-021", "[ActivePower]", "011", SDS, "SDS", None,
                      f"S-IF-021-{SDS}-SDS-20261123-{n:x}", None, "1200000000009", at, b'{"n": %d}' % n,
                      retention_days=days)


async def accept(store: Store, rows: list[MessageRow]) -> None:
    deliveries = [[DeliveryRow(publication_queue(SUP, "IF-021"), m.transaction_id, SUP, "SUP", DeliveryKind.SECONDARY,
                               m.received_at, retention_days=m.retention_days)] for m in rows]
    assert await store.insert_messages(rows, deliveries) == []


async def test_each_message_is_kept_for_its_own_retention(store: Store) -> None:
    await store.add_retention_class(30)
    short = [message(n, 30, NOW + n) for n in range(3)]
    long = [message(10 + n, 730, NOW + n) for n in range(2)]
    await accept(store, short + long)
    retention = Retention(store, NoChannels(), batch=2)  # several batches
    nothing = await retention.purge(NOW + 29 * DAY)
    assert sum(nothing.messages.values()) == 0 and nothing.finished
    purged = await retention.purge(NOW + 31 * DAY)
    assert purged.messages == {30: 3, 730: 0} and purged.finished
    for m in short:
        assert await store.get_message(m.transaction_id) is None
        assert await store.delivery_history(m.transaction_id) == []  # its deliveries went with it
    for m in long:
        assert await store.get_message(m.transaction_id) is not None
    # the references stay taken for the longest retention: a short-lived message's too
    again = message(99, 30, NOW + 32 * DAY)._replace(sur=short[0].sur)
    assert await store.insert_messages([again]) == [0]
    purged = await retention.purge(NOW + 731 * DAY)
    assert purged.messages[730] == 2 and purged.references == 5
    assert await store.count_messages() == 0
    assert await store.insert_messages([again]) == []  # free again after the longest retention


async def test_a_purge_stops_at_its_time_budget_and_goes_on_later(store: Store) -> None:
    await accept(store, [message(n, 730, NOW + n) for n in range(4)])
    retention = Retention(store, NoChannels(), batch=1)
    first = await retention.purge(NOW + 800 * DAY, budget_seconds=0)
    if isinstance(store, SqlStore) and store.db.partitioned:
        # PostgreSQL drops the whole expired day at once: there is no batch to stop after
        assert first.messages == {730: 4}
        return
    assert not first.finished and sum(first.messages.values()) == 1
    rest = await retention.purge(NOW + 800 * DAY)
    assert rest.finished and sum(rest.messages.values()) == 3


async def _tables(store: SqlStore, pattern: str) -> set[str]:
    return {r[0] for r in await store.db.fetch("SELECT relname FROM pg_class WHERE relname LIKE $1", pattern)}


async def test_postgres_purges_by_dropping_whole_days(pg_database: str, tmp_path: Path) -> None:
    store = open_store(pg_database, tmp_path)
    await store.open()
    try:
        assert isinstance(store, SqlStore)
        today = datetime.now(UTC).date()
        made = await _tables(store, "messages_r730_d%")
        ahead = {f"messages_r730_d{today + timedelta(days=n):%Y%m%d}" for n in range(-1, AHEAD_DAYS + 1)}
        assert ahead <= made  # ingest never waits for a partition to be made
        # rows of days with no partition yet land in the class's default partition and are moved
        # into a partition of their own before the purge looks
        old = [message(n, 730, NOW + n * DAY) for n in range(3)]
        await accept(store, old)
        assert await store.db.fetchval("SELECT count(*) FROM messages_r730_default") == 3
        purged = await Retention(store, NoChannels()).purge(NOW + 730 * DAY + DAY // 2)
        assert await store.db.fetchval("SELECT count(*) FROM messages_r730_default") == 0
        assert await store.db.fetchval("SELECT count(*) FROM deliveries_r730_default") == 0
        # the first day ended 730 days ago (NOW is after noon): its partitions are gone; the others stay
        first_day = f"{datetime.fromtimestamp(NOW / 1e6, UTC):%Y%m%d}"
        assert purged.messages[730] == 1 and purged.deliveries == 1
        assert not await _tables(store, f"%_r730_d{first_day}")
        assert await store.get_message(old[0].transaction_id) is None
        assert [await store.get_message(m.transaction_id) is not None for m in old[1:]] == [True, True]
        # a purge that stopped between its two steps (detached, not dropped: a node died) leaves
        # tables the archive no longer reads; the next run drops them
        second_day = f"{datetime.fromtimestamp((NOW + DAY) / 1e6, UTC):%Y%m%d}"
        async with store.db.transaction() as tx:
            for table in ("messages", "deliveries"):
                await tx.execute(f"ALTER TABLE {table}_r730 DETACH PARTITION {table}_r730_d{second_day}")
        assert await store.get_message(old[1].transaction_id) is None
        assert {f"{t}_r730_d{second_day}" for t in ("messages", "deliveries")} <= await _tables(
            store, f"%_r730_d{second_day}")
        await Retention(store, NoChannels()).purge(NOW + 730 * DAY + DAY // 2)
        assert not await _tables(store, f"%_r730_d{second_day}")
        assert await store.get_message(old[2].transaction_id) is not None
    finally:
        await store.close()


async def test_a_job_runs_on_one_node_at_a_time_and_again_when_due(store: Store) -> None:
    clock = [NOW]
    runs: list[tuple[str, int]] = []

    def job(node: str) -> Job:
        async def run(now: int) -> tuple[str, bool]:
            runs.append((node, now))
            await asyncio.sleep(0.01)
            return f"ran on {node}", True

        return Job("purge", 600, run)

    nodes = [Scheduler(store, name, [job(name)], clock=lambda: clock[0]) for name in ("a", "b")]
    for node in nodes:
        for j in node.jobs:
            await store.add_job(j.name, clock[0])
    ran = await asyncio.gather(*(node.run_due() for node in nodes))
    assert sorted(len(r) for r in ran) == [0, 1] and len(runs) == 1  # one of the two took it
    assert await nodes[0].run_due() == [] and await nodes[1].run_due() == []  # not due again yet
    clock[0] += 601 * 1_000_000
    assert len([r for node in nodes for r in await node.run_due()]) == 1
    (state,) = await store.job_states()
    assert state.name == "purge" and state.last_result is not None and state.last_result.startswith("ran on")
    assert state.lease_owner is None and state.next_run_at == clock[0] + 600 * 1_000_000


async def test_a_lapsed_lease_lets_another_node_run_the_job(store: Store) -> None:
    await store.add_job("purge", NOW)
    assert await store.claim_job("purge", "a", NOW, 1_000_000)
    assert not await store.claim_job("purge", "b", NOW + 500_000, 1_000_000)  # held
    assert await store.claim_job("purge", "b", NOW + 2_000_000, 1_000_000)  # node a died: the lease lapsed
    assert not await store.finish_job("purge", "a", NOW + 10, NOW, "late")  # a no longer holds it
    assert await store.finish_job("purge", "b", NOW + 10, NOW, "done")


def test_the_operator_sees_the_purge_job_and_may_run_it_at_once(dip_factory: Callable[..., RunningDip]) -> None:
    import time

    import httpx

    dip = dip_factory(jobs_poll_seconds=0.1)
    headers = {"X-API-Key": dip.admin_key}
    jobs = {j["name"]: j for j in httpx.get(f"{dip.url}/admin/jobs", headers=headers).json()["jobs"]}
    assert set(jobs) == {"retention", "activity-retention", "portfolio"}  # the archive's, the log's own, E2E 6.1
    job = jobs["retention"]
    assert job["lastRunAt"] is None  # first due an interval after start
    assert httpx.post(f"{dip.url}/admin/jobs/retention/run", headers=headers).status_code == 202
    assert httpx.post(f"{dip.url}/admin/jobs/nothing/run", headers=headers).status_code == 404
    deadline = time.monotonic() + 10
    while (job := {j["name"]: j for j in httpx.get(f"{dip.url}/admin/jobs", headers=headers).json()["jobs"]}[
            "retention"])["lastRunAt"] is None:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["lastResult"].startswith("messages 0") and job["lastResult"].endswith(" s)")
    assert job["nextRunAt"] > job["lastRunAt"] and job["runningOn"] is None


async def test_the_job_dead_letters_what_no_worker_reached_before_queue_reads_stop_looking(store: Store) -> None:
    """Queue reads look back only to the dead-letter deadline plus a margin (RetryPolicy.oldest_pending);
    a delivery an outage left pending past that is dead-lettered by the retention job, not left
    pending for ever out of sight."""
    rows = [message(n, 730, NOW + n) for n in range(2)]
    await accept(store, rows)
    queue = publication_queue(SUP, "IF-021")
    first = (await store.pending(queue, 1))[0]
    assert isinstance(store, SqlStore)
    async with store.db.transaction() as tx:  # the first was delivered
        await tx.write(store.db.translate("UPDATE queues SET delivered_through = $1"), first.id)
    policy = RetryPolicy()
    later = NOW + int((policy.dead_letter_after + 3 * 86_400) * 1e6)  # a node comes back 17 days on
    assert await store.pending(queue, 10, since=policy.oldest_pending(later / 1e6)) == []  # out of sight
    purged = await Retention(store, NoChannels(), policy=policy).purge(later)
    assert purged.swept == 1
    states = {h.state for h in await store.delivery_history(rows[1].transaction_id)}
    assert states == {"dead"}
    assert {h.state for h in await store.delivery_history(rows[0].transaction_id)} == {"delivered"}
