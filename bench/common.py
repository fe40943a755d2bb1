"""Shared pieces of the benchmarks: start a real `dip serve` process, on-board a sender, build batches."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from dip.tools.samples import sample_appointments
from dip.tools.testing import AdminClient, free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bench-admin-key"
PG_URL = os.environ.get("DIP_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f" {int(f.readline().split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{platform.machine()} {cpus} vCPU{mem}, {system}, Python {platform.python_version()}"


def calibration() -> str:
    """How fast this machine is at two fixed jobs, so runs on different machines can be compared:
    SHA-256 of a 64 MB buffer and a pure-Python loop (best of three each)."""
    import hashlib

    data = bytes(64 * 1024 * 1024)
    sha = []
    loop = []
    for _ in range(3):
        started = time.perf_counter()
        hashlib.sha256(data).digest()
        sha.append(time.perf_counter() - started)
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        loop.append(time.perf_counter() - started)
    return f"SHA-256 {64 / min(sha):,.0f} MB/s, Python loop {2 / min(loop):.1f} M iterations/s"


async def fresh_database(name: str) -> str:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@contextmanager
def dip_server(database_url: str | None = None, extra: list[str] | None = None) -> Iterator[str]:
    """Run `dip serve` in its own process (production settings: uvloop, httptools); yield its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dip-bench-") as data_dir:
        extra_serve = os.environ.get("DIP_BENCH_SERVE_ARGS", "").split()
        args = [sys.executable, "-m", "dip.tools.cli", "serve", "--port", str(port), "--data-dir", data_dir,
                "--log-level", os.environ.get("DIP_BENCH_LOG_LEVEL", "warning"), "--demo", *extra_serve]
        if database_url:
            args += ["--database-url", database_url]
        args += extra or []
        env = dict(os.environ, DIP_ADMIN_API_KEY=ADMIN_KEY)
        log = open(os.environ["DIP_BENCH_SERVER_LOG"], "w") if os.environ.get("DIP_BENCH_SERVER_LOG") else None  # noqa: SIM115
        proc = subprocess.Popen(args, env=env, stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        SERVER_PIDS[url] = proc.pid
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read() if proc.stdout else "dip serve exited")
            yield url
        finally:
            _stop(proc)
            if log is not None:
                log.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def delivery_node(database_url: str) -> Iterator[str]:
    """Run `dip serve --no-api` (a delivery node) on ``database_url``; yield a name for it in SERVER_PIDS."""
    args = [sys.executable, "-m", "dip.tools.cli", "serve", "--no-api", "--database-url", database_url,
            "--log-level", "warning", *os.environ.get("DIP_BENCH_SERVE_ARGS", "").split()]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    name = f"delivery-node-{proc.pid}"
    SERVER_PIDS[name] = proc.pid
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line says it is ready, or why it stopped
        if "ready" not in line:
            raise RuntimeError(f"the delivery node did not start: {line}{proc.stdout.read()}")
        out = proc.stdout
        # keep the pipe drained (a full pipe would stall the node); what it logs goes to stderr
        threading.Thread(target=lambda: [print(f"delivery node: {x}", end="", file=sys.stderr) for x in out],
                         daemon=True).start()
        yield name
    finally:
        _stop(proc)


SERVER_PIDS: dict[str, int] = {}  # URL -> pid of the `dip serve` process behind it


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _family(pid: int) -> list[int]:
    """The process and its children (the schema-check workers), whichever of its threads started them."""
    children = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return [pid, *children]


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (user, system, interrupts) since boot, in seconds."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU of one process so far (its threads included), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_by_part(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each part of the benchmark: ``parts`` names process trees (a pid
    and its children); PostgreSQL's server processes and everything else on the machine are
    added as "postgres" and "other"."""
    named = {pid: name for name, roots in parts.items() for root in roots for pid in _family(root)}
    totals = dict.fromkeys([*parts, "postgres", "other"], 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        name = named.get(pid)
        if name is None:
            name = "postgres" if _cmdline(pid).startswith(("postgres", "/usr/lib/postgresql")) else "other"
        totals[name] += _cpu_seconds(pid)
    return totals


def server_memory_mb(*urls: str) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of the DIP servers behind ``urls``, their worker processes included."""
    family = [pid for url in urls for pid in _family(SERVER_PIDS[url])]
    return (sum(_status_kb(p, "VmRSS") for p in family) / 1024, sum(_status_kb(p, "VmHWM") for p in family) / 1024)


def admin(url: str) -> AdminClient:
    return AdminClient(url, ADMIN_KEY)


DEMO_SUPPLIER = "1000000001"  # on-board in every `dip serve --demo`


def appoint(url: str, mpan_lists: list[list[str]], holders: dict[str, str] | None = None) -> None:
    """Appoint ``holders`` (default: the demo supplier as SUP) to every MPAN, so IF-021 messages
    for them are routed (by MPAN) to a secondary recipient as well as the always roles."""
    with admin(url) as operator:
        for mpans in mpan_lists:
            for start in range(0, len(mpans), 25_000):
                rows = sample_appointments(mpans[start:start + 25_000], holders or {"SUP": DEMO_SUPPLIER})
                operator.load_registry(rows).raise_for_status()
