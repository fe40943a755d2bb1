"""End-to-end benchmark: signed IF-021 batches in, webhook calls out, on SQLite and PostgreSQL.

Every message is routed to two recipients, an always role (MDS) and the supplier the MPAN
registry holds for the message's MPAN (SUP), whose webhooks are real HTTP servers in a process
of their own (bench/receiver.py). Two phases per store:

- **offered load**: batches of ``--batch`` messages sent on a fixed schedule adding up to
  ``--rate`` messages/s for ``--seconds``; latency from the sender's 201 to the last recipient's
  receipt (p50, p90, p99, max);
- **saturation**: ``--saturation-messages`` sent in batches of ``--saturation-batch`` by two
  senders as fast as the DIP takes them; throughput = messages delivered to both recipients per
  second from the first send to the last receipt.

    .venv/bin/python -m bench.e2e [--stores sqlite,postgres,postgres-2] [--rate 2000] [--seconds 20]

``postgres-2`` runs the DIP as two nodes on one PostgreSQL database, on the same machine: an API
node (``dip serve --no-delivery``), which the senders call, and a delivery node (``dip serve
--no-api``), which serves the webhooks (docs/operations.md, "Several nodes"). ``sqlite-2`` is the
same two processes on one SQLite file.

Messages are the official IF-021 layout of one settlement day (48 periods, ~4.5 KB), heavier
than the ~2.6 KB the targets assume; ``--periods 24`` sends messages of the targets' size (the
same layout, half a day of periods, ~2.7 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from bench.common import (
    DEMO_SUPPLIER,
    SERVER_PIDS,
    admin,
    appoint,
    calibration,
    cpu_by_part,
    delivery_node,
    dip_server,
    fresh_database,
    machine,
    machine_cpu_seconds,
    server_memory_mb,
)
from dip.tools.client import DipClient, Identity
from dip.tools.samples import sample_mpans, sample_payloads
from dip.tools.testing import free_port

SENDER = "1300000099"
DEMO_MDS = "1400000001"


@dataclass
class Phase:
    name: str
    sent_at: dict[str, float] = field(default_factory=dict)  # transaction ID -> 201 time
    started: float = 0.0
    finished_sending: float = 0.0
    refused: int = 0
    answer_ms: list[float] = field(default_factory=list)  # request start to the 201, per call


class Receivers:
    """The two recipients' webhooks, in a child process."""

    def __init__(self) -> None:
        self.ports = {"MDS": free_port(), "SUP": free_port()}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.receiver", *map(str, self.ports.values())],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("webhook receivers did not start")
        self._http = httpx.Client(timeout=120)

    def url(self, role: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}/hook"

    def counts(self) -> dict[str, int]:
        # one client for every poll: a new httpx client builds a TLS context (50-90 ms of CPU), and
        # the polls while the last deliveries arrive would count against the DIP's CPU per message
        return {role: self._http.get(f"http://127.0.0.1:{port}/count").json()["count"]
                for role, port in self.ports.items()}

    def results(self) -> dict[str, dict[str, list[float]]]:
        return {role: orjson.loads(self._http.get(f"http://127.0.0.1:{port}/results").content)["received"]
                for role, port in self.ports.items()}

    def close(self) -> None:
        self._http.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def build(client: DipClient, batches: int, size: int, first_seed: int, reuse: bool = False,
          periods: int = 48) -> list[bytes]:
    """Signed-ready bodies; with ``reuse`` one set of MPANs serves every batch (the soak runs long
    and its sender references are made unique when each batch is sent)."""
    if reuse and batches:
        payloads = sample_payloads(client, "IF-021", size, seed=first_seed, periods=periods)
        return [orjson.dumps([{"payload": p} for p in payloads])] * batches
    bodies = []
    for b in range(batches):
        payloads = sample_payloads(client, "IF-021", size, seed=first_seed + b, periods=periods)
        bodies.append(orjson.dumps([{"payload": p} for p in payloads]))
    return bodies


def send_all(url: str, identity: Identity, bodies: list[bytes], phase: Phase, interval: float | None,
             senders: int, resign: bool = False) -> None:
    """Send the bodies, each at its slot (``interval`` apart) or as fast as possible."""
    local = threading.local()
    lock = threading.Lock()

    def one(body: bytes, due: float) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = DipClient(url, identity)
        if resign:  # the same messages again: new sender references and a fresh timestamp
            body = _fresh(body)
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        started = time.time()
        response = client.send_raw("IF-021", body)
        at = time.time()
        if response.status_code not in (201, 207):
            raise SystemExit(f"unexpected {response.status_code}: {response.text[:500]}")
        entries = response.json()["messageArray"]
        with lock:
            phase.answer_ms.append((at - started) * 1000)
            for entry in entries:
                if entry["transactionID"]:
                    phase.sent_at[entry["transactionID"]] = at
                else:
                    phase.refused += 1

    phase.started = time.time()
    with ThreadPoolExecutor(senders) as pool:
        futures = [pool.submit(one, body, phase.started + (k * interval if interval else 0))
                   for k, body in enumerate(bodies)]
        for future in futures:
            future.result()
    phase.finished_sending = time.time()


_counter = iter(range(1, 1 << 62))
_counter_lock = threading.Lock()
_SUR = re.compile(rb'("senderUniqueReference":"[^"]*?)([0-9a-f]{8})"')
_STAMP = re.compile(rb'"senderTimestamp":"[^"]*"')


def _fresh(body: bytes) -> bytes:
    """The body with each sender reference's last 8 hex digits replaced by a new number."""
    def new_reference(match: re.Match[bytes]) -> bytes:
        with _counter_lock:
            n = next(_counter)
        return match.group(1) + f"{n:08x}"[-8:].encode() + b'"'

    stamp = b'"senderTimestamp":"' + datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00").encode() + b'"'
    return _STAMP.sub(stamp, _SUR.sub(new_reference, body))


def wait_delivered(receivers: Receivers, expected: dict[str, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = receivers.counts()
        if all(counts[role] >= n for role, n in expected.items()):
            return True
        time.sleep(0.2)
    return False


def report(phase: Phase, results: dict[str, dict[str, list[float]]]) -> dict[str, object]:
    """Print the phase's figures and return them (latencies in ms, sorted)."""
    latencies: list[float] = []
    last_receipt = 0.0
    missing = duplicates = 0
    for tid, sent in phase.sent_at.items():
        times = []
        for received in results.values():
            entry = received.get(tid)
            if entry is None:
                missing += 1
                continue
            times.append(entry[0])
            duplicates += int(entry[1]) - 1
        if len(times) == len(results):
            latencies.append(max(times) - sent)
            last_receipt = max(last_receipt, max(times))
    n = len(latencies)
    if not n:
        print(f"    {phase.name}: nothing delivered")
        return {"phase": phase.name, "delivered": 0}
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p * n))] * 1000

    span = last_receipt - phase.started
    sending = phase.finished_sending - phase.started
    print(f"    {phase.name}: {len(phase.sent_at):,} accepted ({phase.refused} refused) in {sending:.1f} s "
          f"({len(phase.sent_at) / sending:,.0f} msg/s offered); delivered to both recipients: {n:,} in "
          f"{span:.1f} s = {n / span:,.0f} msg/s")
    answers = sorted(phase.answer_ms)
    answer = {q: answers[min(len(answers) - 1, int(q * len(answers)))] for q in (0.5, 0.99)} if answers else {}
    if answers:
        print(f"      ingest: request to 201, per call of {len(phase.sent_at) // len(answers):,} messages: "
              f"p50 {answer[0.5]:.0f} ms, p99 {answer[0.99]:.0f} ms, max {answers[-1]:.0f} ms")
    mean = statistics.fmean(latencies) * 1000
    print(f"      latency 201 -> last webhook receipt: p50 {pct(0.5):.0f} ms, p90 {pct(0.9):.0f} ms, "
          f"p99 {pct(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms, mean {mean:.0f} ms;"
          f" missing {missing}, duplicate copies {duplicates}")
    return {
        "phase": phase.name, "accepted": len(phase.sent_at), "offered_rate": len(phase.sent_at) / sending,
        "delivered": n, "delivered_rate": n / span, "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
        "max": latencies[-1] * 1000, "missing": missing, "duplicates": duplicates,
        "latencies_ms": [x * 1000 for x in latencies],
        "answer_p50": answer.get(0.5, 0.0), "answer_p99": answer.get(0.99, 0.0),
    }


def run(store: str, args: argparse.Namespace) -> list[dict[str, object]]:
    """Both phases (or the soak) on one store; returns each phase's figures."""
    database_url: str | None = args.database_url or (
        asyncio.run(fresh_database("dip_bench_e2e")) if store.startswith("postgres") else None)
    receivers = Receivers()
    figures: list[dict[str, object]] = []
    try:
        with contextlib.ExitStack() as nodes:
            if store in ("postgres-2", "sqlite-2"):  # senders call the API node; the delivery node the webhooks
                if store == "sqlite-2" and not args.database_url:  # both processes open one SQLite file
                    database_url = f"sqlite:{nodes.enter_context(tempfile.TemporaryDirectory())}/dip.sqlite3"
                url = nodes.enter_context(dip_server(database_url, ["--no-delivery"]))
                urls = [url, nodes.enter_context(delivery_node(database_url))]
            else:
                url = nodes.enter_context(dip_server(database_url))
                urls = [url]
            with admin(url) as operator:
                sds = operator.onboard(SENDER, ["SDS"])
                mds = operator.onboard(DEMO_MDS, ["MDS"])
                sup = operator.onboard(DEMO_SUPPLIER, ["SUP"])
            for role, identity in (("MDS", mds), ("SUP", sup)):
                with DipClient(url, identity) as client:
                    assert client.register_webhook("IF-021", receivers.url(role)).status_code in (200, 201)
            seconds = args.soak or args.seconds
            fixed_batches = int(args.rate * seconds / args.batch)
            saturation_batches = 0 if args.soak else max(1, args.saturation_messages // args.saturation_batch)
            with DipClient(url, sds) as client:
                fixed = build(client, fixed_batches, args.batch, 0, reuse=bool(args.soak), periods=args.periods)
                saturation = build(client, saturation_batches, args.saturation_batch, 1000_000,
                                   periods=args.periods)
            mpans = [sample_mpans(args.batch, seed=b) for b in range(1 if args.soak else fixed_batches)]
            appoint(url, mpans + [sample_mpans(args.saturation_batch, seed=1000_000 + b)
                                  for b in range(saturation_batches)])
            size = len(fixed[0]) / args.batch if fixed else len(saturation[0]) / args.saturation_batch
            print(f"  {store}: {size:,.0f} bytes per message; recipients MDS (always) and SUP (by MPAN)")
            phases = [(Phase(f"offered {args.rate:,} msg/s"), fixed, args.batch / args.rate, 4)] if fixed else []
            if saturation:
                phases.append((Phase("saturation"), saturation, None, 2))
            parts = {"senders": [os.getpid()], "receivers": [receivers.proc.pid]}
            for n, node in enumerate(urls):
                parts["DIP" if len(urls) == 1 else ("API node", "delivery node")[n]] = [SERVER_PIDS[node]]
            delivered = 0
            for phase, bodies, interval, senders in phases:
                sampler = MemorySampler(urls, 10.0 if args.soak else 1.0)
                with sampler:
                    cpu, by_part = machine_cpu_seconds(), cpu_by_part(parts)
                    send_all(url, sds, bodies, phase, interval, senders, resign=bool(args.soak))
                    delivered += len(phase.sent_at)
                    if not wait_delivered(receivers, {"MDS": delivered, "SUP": delivered}, timeout=300):
                        print(f"    {phase.name}: not everything was delivered within 300 s: {receivers.counts()}")
                    cpu = machine_cpu_seconds() - cpu
                    by_part = {k: v - by_part[k] for k, v in cpu_by_part(parts).items()}
                result = report(phase, receivers.results())
                if phase.sent_at:  # senders, DIP, PostgreSQL and receivers: everything on the machine
                    result["cpu_us"] = cpu / len(phase.sent_at) * 1e6
                    print(f"      machine CPU: {cpu:.1f} s busy in all, {result['cpu_us']:.0f} µs per message")
                    by_part["other"] = max(0.0, cpu - sum(v for k, v in by_part.items() if k != "other"))
                    result["cpu_parts_us"] = {k: v / len(phase.sent_at) * 1e6 for k, v in by_part.items()}
                    print("        per message: " + ", ".join(f"{k} {v:.0f} µs"
                                                         for k, v in result["cpu_parts_us"].items()))
                result.update(store=store, size=size, memory=sampler.samples, peak_mb=server_memory_mb(*urls)[1])
                print(f"      server memory (RSS of every node, with its worker processes): peak "
                      f"{result['peak_mb']:,.0f} MB; {sampler.describe()}")
                figures.append(result)
    finally:
        receivers.close()
    return figures


class MemorySampler:
    """Samples the servers' resident memory every ``every`` seconds while the phase runs."""

    def __init__(self, urls: list[str], every: float) -> None:
        self.urls, self.every = urls, every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, server_memory_mb(*self.urls)[0]))
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        if len(self.samples) < 4:
            return f"{len(self.samples)} samples"
        quarter = max(1, len(self.samples) // 4)
        early = statistics.fmean(mb for _, mb in self.samples[quarter:2 * quarter])
        late = statistics.fmean(mb for _, mb in self.samples[-quarter:])
        return (f"RSS {early:,.0f} MB in the second quarter of the phase, {late:,.0f} MB in the last "
                f"({(late - early) / early:+.1%}) over {self.samples[-1][0]:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="sqlite,postgres,postgres-2",
                        help="sqlite, sqlite-2, postgres, postgres-2; -2: an API node and a delivery node "
                             "on one database")
    parser.add_argument("--rate", type=int, default=2000, help="offered load, messages/s")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=100, help="messages per call at the offered load")
    parser.add_argument("--saturation-messages", type=int, default=100_000)
    parser.add_argument("--saturation-batch", type=int, default=10_000)
    parser.add_argument("--periods", type=int, default=48,
                        help="half-hourly periods per IF-021 message: 48 (a whole day, ~4.5 KB) or, for the "
                             "issue's ~2.6 KB message, 24")
    parser.add_argument("--soak", type=float, default=0,
                        help="run only the offered load for this many seconds, sampling memory every 10 s")
    parser.add_argument("--database-url", help="run on this database instead of an empty one (postgresql://... "
                                               "or sqlite:PATH, e.g. an archive bench/archive.py --keep loaded)")
    args = parser.parse_args()
    print(f"end-to-end benchmark on {machine()}; {calibration()}")
    for store in args.stores.split(","):
        run(store, args)


if __name__ == "__main__":
    main()
