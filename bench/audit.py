"""What the API activity log costs ingest (issue 17: at most 10% of ingest throughput).

Runs the same ingest against a real `dip serve` with the activity log on and off, alternating
(these machines drift), on a fresh database each run, for two shapes of traffic: large calls
(50,000 IF-021 messages, where the log writes one entry with a 15 MB answer to mask and compress)
and small ones (100 messages a call from several clients at once, where the log's cost per
request weighs most). Prints messages/s and the machine's CPU a message for each run, and the
median change.

    .venv/bin/python -m bench.audit [--rounds 3] [--stores postgres,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import orjson

from bench.common import admin, appoint, calibration, dip_server, fresh_database, machine, machine_cpu_seconds
from dip.tools.client import DipClient
from dip.tools.samples import sample_mpans, sample_payloads

SHAPES = {"large": (50_000, 4, 1), "small": (100, 1_200, 4)}  # messages a call, calls, clients at once


def run(store: str, shape: str, serve_args: list[str]) -> tuple[float, float]:
    """(messages/s, machine CPU µs a message) of one run (``serve_args`` for `dip serve`)."""
    size, calls, clients = SHAPES[shape]
    database_url = asyncio.run(fresh_database("dip_bench_audit")) if store == "postgres" else None
    with dip_server(database_url, serve_args) as url:
        sds = admin(url).onboard("1300000099", ["SDS"])
        kinds = min(calls, 8)  # distinct bodies (each with its own references, sent once)
        appoint(url, [sample_mpans(size, seed=b) for b in range(kinds)])
        bodies: list[bytes] = []
        with DipClient(url, sds) as maker:
            for c in range(calls):
                payloads = sample_payloads(maker, "IF-021", size, seed=c % kinds)
                bodies.append(orjson.dumps([{"payload": p} for p in payloads]))
        per_client = [bodies[i::clients] for i in range(clients)]

        def send(mine: list[bytes]) -> None:
            with DipClient(url, sds) as client:
                for body in mine:
                    response = client.send_raw("IF-021", body)
                    if response.status_code != 201:
                        raise SystemExit(f"unexpected {response.status_code}: {response.text[:300]}")

        if shape == "large":  # a warm-up call: the first starts the schema-check workers
            send([bodies.pop()])
            per_client = [bodies]
        sent = sum(len(b) for b in per_client) * size
        cpu = machine_cpu_seconds()
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, per_client))
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # the log's last flush (every 0.2 s) is counted too
        cpu = machine_cpu_seconds() - cpu
    return sent / elapsed, cpu / sent * 1e6


def compare(title: str, feature: str, with_it: list[str], without: list[str]) -> None:
    """Alternating runs with ``with_it`` and ``without`` (serve arguments), per store and shape,
    printing each run, each round's change and the medians (``feature`` names the difference)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--shapes", default="large,small")
    args = parser.parse_args()
    print(f"{title} on {machine()}; {calibration()}")
    for store in args.stores.split(","):
        for shape in args.shapes.split(","):
            size, calls, clients = SHAPES[shape]
            print(f"{store}, {shape} calls ({size} messages a call, {calls} calls, {clients} clients):")
            changes, cpu_changes = [], []
            for r in range(args.rounds):
                got = {}
                for on in ((True, False) if r % 2 == 0 else (False, True)):  # alternate which goes first
                    got[on] = run(store, shape, with_it if on else without)
                    rate, cpu = got[on]
                    print(f"  round {r + 1}, {feature} {'on ' if on else 'off'}: {rate:9,.0f} msg/s, "
                          f"machine CPU {cpu:6.1f} µs a message")
                changes.append((got[True][0] - got[False][0]) / got[False][0] * 100)
                cpu_changes.append((got[True][1] - got[False][1]) / got[False][1] * 100)
                print(f"  round {r + 1}: throughput {changes[-1]:+.1f}%, CPU a message {cpu_changes[-1]:+.1f}% "
                      f"with {feature}")
            print(f"  {store} {shape}: median throughput change {statistics.median(changes):+.1f}% "
                  f"(worst {min(changes):+.1f}%), CPU a message {statistics.median(cpu_changes):+.1f}% "
                  f"(worst {max(cpu_changes):+.1f}%)")


def main() -> None:
    compare("activity-log cost benchmark", "the log", [], ["--no-activity-log"])


if __name__ == "__main__":
    main()
