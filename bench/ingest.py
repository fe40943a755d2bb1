"""Ingest benchmark: signed batches of 50,000 IF-021 messages (48 periods each) to a real DIP.

Prints messages/second from request start to the 201 for SQLite and PostgreSQL, with the
custom block checked against the channel's schema (the demo IF-021 schema).

    .venv/bin/python bench/ingest.py [--batches 5] [--size 50000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson

from bench.common import admin, appoint, calibration, dip_server, fresh_database, machine, server_memory_mb
from dip.tools.client import DipClient
from dip.tools.samples import sample_mpans, sample_payloads


def run(store: str, batches: int, size: int, workers: str | None) -> tuple[list[float], float]:
    """Messages/s of each batch, and the server's peak memory (MB, worker processes included)."""
    database_url = asyncio.run(fresh_database("dip_bench_ingest")) if store == "postgres" else None
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
            for body in bodies:
                started = time.perf_counter()
                response = client.send_raw("IF-021", body)
                elapsed = time.perf_counter() - started
                if response.status_code != 201:
                    raise SystemExit(f"unexpected {response.status_code}: {response.text[:500]}")
                rates.append(size / elapsed)
                print(f"    batch: {elapsed:6.2f} s  {size / elapsed:9,.0f} msg/s")
        peak = server_memory_mb(url)[1]
        print(f"  {store}: server peak memory {peak:,.0f} MB (RSS, with its worker processes)")
    return rates, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--validation-workers", default=None)
    args = parser.parse_args()
    print(f"ingest benchmark on {machine()}; {calibration()}")
    for store in args.stores.split(","):
        rates, _ = run(store, args.batches, args.size, args.validation_workers)
        print(f"  {store}: median {statistics.median(rates):,.0f} msg/s, best {max(rates):,.0f} msg/s "
              f"over {len(rates)} batches of {args.size}")


if __name__ == "__main__":
    main()
