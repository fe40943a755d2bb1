"""Several DIP nodes on one database: they share the delivery queues through leases, a node
killed mid-call loses nothing (another takes its queues over when the lease runs out), and a 201
means the messages are durable whatever happens to the node afterwards.

Nodes on other machines need PostgreSQL; processes on one machine may also share one SQLite file
(an API node and a delivery node), so the sharing tests run on both (``shared_database``).
Nodes run in-process (RunningDip) where that is enough, and as real `dip serve` processes where
one has to be killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from dip.config import Settings
from dip.node import Node
from dip.store import Claim, MessageRow, Store
from dip.tools.client import DipClient, Identity
from dip.tools.testing import ADMIN_KEY, AdminClient, RecordedCall, RunningDip, WebhookReceiver, free_port
from tests.helpers import MDS, SUP, consumption, items, onboard_all, with_store

T = TypeVar("T")

RECIPIENTS = (MDS, SUP)  # IF-021 from SDS: MDS always, SUP as the MPANs' appointed supplier
QUEUES = {recipient: f"{recipient}|IF-021" for recipient in RECIPIENTS}
DIP_COMMAND = Path(sys.executable).with_name("dip")  # .venv/bin/dip


# -- waiting -----------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        time.sleep(0.02)


# -- the database, seen from outside the nodes ---------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for several nodes: a fresh PostgreSQL database, or one SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'shared.sqlite3'}"
    url: str = request.getfixturevalue("pg_database")
    return url


def sql(url: str, query: str) -> list[dict[str, Any]]:
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:"))
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(query)]
        finally:
            conn.close()

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(row) for row in await conn.fetch(query)]
        finally:
            await conn.close()

    return asyncio.run(run())


def delivery_summary(url: str, transactions: Sequence[str]) -> dict[str, Counter[str]]:
    """Per recipient, how many of ``transactions`` are in each delivery state."""
    rows = with_store(url, Path("unused"), lambda store: store.delivery_states(list(transactions)))
    found = {(tid, to): state for tid, to, _, kind, state in rows if kind != "status"}
    return {r: Counter(found.get((t, r), "none") for t in transactions) for r in RECIPIENTS}


def wait_delivered(url: str, transactions: Sequence[str], timeout: float) -> None:
    """Every one of ``transactions`` ends 'delivered' for every recipient."""
    wait_until(lambda: all(s == Counter({"delivered": len(transactions)})
                           for s in delivery_summary(url, transactions).values()),
               timeout, lambda: f"delivery states {delivery_summary(url, transactions)}")


def lease_rows(url: str) -> dict[str, dict[str, Any]]:
    return {row["queue"]: row for row in sql(url, "SELECT queue, lease_owner, lease_until FROM queues")}


# -- webhooks and sending ------------------------------------------------------------------------


def transactions_in(calls: Sequence[RecordedCall]) -> list[str]:
    """The D0 transaction IDs the calls carried, in arrival order."""
    return [message["payload"]["CommonBlock"]["D0"]["transactionID"] for call in calls for message in call.json]


def wait_received(hook: WebhookReceiver, transactions: Sequence[str], timeout: float) -> list[RecordedCall]:
    """Wait until every one of ``transactions`` reached ``hook`` at least once."""
    wanted = set(transactions)
    return hook.wait_for(lambda calls: wanted <= set(transactions_in(calls)), timeout=timeout)


def send(url: str, sender: Identity, n: int) -> list[str]:
    """Send ``n`` IF-021 messages through the node at ``url``; their transaction IDs in acceptance order."""
    with DipClient(url, sender) as client:
        response = client.send("IF-021", consumption(client, n))
    assert response.status_code == 201, response.text
    return [entry["transactionID"] for entry in items(response)]


def register_webhooks(url: str, cast: dict[str, Identity], hooks: dict[str, WebhookReceiver],
                      max_message_count: int) -> None:
    for role, recipient in (("MDS", MDS), ("SUP", SUP)):
        with DipClient(url, cast[role]) as client:
            response = client.register_webhook("IF-021", hooks[recipient].url, max_message_count=max_message_count)
        assert response.status_code == 201, response.text


# -- nodes ---------------------------------------------------------------------------------------


def node_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir, "database_url": database_url, "validation_workers": 0, "state_poll_seconds": 0.2,
        "delivery_poll_seconds": 0.05, "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


class Process:
    """`dip serve` in a process of its own; its output goes to a log file."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no settling, no goodbye."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def dip_serve(tmp_path: Path, name: str, database_url: str, *options: str,
              ready: str = "DIP ready on") -> Iterator[Process]:
    """Start `dip serve` on ``database_url`` and wait until it says it is ``ready``; stop it at the end."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    args = [str(DIP_COMMAND), "serve", "--port", str(port), "--data-dir", str(tmp_path / name),
            "--database-url", database_url, "--validation-workers", "0", "--log-level", "warning", *options]
    env = {**os.environ, "DIP_ADMIN_API_KEY": ADMIN_KEY}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    node = Process(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: ready in node.output() or proc.poll() is not None, 60,
                   lambda: f"dip serve did not start:\n{node.output()}")
        assert proc.poll() is None, f"dip serve exited with {proc.returncode}:\n{node.output()}"
        yield node
    finally:
        node.stop()


def record_claims(node: RunningDip) -> list[str]:
    """The queues this node's worker claims from now on (a pass-through around its store's claim)."""
    claimed: list[str] = []
    store = node.node.store
    original = store.claim

    async def claim(owner: str, now: int, lease: int, limit: int) -> list[Claim]:
        claims = await original(owner, now, lease, limit)
        claimed.extend(c.queue for c in claims)
        return claims

    store.claim = claim  # type: ignore[method-assign]
    return claimed


# -- the tests -----------------------------------------------------------------------------------


def test_two_nodes_share_the_queues_and_deliver_everything_exactly_once(shared_database: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        for hook in hooks.values():
            hook.always(201, delay=0.01)  # calls take a moment, so queues are busy while more arrive
        nodes = [stack.enter_context(RunningDip(node_settings(shared_database, tmp_path / name))) for name in "ab"]
        claimed = [record_claims(node) for node in nodes]
        with AdminClient(nodes[0].url, nodes[0].admin_key) as admin:
            cast = onboard_all(admin)
        register_webhooks(nodes[0].url, cast, hooks, max_message_count=7)
        # the other node learns of participants and webhooks through the shared database
        wait_until(lambda: all(node.node.state.directory.webhook(r, "publication", "IF-021") is not None
                               for node in nodes for r in RECIPIENTS), 10, "both nodes know both webhooks")

        accepted: list[str] = []
        for round_ in range(4):
            # alternating, each 201 before the next batch is sent, while both workers deliver; between
            # rounds the queues run dry, and the node that takes the first batch of a round (and so
            # usually the queues) alternates too
            for node in (nodes if round_ % 2 == 0 else nodes[::-1]) * 2:
                accepted += send(node.url, cast["SDS"], 20)
            for recipient in RECIPIENTS:
                wait_received(hooks[recipient], accepted, timeout=20)
        assert len(set(accepted)) == len(accepted) == 320

        # then both nodes at once: two senders' batches interleave; each is one commit, served whole and
        # in order, and after every batch acknowledged before it was sent
        batches: list[tuple[float, float, list[str]]] = []  # (sent, acknowledged, transaction IDs)
        failures: list[BaseException] = []

        def send_batches(node: RunningDip) -> None:
            try:
                for _ in range(3):
                    sent = time.monotonic()
                    transactions = send(node.url, cast["SDS"], 20)
                    batches.append((sent, time.monotonic(), transactions))
            except BaseException as exc:
                failures.append(exc)

        senders = [threading.Thread(target=send_batches, args=(node,), name=f"sender-{i}") for i, node in
                   enumerate(nodes)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=30)
        assert not failures and not any(thread.is_alive() for thread in senders), failures
        everything = accepted + [t for _, _, batch in batches for t in batch]
        assert len(set(everything)) == len(everything) == 440
        for recipient in RECIPIENTS:
            wait_received(hooks[recipient], everything, timeout=20)
        wait_delivered(shared_database, everything, timeout=15)

        for recipient, hook in hooks.items():
            received = transactions_in(hook.calls)
            twice = {t: n for t, n in Counter(received).items() if n > 1}
            assert len(twice) == 0, f"{len(twice)} sent twice or more to {recipient}, e.g. {list(twice.items())[:3]}"
            assert sorted(received) == sorted(everything)
            # one sender, each batch acknowledged before the next: acceptance order is one sequence
            assert received[:len(accepted)] == accepted, f"{recipient} received messages out of acceptance order"
            rest = received[len(accepted):]
            starts = [rest.index(batch[0]) for _, _, batch in batches]
            for start, (_, _, batch) in zip(starts, batches, strict=True):
                assert rest[start:start + len(batch)] == batch, f"a batch to {recipient} was split or reordered"
            for first, (_, acked, _) in zip(starts, batches, strict=True):
                for later, (sent, _, _) in zip(starts, batches, strict=True):
                    assert not acked < sent or first < later, f"{recipient} got a batch before an earlier one"
            assert all(len(call.json) <= 7 for call in hook.calls)
        attempts = sql(shared_database, "SELECT recipient_id, state, attempts, count(*) AS n FROM delivery_status"
                                    " GROUP BY recipient_id, state, attempts ORDER BY recipient_id")
        assert attempts == [{"recipient_id": r, "state": "delivered", "attempts": 1, "n": len(everything)}
                            for r in sorted(RECIPIENTS)]
        # every lease is let go (a queue that had work come during its call is claimed once more
        # to find it empty, and released idle)
        wait_until(lambda: all(row["lease_owner"] is None for row in lease_rows(shared_database).values()), 10,
                   "every lease released")
        # both nodes' workers took part
        assert all(claimed), f"queues claimed per node: {[Counter(c) for c in claimed]}"


def test_a_node_killed_mid_delivery_loses_nothing(shared_database: str, tmp_path: Path) -> None:
    timeout, lease, batch = 2.0, 3.0, 20
    with contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        for hook in hooks.values():
            hook.respond(201, delay=timeout + 2)  # node A's call hangs; later calls are answered at once
        a = stack.enter_context(dip_serve(
            tmp_path, "a", shared_database, "--delivery-lease-seconds", str(lease), "--webhook-timeout-seconds",
            str(timeout), "--delivery-poll-seconds", "0.05", "--retry-initial-seconds", "0.2"))
        with AdminClient(a.url, ADMIN_KEY) as admin:
            cast = onboard_all(admin)
        register_webhooks(a.url, cast, hooks, max_message_count=batch)
        accepted = send(a.url, cast["SDS"], 50)

        # A claims both queues and is inside its calls, holding the leases: kill it there
        for hook in hooks.values():
            hook.wait_for(lambda calls: len(calls) == 1, timeout=10)
        killed_at = time.time()
        a.kill()
        leases = lease_rows(shared_database)
        for queue in QUEUES.values():
            owner, until = leases[queue]["lease_owner"], leases[queue]["lease_until"]
            assert owner is not None and f"-{a.pid}-" in owner, (queue, owner, a.pid)
            assert until / 1e6 > killed_at, "A's lease had already run out when it was killed"
        assert "lost the lease" not in a.output()

        # node B starts only now, so it cannot have held a lease when A died
        b = stack.enter_context(RunningDip(node_settings(shared_database, tmp_path / "b")))
        accepted += send(b.url, cast["SDS"], 30)  # queued behind the batch A died with
        for recipient in RECIPIENTS:
            wait_received(hooks[recipient], accepted, timeout=20)
        wait_delivered(shared_database, accepted, timeout=15)

        wall_minus_monotonic = time.time() - time.monotonic()
        for recipient, hook in hooks.items():
            by_a, *by_b = hook.calls
            a_batch = transactions_in([by_a])
            assert a_batch == accepted[:batch]
            # B waited for A's lease to run out, then served the queue from its head, in order
            lease_end = leases[QUEUES[recipient]]["lease_until"] / 1e6 - wall_minus_monotonic
            assert by_b[0].at >= lease_end - 0.05, (recipient, by_b[0].at - lease_end)
            assert transactions_in(by_b) == accepted
            # at least once: the only duplicates are the in-flight batch, carried again with the same IDs
            received = Counter(transactions_in(hook.calls))
            assert set(received) == set(accepted)
            assert {t for t, n in received.items() if n > 1} == set(a_batch)
            assert max(received.values()) == 2
        # every lease is let go (a queue that had work come during its call is claimed once more
        # to find it empty, and released idle)
        wait_until(lambda: all(row["lease_owner"] is None for row in lease_rows(shared_database).values()), 10,
                   "every lease released")


def test_a_201_means_durable_even_if_the_node_dies_at_once(pg_database: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        for hook in hooks.values():
            hook.always(201, delay=0.01)
        a = stack.enter_context(dip_serve(
            tmp_path, "a", pg_database, "--delivery-lease-seconds", "2", "--webhook-timeout-seconds", "1",
            "--delivery-poll-seconds", "0.05", "--retry-initial-seconds", "0.2"))
        with AdminClient(a.url, ADMIN_KEY) as admin:
            cast = onboard_all(admin)
        register_webhooks(a.url, cast, hooks, max_message_count=25)

        acknowledged: list[str] = []
        enough = threading.Event()
        unexpected: list[str] = []

        def keep_sending() -> None:
            """Batch after batch until the node is gone; remember what was acknowledged."""
            with DipClient(a.url, cast["SDS"]) as client:
                while True:
                    try:
                        response = client.send("IF-021", consumption(client, 20))
                    except (OSError, http.client.HTTPException):
                        return  # killed: this batch was never acknowledged
                    if response.status_code != 201:
                        unexpected.append(f"HTTP {response.status_code}: {response.text}")
                        enough.set()
                        return
                    acknowledged.extend(entry["transactionID"] for entry in items(response))
                    if len(acknowledged) >= 60:
                        enough.set()

        sender = threading.Thread(target=keep_sending, name="sender", daemon=True)
        sender.start()
        try:
            acknowledged_enough = enough.wait(30)
        finally:
            a.kill()  # the instant the third 201 is read, with the next batch likely in flight
            sender.join(timeout=30)
        assert acknowledged_enough, f"the node did not acknowledge three batches:\n{a.output()}"
        assert not sender.is_alive() and not unexpected, unexpected
        acked = list(acknowledged)
        assert len(acked) >= 60 and len(set(acked)) == len(acked)

        async def stored_rows(store: Store) -> tuple[int, list[MessageRow | None]]:
            return await store.count_messages(), [await store.get_message(t) for t in acked]

        count, rows = with_store(pg_database, Path("unused"), stored_rows)
        missing = [t for t, row in zip(acked, rows, strict=True) if row is None]
        assert len(missing) == 0, f"{len(missing)} acknowledged message(s) are not in the store, e.g. {missing[:3]}"
        assert all(row is not None and row.interface_id == "IF-021" for row in rows)
        assert count >= len(acked)
        stored = [row["transaction_id"] for row in sql(pg_database, "SELECT transaction_id FROM messages")]
        assert len(stored) == count

        # a new node on the same database delivers every stored message, the acknowledged ones included
        stack.enter_context(RunningDip(node_settings(pg_database, tmp_path / "b")))
        for recipient in RECIPIENTS:
            wait_received(hooks[recipient], stored, timeout=20)
        wait_delivered(pg_database, stored, timeout=15)
        for hook in hooks.values():
            received = transactions_in(hook.calls)
            assert set(received) == set(stored)  # nothing that was not stored, everything that was
            assert set(acked) <= set(received)


def test_an_api_node_accepts_and_a_delivery_node_without_api_delivers(shared_database: str, tmp_path: Path) -> None:
    """`dip serve --no-delivery` plus `dip serve --no-api`: the layout docs/operations.md recommends."""
    with contextlib.ExitStack() as stack:
        hooks = {r: stack.enter_context(WebhookReceiver()) for r in RECIPIENTS}
        api = stack.enter_context(dip_serve(tmp_path, "api", shared_database, "--no-delivery"))
        with AdminClient(api.url, ADMIN_KEY) as admin:
            cast = onboard_all(admin)
        register_webhooks(api.url, cast, hooks, max_message_count=10)
        waiting = send(api.url, cast["SDS"], 15)  # accepted while no node delivers
        assert all(s == Counter({"pending": 15}) for s in delivery_summary(shared_database, waiting).values())

        worker = stack.enter_context(dip_serve(tmp_path, "worker", shared_database, "--no-api",
                                               "--delivery-poll-seconds", "5", ready="DIP delivery node ready"))
        for recipient in RECIPIENTS:
            wait_received(hooks[recipient], waiting, timeout=4)  # the backlog goes at start-up
        wait_delivered(shared_database, waiting, timeout=5)
        # now idle until its next poll, 5 s away: only another node's commit (NOTIFY on PostgreSQL,
        # PRAGMA data_version on SQLite) can wake it sooner
        later = send(api.url, cast["SDS"], 15)
        for recipient in RECIPIENTS:
            calls = wait_received(hooks[recipient], waiting + later, timeout=2)
            assert transactions_in(calls) == waiting + later  # in order, each once
        wait_delivered(shared_database, waiting + later, timeout=10)
        # no API port; its metrics and probes on a port of its own, named in its ready line
        found = re.search(r"metrics and probes on (http://[\d.]+:\d+)", worker.output())
        assert found is not None, worker.output()
        assert httpx.get(found.group(1) + "/readyz").json()["status"] == "ready"
        assert httpx.get(found.group(1) + "/dip/certificate").status_code == 404  # not the API

        worker.stop()
        assert worker.proc.returncode == 0, worker.output()


def test_a_delivery_node_needs_something_to_deliver(tmp_path: Path) -> None:
    done = subprocess.run([str(DIP_COMMAND), "serve", "--no-api", "--no-delivery", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--no-api with --no-delivery leaves nothing to run" in done.stderr


async def test_a_node_stops_at_once_even_when_woken_as_it_is_told_to_stop(settings: Settings) -> None:
    """A wake-up (another node's commit) at the moment of a SIGTERM must not swallow the stop:
    Python 3.11's asyncio.wait_for returns the awaited result instead of raising when cancelled
    just as that result arrives, which left the worker looping and the node running for ever."""
    dip = Node(settings)
    await dip.start()
    assert dip.worker is not None
    for _ in range(3):  # a few rounds of the claim loop, so it is waiting for a wake-up
        dip.worker.wake()
        await asyncio.sleep(0.05)
    dip.worker.wake()
    stopping = asyncio.create_task(dip.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    if not done:
        stopping.cancel()
    assert done, "the node did not stop within 5 s of being told to"
    await stopping
