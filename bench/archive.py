"""The archive at size (issue 16): load millions of archived messages, then replay, search and
purge on it, against a real `dip serve` on that database.

    python -m bench.archive --stores sqlite,postgres [--messages 2000000,10000000] [--days 30]

Per store it prints:
- the load: messages and their deliveries and references written through the store's own bulk
  path (COPY on PostgreSQL), after checking free disk (about 3 KB a message before indexes; where
  the disk is short, the largest archive that fits, said so), and the bytes per message;
- replay of 50,000 publications by time range, and by MPAN (one MPAN holds 50,000 messages);
- search by correlation ID and by MPAN: p50/p99 of 200 signed requests each;
- the purge of one day of a short-retention channel (1,000,000 messages at full size; the same
  share of the archive when smaller) by the DIP's own retention job (``POST
  /admin/jobs/retention/run``), against the time to ingest 10,000 messages, and the ingest rate
  while the purge runs.

Messages are IF-021 [ActivePower] of 2.7 KB (24 periods) from the demo data service, to MDS
(always) and SUP (by MPAN), spread over ``--days`` days, all delivered; every tenth message
shares a correlation ID with nine others. PostgreSQL's archive stays in the database
``dip_bench_archive`` (``--keep`` keeps SQLite's too), so ``python -m bench.e2e --database-url``
can measure ingest and delivery on it beside an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import ADMIN_KEY, PG_URL, calibration, dip_server, fresh_database, machine
from dip import ids
from dip.queue import DeliveryKind, publication_queue
from dip.store import DeliveryRow, MessageRow, Store, open_store, partitions
from dip.store.sql_store import SqlStore
from dip.tools.client import DipClient, Identity
from dip.tools.samples import consumption_block, mpan_core, sample_payloads
from dip.tools.testing import AdminClient

SDS, MDS, SUP = "1300000001", "1400000001", "1000000001"
BYTES_PER_MESSAGE = 3_000  # before indexes: the disk check's estimate
HOT_MPAN_MESSAGES = 50_000
REPLAY = 50_000
SHORT_RETENTION = 30  # days: the class whose oldest day is purged
PARTITION_DAYS = 730  # PostgreSQL: days of partitions made for each class, as after two years
_CHUNK = 20_000
_DAY = 86_400_000_000


def _template(rng: random.Random) -> tuple[bytes, bytes]:
    """An IF-021 payload as stored, split around its MPAN, so millions are made by joining bytes."""
    from dip.signing import generate_identity

    key_pem, cert_pem = generate_identity(SDS)
    client = DipClient("http://127.0.0.1:1", Identity(SDS, "SDS", "", key_pem, cert_pem, "", "DEV"))
    payload = client.message("IF-021", "[ActivePower]", "011",
                             consumption_block(SDS, datetime.now(UTC) - timedelta(days=1), rng, periods=24),
                             mpan="9999999999999")
    raw = orjson.dumps(payload)
    before, after = raw.split(b"9999999999999", 1)
    return before, after


def _correlation(n: int) -> str:
    """Ten messages share each workflow correlation ID."""
    return f"CI-20000101-{n // 10:024x}"


def _rows(first: int, count: int, start: int, span: int, mpans: int, hot: int, retention: int,
          template: tuple[bytes, bytes]) -> tuple[list[MessageRow], list[list[DeliveryRow]]]:
    rows, deliveries = [], []
    for n in range(first, first + count):
        at = start + (n - first) * span // max(count, 1)
        mpan = mpan_core(0) if n < hot else mpan_core(1 + n % mpans)
        day = datetime.fromtimestamp(at / 1e6, UTC).strftime("%Y%m%d")
        tid = f"T-IF-021-{SDS}-SDS-{day}-{n:024x}"
        rows.append(MessageRow(tid, "IF-021", "[ActivePower]", "011", SDS, "SDS", None,
                               f"S-IF-021-{SDS}-SDS-{day}-{n:x}", _correlation(n), mpan, at,
                               template[0] + mpan.encode() + template[1], "", MDS, retention_days=retention))
        deliveries.append([
            DeliveryRow(publication_queue(MDS, "IF-021"), tid, MDS, "MDS", DeliveryKind.ALWAYS, at, None, retention),
            DeliveryRow(publication_queue(SUP, "IF-021"), tid, SUP, "SUP", DeliveryKind.SECONDARY, at, None,
                        retention),
        ])
    return rows, deliveries


async def load(store: Store, messages: int, days: int, purge_day: int, now: int, first: int = 0) -> dict[str, Any]:
    """``messages`` over ``days`` days before ``now``; ``purge_day`` more of them on one day in the
    short-retention class, old enough to be purged. All delivered."""
    template = _template(random.Random(1))
    await store.add_retention_class(SHORT_RETENTION)
    # PostgreSQL: the partitions a DIP holds after two years (empty ones too: planning and
    # locking scale with their number), made before the load: 730 days of the 730-day class,
    # and the short class's days back to its expired one
    began = time.perf_counter()
    made = await store.prepare_archive(now - (SHORT_RETENTION + 3) * _DAY, now + 3 * _DAY)
    if isinstance(store, SqlStore) and store.db.partitioned:
        made += await partitions.prepare(store.db, {730}, now - PARTITION_DAYS * _DAY, now)
    partitioning = time.perf_counter() - began
    started = time.perf_counter()
    span = days * _DAY
    start = now - span
    done = 0
    while done < messages:
        count = min(_CHUNK, messages - done)
        chunk_start = start + done * span // messages
        rows, deliveries = _rows(done, count, chunk_start, count * span // messages, 100_000, HOT_MPAN_MESSAGES,
                                 730, template)
        await store.insert_messages(rows, deliveries)
        done += count
    # a day of a short-retention channel, expired: the DIP's retention job purges it when the
    # benchmark runs the job (a new job first runs an interval after start)
    old_day = now - (SHORT_RETENTION + 2) * _DAY
    purged = 0
    while purged < purge_day:
        count = min(_CHUNK, purge_day - purged)
        rows, deliveries = _rows(first + messages + purged, count, old_day + purged * _DAY // purge_day,
                                 count * _DAY // purge_day, 100_000, 0, SHORT_RETENTION, template)
        await store.insert_messages(rows, deliveries)
        purged += count
    seconds = time.perf_counter() - started
    await _all_delivered(store)
    # what autovacuum does on a server that has it on (this machine's test server does not)
    for table in ("messages", "deliveries", "sender_references", "queues"):
        await store.db.refresh_statistics(table)  # type: ignore[attr-defined]
    return {"loaded": messages + purge_day, "seconds": seconds, "partitions": made, "partitioning": partitioning}


async def _all_delivered(store: Store) -> None:
    """Every delivery so far counts as delivered: a DIP started on this archive later
    (bench.e2e --database-url) must not push the archive to its webhooks."""
    async with store.db.transaction() as tx:  # type: ignore[attr-defined]
        await tx.write("UPDATE queues SET delivered_through = (SELECT max(id) FROM deliveries)")


def _percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms"


def _replay(client: DipClient, request: dict[str, Any]) -> tuple[int, float, int]:
    started = time.perf_counter()
    response = client.post(f"/dip-channel/IF-021/replay/{MDS}", orjson.dumps(request))
    seconds = time.perf_counter() - started
    count = len(response.json()) if response.status_code in (200, 206) else 0
    return response.status_code, seconds, count


def _search(client: DipClient, **params: str) -> float:
    started = time.perf_counter()
    response = client.request("GET", "/messages?" + urllib.parse.urlencode(params))
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def measure(url: str, messages: int, days: int, now: int) -> list[str]:
    out = []
    with AdminClient(url, ADMIN_KEY) as admin:
        mds = admin.onboard(MDS, ["MDS"])
    client = DipClient(url, mds)
    # replay: the first 50,000 by time range (the archive's oldest day onwards), and the hot MPAN's
    first = ids.timestamp(datetime.fromtimestamp((now - days * _DAY) / 1e6, UTC))
    status, seconds, count = _replay(client, {"datetimeFrom": first})
    out.append(f"replay by time range: HTTP {status}, {count:,} messages in {seconds:.2f} s")
    status, seconds, count = _replay(client, {"datetimeFrom": first, "MPAN": mpan_core(0)})
    out.append(f"replay by MPAN: HTTP {status}, {count:,} messages in {seconds:.2f} s")
    # search: correlation IDs and MPANs at random. The first queries on each of the server's pooled
    # connections read the catalogue entries of every partition they plan over (PostgreSQL):
    # shown apart, as the cold start they are, before the steady state is measured
    rng = random.Random(7)
    cold = [_search(client, correlationID=_correlation(rng.randrange(messages))) for _ in range(20)]
    out.append(f"search, the first 20 on a fresh server (cold caches): {_percentiles(cold)}")
    by_correlation = []
    for _ in range(200):
        by_correlation.append(_search(client, correlationID=_correlation(rng.randrange(messages))))
    out.append(f"search by correlation ID (200): {_percentiles(by_correlation)}")
    by_mpan = [_search(client, MPAN=mpan_core(1 + rng.randrange(100_000)), limit="100") for _ in range(200)]
    out.append(f"search by MPAN, 100 a page (200): {_percentiles(by_mpan)}")
    return out


def ingest_seconds(url: str, identity: Identity, count: int) -> float:
    """POST ``count`` IF-021 of the demo MPANs (the demo registry appoints their supplier) in one call."""
    with DipClient(url, identity) as client:
        body = orjson.dumps([{"payload": p} for p in sample_payloads(client, "IF-021", count, periods=24)])
        started = time.perf_counter()
        response = client.send_raw("IF-021", body)
        assert response.status_code == 201, response.text[:300]
        return time.perf_counter() - started


def run_retention_job(url: str) -> tuple[float, str]:
    """POST /admin/jobs/retention/run, then wait for the run to end: (its seconds, its result)."""
    import httpx

    headers = {"X-API-Key": ADMIN_KEY}
    before = httpx.get(f"{url}/admin/jobs", headers=headers).json()["jobs"][0]["lastRunAt"]
    httpx.post(f"{url}/admin/jobs/retention/run", headers=headers).raise_for_status()
    while True:
        job = httpx.get(f"{url}/admin/jobs", headers=headers).json()["jobs"][0]
        if job["lastRunAt"] != before and job["runningOn"] is None:
            result = str(job["lastResult"])
            return float(result.rsplit("(", 1)[1].split(" s)")[0]), result
        time.sleep(0.2)


def run(store_name: str, messages: int, days: int, work: Path, reuse: bool = False) -> list[str]:
    out = [f"{store_name}:"]
    full = 10_000_000 if store_name == "postgres" else 2_000_000
    purge_day = max(1000, 1_000_000 * messages // full)
    needed = (messages + purge_day) * BYTES_PER_MESSAGE * 2  # tables, indexes, WAL
    free = shutil.disk_usage(work).free
    if needed > free and not (reuse and store_name == "postgres"):
        fits = max(3_000_000, int(free / BYTES_PER_MESSAGE / 2) - purge_day)
        out.append(f"  disk: {free / 1e9:.0f} GB free, {needed / 1e9:.0f} GB wanted: loading {fits:,} instead")
        messages = fits
    now = int(time.time() * 1_000_000)
    if reuse and store_name == "postgres":
        # the archive a previous run loaded (its purge day not purged yet): measure again
        url = PG_URL.rsplit("/", 1)[0] + "/dip_bench_archive"
        size = _size(store_name, url, work)
        out.append(f"  the archive loaded before: {size / (messages + purge_day):,.0f} bytes a message on disk")

        async def expired_day() -> dict[str, Any]:  # the last run's was purged: a new one to purge
            store = open_store(url, work)
            await store.open()
            try:
                return await load(store, 0, days, purge_day, now, first=now // 1_000_000 * 1_000)
            finally:
                await store.close()

        loaded = asyncio.run(expired_day())
        out.append(f"  added an expired day of {loaded['loaded']:,} messages to purge")
    else:
        url = asyncio.run(fresh_database("dip_bench_archive")) if store_name == "postgres" else (
            f"sqlite:{work / 'archive.sqlite3'}")

        async def loading() -> dict[str, Any]:
            store = open_store(url, work)
            await store.open()
            try:
                return await load(store, messages, days, purge_day, now)
            finally:
                await store.close()

        loaded = asyncio.run(loading())
        size = _size(store_name, url, work)
        if loaded["partitions"]:
            out.append(f"  made {loaded['partitions']:,} partitions ({PARTITION_DAYS} days of the 730-day class, "
                       f"{SHORT_RETENTION + 6} of the short one, both tables) in {loaded['partitioning']:.0f} s")
        out.append(f"  loaded {loaded['loaded']:,} messages in {loaded['seconds']:.0f} s "
                   f"({loaded['loaded'] / loaded['seconds']:,.0f} msg/s); {size / loaded['loaded']:,.0f} bytes a "
                   "message on disk with indexes")
    print("\n".join(out), flush=True)
    out = []
    with dip_server(url, ["--retention-every-seconds", "86400", "--archive-rate-limit", "0"]) as dip:
        out += ["  " + line for line in measure(dip, messages, days, now)]
        with AdminClient(dip, ADMIN_KEY) as admin:
            sds = admin.onboard(SDS, ["SDS"])
        # the first batch also starts the validation workers and warms the schemas: the target
        # compares the purge with a warm ingest (the faster figure, so the stricter test)
        cold = ingest_seconds(dip, sds, 10_000)
        ten_k = ingest_seconds(dip, sds, 10_000)
        out.append(f"  ingest of 10,000 messages: {ten_k:.2f} s warm ({cold:.2f} s the first time)")
        rates: list[float] = []
        stop = threading.Event()

        def keep_sending() -> None:
            while not stop.is_set():
                rates.append(1_000 / ingest_seconds(dip, sds, 1_000))

        sender = threading.Thread(target=keep_sending)
        sender.start()
        seconds, result = run_retention_job(dip)
        stop.set()
        sender.join()
        out.append(f"  purge of one day by the DIP's retention job: {result} "
                   f"({'within' if seconds <= ten_k else 'over'} the 10,000-message ingest's {ten_k:.2f} s)")
        out.append(f"  ingest while purging: {statistics.median(rates) if rates else 0:,.0f} msg/s median over "
                   f"{len(rates)} batches of 1,000 (10,000 alone: {10_000 / ten_k:,.0f} msg/s)")

    async def settling() -> None:  # what this run ingested is not to be pushed by a later run either
        store = open_store(url, work)
        await store.open()
        try:
            await _all_delivered(store)
        finally:
            await store.close()

    asyncio.run(settling())
    return out


def _size(store_name: str, url: str, work: Path) -> int:
    if store_name != "postgres":
        return sum(p.stat().st_size for p in work.glob("archive.sqlite3*"))

    async def size() -> int:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()

    return asyncio.run(size())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--messages", help="per store, comma-separated (default 2,000,000 SQLite, 10,000,000 PG)")
    parser.add_argument("--days", type=int, default=30, help="the archive spans this many days")
    parser.add_argument("--keep", action="store_true",
                        help="keep SQLite's archive in ./.bench-archive/archive.sqlite3 (bench.e2e --database-url)")
    parser.add_argument("--reuse", action="store_true",
                        help="PostgreSQL: measure the archive the last run loaded (same --messages) instead of loading")
    args = parser.parse_args()
    stores = args.stores.split(",")
    sizes = [int(m) for m in args.messages.split(",")] if args.messages else [
        10_000_000 if s == "postgres" else 2_000_000 for s in stores]
    print(f"archive benchmark on {machine()}; {calibration()}", flush=True)
    for store_name, messages in zip(stores, sizes, strict=True):
        if args.keep:  # the SQLite archive stays in ./.bench-archive (PostgreSQL's database always does)
            work = Path(".bench-archive")
            work.mkdir(exist_ok=True)
            for line in run(store_name, messages, args.days, work, args.reuse):
                print(line, flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="dip-archive-") as temporary:
            for line in run(store_name, messages, args.days, Path(temporary), args.reuse):
                print(line, flush=True)


if __name__ == "__main__":
    main()
