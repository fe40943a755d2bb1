"""Ingest benchmark: signed batches of 50,000 IF-021 messages (48 periods each) to a real DIP.

Prints messages/second from request start to the 201 for SQLite and PostgreSQL, with the
custom block checked against the channel's schema (the demo IF-021 schema), and the CPU each
message cost: the whole machine's, and the DIP's and PostgreSQL's shares of it.

    .venv/bin/python bench/ingest.py [--batches 5] [--size 50000] [--stores sqlite,postgres]
    # on an archive (issue 16's budget: ingest within 10% of an empty database), PostgreSQL only:
    .venv/bin/python bench/ingest.py --stores postgres --database-url postgresql://.../dip_bench_archive
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson

from bench.common import (
    SERVER_PIDS,
    admin,
    appoint,
    calibration,
    cpu_by_part,
    dip_server,
    fresh_database,
    machine,
    machine_cpu_seconds,
    server_memory_mb,
)
from dip.tools.client import DipClient
from dip.tools.samples import sample_mpans, sample_payloads


def run(store: str, batches: int, size: int, workers: str | None,
        database_url: str | None = None) -> tuple[list[float], float]:
    """Messages/s of each batch, and the server's peak memory (MB, worker processes included)."""
    if database_url is None and store == "postgres":
        database_url = asyncio.run(fresh_database("dip_bench_ingest"))
    extra = ["--validation-workers", workers] if workers is not None else []
    with dip_server(database_url, extra) as url:
        sds = admin(url).onboard("1300000099", ["SDS"])
        appoint(url, [sample_mpans(size, seed=b) for b in range(batches)])
        rates = []
        with DipClient(url, sds) as client:
            bodies = []
            for b in range(batches):
                payloads = sample_payloads(client, "IF-021", size, seed=b)
                bodies.append(orjson.dumps([{"payload": p} for p in payloads]))
            print(f"  {store}: {size} messages per batch, {len(bodies[0]) / size:,.0f} bytes per message")
            parts = {"dip": [SERVER_PIDS[url]]}
            for body in bodies:
                cpu, by_part = machine_cpu_seconds(), cpu_by_part(parts)
                started = time.perf_counter()
                response = client.send_raw("IF-021", body)
                elapsed = time.perf_counter() - started
                cpu = machine_cpu_seconds() - cpu
                used = {k: (v - by_part[k]) / size * 1e6 for k, v in cpu_by_part(parts).items()}
                if response.status_code != 201:
                    raise SystemExit(f"unexpected {response.status_code}: {response.text[:500]}")
                rates.append(size / elapsed)
                print(f"    batch: {elapsed:6.2f} s  {size / elapsed:9,.0f} msg/s; "
                      f"machine CPU {cpu / size * 1e6:.0f} µs "
                      f"a message (DIP {used['dip']:.0f}, PostgreSQL {used['postgres']:.0f})")
        peak = server_memory_mb(url)[1]
        print(f"  {store}: server peak memory {peak:,.0f} MB (RSS, with its worker processes)")
    return rates, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--validation-workers", default=None)
    parser.add_argument("--database-url", help="PostgreSQL: ingest into this database (an archive) instead of an "
                                               "empty one")
    args = parser.parse_args()
    print(f"ingest benchmark on {machine()}; {calibration()}")
    for store in args.stores.split(","):
        rates, _ = run(store, args.batches, args.size, args.validation_workers,
                       args.database_url if store == "postgres" else None)
        print(f"  {store}: median {statistics.median(rates):,.0f} msg/s, best {max(rates):,.0f} msg/s "
              f"over {len(rates)} batches of {args.size}")


if __name__ == "__main__":
    main()
