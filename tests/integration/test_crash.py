"""Crash and fault tests: `dip serve` killed with SIGKILL at random points under load, a recipient
that is down for a while, and PostgreSQL restarted under the DIP's feet.

What is proven is what a participant relies on:

- every acknowledged message (201, or the accepted items of a 207) is stored and is delivered at
  least once to each of its recipients, carrying the transaction ID it was acknowledged with;
- nothing unacknowledged is half-stored: a batch whose answer never arrived is either wholly in
  the store or wholly absent (its messages are found by the batch's sender unique references),
  and every stored message has one delivery row per recipient;
- per recipient, the first arrival of each message follows acceptance order (one sender that waits
  for each answer before sending its next batch: acceptance order is send order);
- a message that expires is dead-lettered exactly once and its sender's status webhook is told,
  even when the node died in the middle of moving it.

The kill points are drawn from ``random.Random(seed)``; the seed is printed at the start of each
test and named in every assertion message. ``DIP_CRASH_SEED=<seed>`` repeats a run's random
choices (where the kill lands still depends on timing, so the choices are a repeatable recipe,
not a recording).

SQLite runs one node whose data directory is reused by the restarted node; PostgreSQL runs one
node whose database is reused. The restarted node waits out the dead node's leases (2 s here)
before it serves the queues the dead node held.

The PostgreSQL restart is a real one (``pg_ctlcluster ... restart`` in immediate mode: the
server crashes and recovers from its WAL) when the tests run as root on the machine that hosts
the cluster, as in CI; elsewhere every backend of the test database is terminated instead. Either
way the test waits until the server accepts connections again before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from dip.config import Settings
from dip.store import MessageRow, Store
from dip.tools.client import DipClient, Identity
from dip.tools.testing import ADMIN_KEY, AdminClient, RecordedCall, RunningDip, WebhookReceiver, free_port
from tests.helpers import MDS, SDS, SUP, consumption, in_store, items, onboard_all, with_store

RECIPIENTS = (MDS, SUP)  # IF-021 from SDS: MDS always, SUP as the MPANs' appointed supplier
DIP_COMMAND = Path(sys.executable).with_name("dip")  # .venv/bin/dip
# A 1 s webhook timeout makes every lease 2 s (lease = max(--delivery-lease-seconds, timeout + 1)):
# that is how long a restarted node waits before it serves a queue the killed node held.
NODE_OPTIONS = ("--delivery-poll-seconds", "0.05", "--retry-initial-seconds", "0.1", "--retry-max-seconds", "0.3",
                "--webhook-timeout-seconds", "1", "--delivery-lease-seconds", "1")
SETTLE_TIMEOUT = 40.0  # seconds for a restarted node to deliver everything (leases, backlog, a busy machine)


# -- seeds and waiting ---------------------------------------------------------------------------


@contextlib.contextmanager
def crash_seed(scenario: str) -> Iterator[tuple[int, random.Random]]:
    """The run's seed (DIP_CRASH_SEED, else a fresh one) and a generator drawn from it; any failure
    inside names the seed."""
    seed = int(os.environ.get("DIP_CRASH_SEED") or secrets.randbits(32))
    print(f"{scenario}: crash seed {seed}")
    try:
        yield seed, random.Random(seed)
    except BaseException as exc:
        exc.add_note(f"{scenario}: crash seed {seed} (DIP_CRASH_SEED={seed} repeats the random choices)")
        raise


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what()}")
        time.sleep(0.05)


# -- the store, read from outside the node -----------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    id: int
    queue: str
    transaction_id: str
    recipient_id: str
    kind: str
    state: str
    body: bytes | None


@dataclass(frozen=True)
class Snapshot:
    """Every message (transaction ID -> sender, sender unique reference) and every delivery row."""

    messages: dict[str, tuple[str, str]]
    deliveries: list[Delivery]

    def by_sur(self, sender: str) -> dict[str, str]:
        return {sur: tid for tid, (who, sur) in self.messages.items() if who == sender}

    def publications(self) -> dict[tuple[str, str], list[Delivery]]:
        """(transaction ID, recipient) -> its publication delivery rows."""
        rows: dict[tuple[str, str], list[Delivery]] = {}
        for d in self.deliveries:
            if d.kind != "status":
                rows.setdefault((d.transaction_id, d.recipient_id), []).append(d)
        return rows

    def states(self, recipient: str, transactions: Sequence[str]) -> Counter[str]:
        rows = self.publications()
        return Counter(",".join(d.state for d in rows.get((t, recipient), [])) or "none" for t in transactions)


MESSAGES_SQL = "SELECT transaction_id, sender_id, sur FROM messages"
DELIVERIES_SQL = "SELECT id, queue, transaction_id, recipient_id, kind, state, body FROM delivery_status ORDER BY id"


def snapshot(database_url: str | None, data_dir: Path) -> Snapshot:
    """What the store holds now (SQLite under ``data_dir`` when ``database_url`` is None)."""
    if database_url is None:
        conn = sqlite3.connect(data_dir / "dip.sqlite3", timeout=10)
        try:
            messages = conn.execute(MESSAGES_SQL).fetchall()
            deliveries = conn.execute(DELIVERIES_SQL).fetchall()
        finally:
            conn.close()
    else:
        async def fetch() -> tuple[list[Any], list[Any]]:
            pg = await asyncpg.connect(database_url)
            try:
                return list(await pg.fetch(MESSAGES_SQL)), list(await pg.fetch(DELIVERIES_SQL))
            finally:
                await pg.close()

        messages, deliveries = asyncio.run(fetch())
    return Snapshot(
        {str(r[0]): (str(r[1]), str(r[2])) for r in messages},
        [Delivery(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                  None if r[6] is None else bytes(r[6])) for r in deliveries],
    )


# -- the sender ----------------------------------------------------------------------------------


@dataclass
class Batch:
    surs: list[str]
    sent: float  # time.monotonic()
    answered: float | None = None
    status: int | None = None  # None: no answer (the node died, or the connection failed)
    error: str | None = None
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (SUR, transaction ID) acknowledged

    @property
    def acknowledged(self) -> bool:
        return self.status in (201, 207)

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else f"no answer ({self.error})"


class Load:
    """One sender posting IF-021 batches back to back from a thread; each batch goes only after the
    previous one's answer, so acceptance order is send order. Stops at the first connection
    failure (the node is gone), after ``max_batches``, or when stopped; with ``tolerate_503`` a 503
    is recorded and the next batch follows after a short pause."""

    def __init__(self, url: str, sender: Identity, rng: random.Random, sizes: tuple[int, int],
                 pause: float = 0.0, max_batches: int | None = None, tolerate_503: bool = False,
                 timeout: float = 30.0) -> None:
        self.url = url
        self.sender = sender
        self.rng = random.Random(rng.random())  # its own stream: the test's draws do not depend on thread timing
        self.sizes = sizes
        self.pause = pause
        self.max_batches = max_batches
        self.tolerate_503 = tolerate_503
        self.timeout = timeout
        self.batches: list[Batch] = []
        self.problems: list[str] = []
        self.ended = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the sender did not finish within {timeout} s"

    def wait(self, condition: Callable[[list[Batch]], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.batches) or self.ended, timeout):
                raise AssertionError(f"not within {timeout} s: {what}; batches {[b.describe() for b in self.batches]}")
            if not condition(self.batches):
                raise AssertionError(f"the sender stopped before {what}: {self.problems}, "
                                     f"batches {[b.describe() for b in self.batches]}")

    def acknowledged(self) -> list[Batch]:
        with self._changed:
            return [b for b in self.batches if b.acknowledged]

    def _record(self, batch: Batch, **outcome: Any) -> None:
        with self._changed:
            for name, value in outcome.items():
                setattr(batch, name, value)
            batch.answered = time.monotonic()
            self._changed.notify_all()

    def _run(self) -> None:
        try:
            with DipClient(self.url, self.sender, timeout=self.timeout) as client:
                while not self._stop.is_set() and (self.max_batches is None or len(self.batches) < self.max_batches):
                    payloads = consumption(client, self.rng.randint(*self.sizes))
                    batch = Batch([p["CommonBlock"]["S1"]["senderUniqueReference"] for p in payloads],
                                  time.monotonic())
                    with self._changed:
                        self.batches.append(batch)
                        self._changed.notify_all()
                    try:
                        response = client.send("IF-021", payloads)
                    except TimeoutError as exc:
                        self.problems.append(f"no answer within {self.timeout} s: the DIP hung ({exc})")
                        self._record(batch, error=f"timeout: {exc}")
                        return
                    except (OSError, http.client.HTTPException) as exc:
                        self._record(batch, error=f"{type(exc).__name__}: {exc}")
                        return
                    if response.status_code in (201, 207):
                        accepted = [(e["senderUniqueReference"], e["transactionID"]) for e in items(response)
                                    if e["transactionID"]]
                        self._record(batch, status=response.status_code, accepted=accepted)
                        if response.status_code == 201 and len(accepted) != len(batch.surs):
                            self.problems.append(f"a 201 acknowledged {len(accepted)} of {len(batch.surs)}")
                    else:
                        self._record(batch, status=response.status_code)
                        if not (response.status_code == 503 and self.tolerate_503):
                            self.problems.append(f"HTTP {response.status_code}: {response.text[:500]}")
                            return
                        self._stop.wait(0.05)
                        continue
                    if self.pause:
                        self._stop.wait(self.pause)
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()


# -- nodes ----------------------------------------------------------------------------------------


class Node:
    """`dip serve` as a process of its own, restartable on the same data directory and database."""

    def __init__(self, tmp_path: Path, database_url: str | None, *options: str) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "node"
        self.database_url = database_url
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.logs: list[Path] = []

    def start(self) -> Node:
        assert self.proc is None or self.proc.poll() is not None
        port = free_port()
        log = self.tmp_path / f"node-{len(self.logs) + 1}.log"
        self.logs.append(log)
        args = [str(DIP_COMMAND), "serve", "--port", str(port), "--data-dir", str(self.data_dir),
                "--validation-workers", "0", "--log-level", "warning", *self.options]
        if self.database_url is not None:
            args += ["--database-url", self.database_url]
        env = {**os.environ, "DIP_ADMIN_API_KEY": ADMIN_KEY}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{port}"
        proc = self.proc
        wait_until(lambda: "DIP ready on" in log.read_text(errors="replace") or proc.poll() is not None, 60,
                   lambda: f"dip serve did not start:\n{self.output()}")
        assert proc.poll() is None, f"dip serve exited with {proc.returncode}:\n{self.output()}"
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> float:
        """SIGKILL: no shutdown, no settling, no goodbye. Returns when it happened (time.monotonic())."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        self.proc.wait(timeout=10)
        return killed_at

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)

    def snapshot(self) -> Snapshot:
        return snapshot(self.database_url, self.data_dir)


@contextlib.contextmanager
def running(node: Node) -> Iterator[Node]:
    try:
        yield node.start()
    finally:
        node.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (under the node's data dir, reused across restarts), else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    return url


def set_up(url: str, hooks: dict[str, WebhookReceiver], max_message_count: int,
           status_hook: WebhookReceiver | None = None) -> dict[str, Identity]:
    """The usual cast on board, MDS's and SUP's IF-021 webhooks (and SDS's status webhook) registered."""
    with AdminClient(url, ADMIN_KEY) as admin:
        cast = onboard_all(admin)
    for role, recipient in (("MDS", MDS), ("SUP", SUP)):
        with DipClient(url, cast[role]) as client:
            response = client.register_webhook("IF-021", hooks[recipient].url, max_message_count=max_message_count)
        assert response.status_code == 201, response.text
    if status_hook is not None:
        with DipClient(url, cast["SDS"]) as client:
            response = client.register_webhook(None, status_hook.url)
        assert response.status_code == 201, response.text
    return cast


# -- what the recipients saw ---------------------------------------------------------------------


def transactions_in(calls: Sequence[RecordedCall]) -> list[str]:
    """The D0 transaction IDs the calls carried, in arrival order."""
    return [message["payload"]["CommonBlock"]["D0"]["transactionID"] for call in calls for message in call.json]


def first_arrivals(calls: Sequence[RecordedCall]) -> list[str]:
    return list(dict.fromkeys(transactions_in(calls)))


def status_entries(calls: Sequence[RecordedCall]) -> list[dict[str, Any]]:
    return [entry for call in calls for entry in call.json]


# -- the checks ----------------------------------------------------------------------------------


def check_store(seed: int, batches: Sequence[Batch], snap: Snapshot) -> list[str]:
    """Acknowledged means stored, with the acknowledged transaction ID; an unanswered batch is wholly
    stored or wholly absent; every stored message has exactly one delivery per recipient; nothing
    else is stored. Returns the stored messages' transaction IDs in acceptance order."""
    by_sur = snap.by_sur(SDS)
    problems: list[str] = []
    order: list[str] = []
    for i, batch in enumerate(batches):
        stored = [sur for sur in batch.surs if sur in by_sur]
        if batch.acknowledged:
            for sur, tid in batch.accepted:
                if by_sur.get(sur) != tid:
                    problems.append(f"batch {i}: {tid} ({sur}) was acknowledged; the store has {by_sur.get(sur)}")
            acked = {sur for sur, _ in batch.accepted}
            stored_unacked = [sur for sur in stored if sur not in acked]
            if stored_unacked:
                problems.append(f"batch {i}: {len(stored_unacked)} message(s) the 207 did not accept are stored")
        elif stored and len(stored) != len(batch.surs):
            problems.append(f"batch {i} ({batch.describe()}) is half-stored: {len(stored)} of {len(batch.surs)}")
        order += [by_sur[sur] for sur in batch.surs if sur in by_sur]
    strays = set(snap.messages) - set(order)
    if strays:
        problems.append(f"{len(strays)} stored message(s) were never sent, e.g. {sorted(strays)[:3]}")
    publications = snap.publications()
    for tid in order:
        for recipient in RECIPIENTS:
            rows = publications.get((tid, recipient), [])
            if len(rows) != 1:
                problems.append(f"{tid} has {len(rows)} delivery row(s) for {recipient}")
    others = {recipient for _, recipient in publications} - set(RECIPIENTS)
    if others:
        problems.append(f"deliveries to unexpected recipients {others}")
    assert not problems, f"[seed {seed}] {len(problems)} problem(s): " + "; ".join(problems[:8])
    return order


def check_acknowledged_readable(seed: int, node: Node, batches: Sequence[Batch]) -> None:
    """Every acknowledged message, read back through the DIP's own store code."""
    acked = [tid for batch in batches for _, tid in batch.accepted]

    async def query(store: Store) -> tuple[int, list[MessageRow | None]]:
        return await store.count_messages(), [await store.get_message(t) for t in acked]

    count, rows = with_store(node.database_url, node.data_dir, query)
    missing = [t for t, row in zip(acked, rows, strict=True) if row is None or row.sender_id != SDS]
    assert not missing, f"[seed {seed}] {len(missing)} acknowledged message(s) not in the store, e.g. {missing[:3]}"
    assert count >= len(acked), f"[seed {seed}] count_messages {count} < {len(acked)} acknowledged"


def check_arrivals(seed: int, who: str, calls: Sequence[RecordedCall], order: Sequence[str],
                   snap: Snapshot) -> None:
    """Everything arrived with its original transaction ID (and its own sender reference), first
    arrivals in acceptance order."""
    firsts = first_arrivals(calls)
    missing = set(order) - set(firsts)
    assert not missing, f"[seed {seed}] {len(missing)} message(s) never reached {who}, e.g. {sorted(missing)[:3]}"
    unknown = set(firsts) - set(order)
    assert not unknown, f"[seed {seed}] {who} got transaction IDs that were never stored: {sorted(unknown)[:3]}"
    if firsts != list(order):
        at = next(i for i, (a, b) in enumerate(zip(firsts, order, strict=True)) if a != b)
        raise AssertionError(f"[seed {seed}] {who}: first arrivals leave acceptance order at position {at} of "
                             f"{len(order)}: got {firsts[at:at + 3]}, expected {list(order[at:at + 3])}")
    for call in calls:
        for message in call.json:
            tid = message["payload"]["CommonBlock"]["D0"]["transactionID"]
            sur = message["payload"]["CommonBlock"]["S1"]["senderUniqueReference"]
            assert snap.messages[tid] == (SDS, sur), f"[seed {seed}] {who} got {tid} with another message's body"


def wait_all(seed: int, node: Node, order: Sequence[str], wanted: dict[str, str],
             received: Callable[[], bool], settled: Callable[[Snapshot], bool] = lambda snap: True,
             describe: Callable[[], str] = lambda: "", timeout: float = SETTLE_TIMEOUT) -> Snapshot:
    """Wait until every message's delivery to each recipient is in the wanted state, ``received()``
    (what the webhooks got) and ``settled(snapshot)``; return the last snapshot."""
    latest: list[Snapshot] = []

    def done() -> bool:
        got = received()
        snap = node.snapshot()
        latest[:] = [snap]
        return got and settled(snap) and all(snap.states(r, order) == Counter({state: len(order)})
                                             for r, state in wanted.items())

    def progress() -> str:
        states = {r: dict(latest[0].states(r, order)) for r in wanted} if latest else "?"
        return (f"[seed {seed}] {len(order)} messages; delivery states {states}; the webhooks got everything: "
                f"{received()}; settled: {settled(latest[0]) if latest else '?'} {describe()}\n{node.output()}")

    wait_until(done, timeout, progress)
    return latest[0]


def arrived(hook: WebhookReceiver, order: Sequence[str]) -> Callable[[], bool]:
    wanted = set(order)
    return lambda: wanted <= set(transactions_in(hook.calls))


# -- 1. SIGKILL under load ------------------------------------------------------------------------

KILLS = 2  # kill and restart cycles in the ingest test: each is cheap, and each is another random point


def test_killed_during_ingest_loses_nothing_acknowledged_and_half_stores_nothing(
    store_url: str | None, tmp_path: Path,
) -> None:
    with crash_seed("kill during ingest") as (seed, rng), contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        node = stack.enter_context(running(Node(tmp_path, store_url, *NODE_OPTIONS)))
        cast = set_up(node.url, hooks, max_message_count=50)

        batches: list[Batch] = []
        for cycle in range(1, KILLS + 1):
            load = Load(node.url, cast["SDS"], rng, sizes=(20, 100)).start()
            acknowledged = rng.randint(2, 6)
            load.wait(lambda b, n=acknowledged: sum(x.acknowledged for x in b) >= n, 30,
                      f"{acknowledged} batches acknowledged")
            took = [b.answered - b.sent for b in load.acknowledged() if b.answered is not None]
            load.wait(lambda b: b[-1].answered is None, 10, "a batch in flight")
            time.sleep(rng.uniform(0, 1.5 * sum(took) / len(took)))  # the kill point: somewhere in that batch's life
            node.kill()
            load.join(30)
            assert not load.problems, f"[seed {seed}] {load.problems}"
            unanswered = [b for b in load.batches if not b.acknowledged]
            assert len(unanswered) <= 1 and all(b.status is None for b in unanswered), \
                f"[seed {seed}] {[b.describe() for b in load.batches]}"
            batches += load.batches

            # straight after the crash, before anything runs again
            crashed = node.snapshot()
            check_store(seed, batches, crashed)
            check_acknowledged_readable(seed, node, batches)
            if unanswered:
                fate = "wholly stored" if unanswered[0].surs[0] in crashed.by_sur(SDS) else "wholly absent"
                print(f"[seed {seed}] kill {cycle}: the batch in flight ({len(unanswered[0].surs)} messages) is {fate}")
            node.start()  # the same data dir / database

        # the restarted node accepts more, and delivers everything
        more = Load(node.url, cast["SDS"], rng, sizes=(5, 20), max_batches=2).start()
        more.join(30)
        assert not more.problems and all(b.status == 201 for b in more.batches), f"[seed {seed}] {more.problems}"
        batches += more.batches
        order = check_store(seed, batches, node.snapshot())
        final = wait_all(seed, node, order, {r: "delivered" for r in RECIPIENTS},
                         lambda: all(arrived(hook, order)() for hook in hooks.values()))
        assert check_store(seed, batches, final) == order
        for recipient, hook in hooks.items():
            check_arrivals(seed, recipient, hook.calls, order, final)


def test_killed_during_delivery_redelivers_in_order_with_the_same_transaction_ids(
    store_url: str | None, tmp_path: Path,
) -> None:
    delay = 0.15  # slow recipients: each call is in flight this long
    with crash_seed("kill during delivery") as (seed, rng), contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        for hook in hooks.values():
            hook.always(201, delay=delay)
        node = stack.enter_context(running(Node(tmp_path, store_url, *NODE_OPTIONS)))
        cast = set_up(node.url, hooks, max_message_count=15)

        load = Load(node.url, cast["SDS"], rng, sizes=(10, 30), pause=0.05).start()
        victim, calls = rng.choice(RECIPIENTS), rng.randint(2, 6)
        hooks[victim].wait_for(lambda c: len(c) >= calls, timeout=30)  # its latest call has just arrived
        time.sleep(rng.uniform(0, 0.8 * delay))  # the kill point: while that call waits for its answer
        killed_at = node.kill()
        load.join(30)
        assert not load.problems, f"[seed {seed}] {load.problems}"
        # calls that may not have been settled when the node died (generous: a busy machine settles late)
        in_flight = {r: [c for c in hook.calls if c.at > killed_at - delay - 2.0] for r, hook in hooks.items()}
        crashed = node.snapshot()
        check_store(seed, load.batches, crashed)
        check_acknowledged_readable(seed, node, load.batches)
        pending = Counter(d.recipient_id for d in crashed.deliveries if d.state == "pending")
        print(f"[seed {seed}] killed with a call to {victim} in flight; still pending: {dict(pending)}")

        node.start()
        more = Load(node.url, cast["SDS"], rng, sizes=(5, 20), max_batches=2).start()
        more.join(30)
        assert not more.problems and all(b.status == 201 for b in more.batches), f"[seed {seed}] {more.problems}"
        batches = load.batches + more.batches
        order = check_store(seed, batches, node.snapshot())
        final = wait_all(seed, node, order, {r: "delivered" for r in RECIPIENTS},
                         lambda: all(arrived(hook, order)() for hook in hooks.values()))
        for recipient, hook in hooks.items():
            check_arrivals(seed, recipient, hook.calls, order, final)
            # at least once, and no more than needed: only what was in flight when the node died comes twice
            twice = {t for t, n in Counter(transactions_in(hook.calls)).items() if n > 1}
            allowed = set(transactions_in(in_flight[recipient]))
            assert twice <= allowed, f"[seed {seed}] {recipient} got {len(twice - allowed)} message(s) twice " \
                                     f"that were not in flight at the kill, e.g. {sorted(twice - allowed)[:3]}"


def test_killed_during_dead_lettering_moves_each_message_once_and_tells_the_sender(
    store_url: str | None, tmp_path: Path,
) -> None:
    # Messages expire 5 s after acceptance. The status messages telling the sender are deliveries
    # too, with the same deadline, so the restart (start-up plus at most one 1.5 s lease) must take
    # less than that: it does, with room to spare.
    ttl = 5.0
    options = (*NODE_OPTIONS[:6], "--webhook-timeout-seconds", "0.5", "--delivery-lease-seconds", "1",
               "--dead-letter-after-seconds", str(ttl))
    with crash_seed("kill during dead-letter moves") as (seed, rng), contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        hooks[MDS].always(503)  # MDS never takes anything: every message to it expires
        status_hook = stack.enter_context(WebhookReceiver())
        node = stack.enter_context(running(Node(tmp_path, store_url, *options)))
        cast = set_up(node.url, hooks, max_message_count=10, status_hook=status_hook)

        load = Load(node.url, cast["SDS"], rng, sizes=(5, 15), pause=0.2, max_batches=12).start()
        load.join(30)
        assert not load.problems and all(b.status == 201 for b in load.batches), f"[seed {seed}] {load.problems}"
        # moves run from ttl after the first batch until ttl after the last: kill somewhere among them
        status_hook.wait_for(lambda calls: len(calls) >= 1, timeout=ttl + 20)
        time.sleep(rng.uniform(0, 0.8 * (load.batches[-1].sent - load.batches[0].sent)))
        node.kill()
        crashed = node.snapshot()
        order = check_store(seed, load.batches, crashed)
        check_acknowledged_readable(seed, node, load.batches)
        print(f"[seed {seed}] killed with {crashed.states(MDS, order)['dead']} of {len(order)} messages to MDS "
              "dead-lettered")

        node.start()

        def told() -> set[str]:
            return {e["transactionID"] for e in status_entries(status_hook.calls) if "dead-lettered" in e["help"]}

        def status_settled(snap: Snapshot) -> bool:
            return all(d.state != "pending" for d in snap.deliveries if d.kind == "status")

        final = wait_all(seed, node, order, {MDS: "dead", SUP: "delivered"},
                         lambda: arrived(hooks[SUP], order)() and set(order) <= told(), status_settled,
                         lambda: f"; the sender was told about {len(told())} of them")
        assert check_store(seed, load.batches, final) == order
        check_arrivals(seed, SUP, hooks[SUP].calls, order, final)
        # exactly once: one status message per expired message in the store, each delivered
        status_rows = Counter(d.transaction_id for d in final.deliveries if d.kind == "status")
        assert status_rows == Counter(set(order)), f"[seed {seed}] status messages per message: " \
            f"{Counter(status_rows.values())} (expected one each)"
        assert all(d.recipient_id == SDS and d.state == "delivered" and d.body is not None
                   and b"dead-lettered" in d.body for d in final.deliveries if d.kind == "status"), \
            f"[seed {seed}] status deliveries {Counter((d.recipient_id, d.state) for d in final.deliveries)}"
        # the sender was told, about MDS only (SUP got everything)
        assert told() == set(order)
        assert all(e["help"].startswith(f"{MDS} ") for e in status_entries(status_hook.calls)), \
            f"[seed {seed}] {status_entries(status_hook.calls)[:2]}"


# -- 2. a recipient down for a while -------------------------------------------------------------


def test_a_recipient_down_for_a_while_receives_everything_in_order_when_back(
    dip_factory: Callable[..., RunningDip],
) -> None:
    dip = dip_factory(delivery_poll_seconds=0.05, retry_initial_seconds=0.05, retry_max_seconds=0.4)
    refused_attempts, mds_failures, sup_failures = 4, 2, 6
    with contextlib.ExitStack() as stack:
        mds_hook = WebhookReceiver()  # its port is chosen, but nothing listens there yet: connections refused
        sup_hook = stack.enter_context(WebhookReceiver())
        sup_hook.respond(503, times=sup_failures)  # SUP's endpoint answers 503 for a while
        hooks = {MDS: mds_hook, SUP: sup_hook}
        cast = set_up(dip.url, hooks, max_message_count=7)

        def send(n: int) -> list[str]:
            with DipClient(dip.url, cast["SDS"]) as client:
                response = client.send("IF-021", consumption(client, n))
            assert response.status_code == 201, response.text
            return [entry["transactionID"] for entry in items(response)]

        order = [t for _ in range(4) for t in send(15)]

        def head_attempts() -> int:
            pending = in_store(dip, lambda store: store.pending(f"{MDS}|IF-021", 1))
            return pending[0].attempts if pending else 0

        wait_until(lambda: head_attempts() >= refused_attempts, 20, lambda: f"MDS head attempts {head_attempts()}")
        mds_hook.respond(503, times=mds_failures)  # back, but failing twice before it recovers
        stack.enter_context(mds_hook)
        order += [t for _ in range(2) for t in send(10)]

        for hook in hooks.values():
            hook.wait_for(lambda calls: set(order) <= set(transactions_in(calls)), timeout=30)
        deadline = time.monotonic() + 15
        while True:
            found = {(s[0], s[1]): s[4] for s in in_store(dip, lambda store: store.delivery_states(order))
                     if s[3] != "status"}
            if all(found.get((t, r)) == "delivered" for t in order for r in RECIPIENTS):
                break
            assert time.monotonic() < deadline, Counter(found.values())
            time.sleep(0.05)

        for recipient, failures in ((MDS, mds_failures), (SUP, sup_failures)):
            calls = hooks[recipient].calls
            failed, answered = calls[:failures], calls[failures:]
            # while it failed, each call carried the head of its queue, in order
            for call in failed:
                carried = transactions_in([call])
                assert carried == order[:len(carried)], f"{recipient}: a failed call did not carry the queue's head"
            # back: everything, in acceptance order, exactly once (nothing crashed)
            assert transactions_in(answered) == order, f"{recipient} got {len(transactions_in(answered))} of " \
                f"{len(order)}, or out of order"
            assert all(len(call.json) <= 7 for call in calls)


# -- 3. PostgreSQL restarted under load --------------------------------------------------------------


def restart_postgres(database_url: str) -> str:
    """Restart the PostgreSQL server the tests use, with an immediate shutdown (a crash: the
    restart recovers from the WAL), when this machine allows it: a local cluster, pg_ctlcluster,
    root. Otherwise end every backend of the test database. Returns what was done."""
    parts = urlsplit(database_url)
    port = str(parts.port or 5432)
    ctl, lsclusters = shutil.which("pg_ctlcluster"), shutil.which("pg_lsclusters")
    if parts.hostname in ("127.0.0.1", "localhost", "::1") and ctl and lsclusters and os.geteuid() == 0:
        listing = subprocess.run([lsclusters, "--no-header"], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] == port and fields[3].startswith("online"):
                version, cluster = fields[0], fields[1]
                done = subprocess.run([ctl, "--skip-systemctl-redirect", "-m", "immediate", version, cluster,
                                       "restart"], capture_output=True, text=True, timeout=120, check=False)
                assert done.returncode == 0, f"pg_ctlcluster restart failed: {done.stdout}{done.stderr}"
                return f"restarted PostgreSQL {version}/{cluster} (immediate shutdown, then crash recovery)"

    async def terminate() -> None:
        conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1"
                               " AND pid <> pg_backend_pid()", database_url.rsplit("/", 1)[1])
        finally:
            await conn.close()

    asyncio.run(terminate())
    return "could not restart PostgreSQL here: terminated every backend of the test database instead"


def wait_postgres(database_url: str, timeout: float = 60) -> None:
    async def accepts() -> bool:
        try:
            conn = await asyncpg.connect(database_url, timeout=2)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        await conn.close()
        return True

    wait_until(lambda: asyncio.run(accepts()), timeout, lambda: "PostgreSQL accepts connections again")


@pytest.mark.serial  # restarts the server every other test's database lives on
def test_postgres_restarted_under_load_answers_201_or_503_and_loses_nothing(pg_database: str, tmp_path: Path) -> None:
    with crash_seed("PostgreSQL restart") as (seed, rng), contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        for hook in hooks.values():
            hook.always(201, delay=0.02)
        node = stack.enter_context(running(Node(tmp_path, pg_database, *NODE_OPTIONS)))
        cast = set_up(node.url, hooks, max_message_count=50)

        load = Load(node.url, cast["SDS"], rng, sizes=(10, 60), tolerate_503=True, timeout=30).start()
        stack.callback(load.stop)
        before = rng.randint(2, 6)
        load.wait(lambda b: sum(x.acknowledged for x in b) >= before, 30, f"{before} batches acknowledged")
        time.sleep(rng.uniform(0, 0.2))  # the restart point
        try:
            what = restart_postgres(pg_database)
        finally:
            wait_postgres(pg_database)  # whatever happens, later tests find the server up
        restarted = time.monotonic()
        print(f"[seed {seed}] {what}")
        # the DIP reconnects by itself: batches are acknowledged again
        load.wait(lambda b: sum(x.acknowledged and x.sent > restarted for x in b) >= 3, 30,
                  "3 batches acknowledged after the restart")
        load.stop()
        assert node.alive(), f"[seed {seed}] the DIP died:\n{node.output()}"

        statuses = Counter(b.status for b in load.batches)
        assert not load.problems, f"[seed {seed}] {load.problems}; statuses {statuses}"
        assert set(statuses) <= {201, 207, 503}, f"[seed {seed}] answers {statuses}"
        slowest = max(b.answered - b.sent for b in load.batches if b.answered is not None)
        assert slowest < 15, f"[seed {seed}] an answer took {slowest:.1f} s"
        print(f"[seed {seed}] answers {dict(statuses)}, slowest {slowest:.2f} s")

        snap = node.snapshot()
        order = check_store(seed, load.batches, snap)
        check_acknowledged_readable(seed, node, load.batches)
        # A batch answered 503 may still be stored when the connection died with its COMMIT in
        # flight: the DIP cannot know the outcome. (That it also happens when the COMMIT had
        # succeeded is test_a_batch_committed_just_before_its_connection_dies_is_acknowledged.)
        stored_503 = sum(b.status == 503 and b.surs[0] in snap.by_sur(SDS) for b in load.batches)
        if stored_503:
            print(f"[seed {seed}] {stored_503} batch(es) answered 503 are stored all the same")
        final = wait_all(seed, node, order, {r: "delivered" for r in RECIPIENTS},
                         lambda: all(arrived(hook, order)() for hook in hooks.values()))
        for recipient, hook in hooks.items():
            check_arrivals(seed, recipient, hook.calls, order, final)


def test_a_batch_committed_just_before_its_connection_dies_is_acknowledged(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch's COMMIT succeeds; then its pooled connection is lost (a restart, a network cut)
    before the pool resets it for the next user. The messages are durable and will be delivered,
    so the sender must get its 201 and transaction IDs: a 503 ("nothing in this request was
    accepted") makes it send again, and then every message comes back MSG1006, so it never
    learns the transaction IDs of messages its recipients do receive."""
    armed: list[bool] = []
    batch_connections: list[asyncpg.Connection] = []
    copy_records_to_table = asyncpg.connection.Connection.copy_records_to_table
    reset = asyncpg.connection.Connection.reset

    async def copy_and_note(self: asyncpg.Connection, table_name: str, **kwargs: Any) -> Any:
        if table_name == "messages" and armed:
            batch_connections.append(self)
        return await copy_records_to_table(self, table_name, **kwargs)

    async def lost_before_reset(self: asyncpg.Connection, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's signature)
        if self in batch_connections:  # the batch's connection, after its COMMIT: the server goes away
            batch_connections.remove(self)
            pid = self.get_server_pid()
            admin = await asyncpg.connect(pg_database)
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                for _ in range(200):
                    if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                        break
                    await asyncio.sleep(0.01)
            finally:
                await admin.close()
        await reset(self, timeout=timeout)

    monkeypatch.setattr(asyncpg.connection.Connection, "copy_records_to_table", copy_and_note)
    monkeypatch.setattr(asyncpg.connection.Connection, "reset", lost_before_reset)
    settings = Settings(data_dir=tmp_path / "node", database_url=pg_database, validation_workers=0, deliver=False)
    with RunningDip(settings) as dip:
        with AdminClient(dip.url, dip.admin_key) as admin:
            cast = onboard_all(admin)
        with DipClient(dip.url, cast["SDS"]) as client:
            payloads = consumption(client, 5)
            armed.append(True)
            response = client.send("IF-021", payloads)
            armed.clear()
        surs = [p["CommonBlock"]["S1"]["senderUniqueReference"] for p in payloads]
        stored = snapshot(pg_database, tmp_path).by_sur(SDS)
        assert not batch_connections, "the fault was not injected"
        assert all(sur in stored for sur in surs), f"the batch was not committed ({response.status_code})"
        assert response.status_code == 201, (
            f"the batch was committed ({len(surs)} messages stored), but the answer was HTTP "
            f"{response.status_code}: {response.text[:300]}")
        assert [(e["senderUniqueReference"], e["transactionID"]) for e in items(response)] == \
            [(sur, stored[sur]) for sur in surs]
