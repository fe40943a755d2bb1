"""Prometheus metrics of one node (API contract section 6; docs/operations.md "Metrics").

Each node has a registry of its own (the standard ``prometheus_client``), exposed at ``GET
/metrics``. The hot paths count per batch and per call, never per message: an accepted batch adds
its messages to one counter; a webhook call's settlements are counted by outcome. Queue depths are
read from the database every ``queue_seconds`` by nodes that deliver (a count of a large backlog
takes a while: never on the scrape itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("dip.metrics")

QueueReader = Callable[[], Awaitable[list[tuple[str, str, int, float]]]]  # (recipient, channel, depth, oldest s)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# acceptance to the recipient's 2xx: the industry's bars are 3 s (90%) and 30 s (all)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.messages_accepted = Counter("dip_messages_accepted", "Messages accepted, by channel", ["channel"],
                                         registry=r)
        self.messages_refused = Counter("dip_messages_refused", "Messages refused, by channel and MSG code",
                                        ["channel", "code"], registry=r)
        self.batch_seconds = Histogram("dip_batch_seconds", "Time to accept one call's batch, by channel",
                                       ["channel"], buckets=BATCH_BUCKETS, registry=r)
        self.deliveries = Counter("dip_deliveries", "Deliveries settled, by channel and outcome (delivered, "
                                  "rejected, failed, dead)", ["channel", "outcome"], registry=r)
        self.delivery_retries = Counter("dip_delivery_retries", "Webhook calls to be tried again, by channel",
                                        ["channel"], registry=r)
        self.delivery_latency = Histogram("dip_delivery_latency_seconds",
                                          "From acceptance to the recipient's 2xx, per message",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("dip_queue_depth", "Messages waiting, per recipient queue", ["recipient", "channel"],
                                 registry=r)
        self.queue_oldest = Gauge("dip_queue_oldest_seconds", "Age of the oldest waiting message, per recipient "
                                  "queue", ["recipient", "channel"], registry=r)
        self.http_requests = Counter("dip_http_requests", "API requests answered, by method and status",
                                     ["method", "status"], registry=r)
        self._queues: asyncio.Task[None] | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def batch(self, channel: str, accepted: int, refused: Iterable[str], seconds: float) -> None:
        """One call's batch: how many were accepted, the MSG code of each refused one."""
        if accepted:
            self.messages_accepted.labels(channel).inc(accepted)
        for code, count in Tally(refused).items():
            self.messages_refused.labels(channel, code).inc(count)
        self.batch_seconds.labels(channel).observe(seconds)

    def settled(self, channel: str, outcomes: Iterable[str], delivered_ages: Iterable[float], retry: bool) -> None:
        """One webhook call's settlements: their outcomes, and the delivered messages' ages."""
        for outcome, count in Tally(outcomes).items():
            self.deliveries.labels(channel, outcome).inc(count)
        for age in delivered_ages:
            self.delivery_latency.observe(age)
        if retry:
            self.delivery_retries.labels(channel).inc()

    def start_queue_gauges(self, read: QueueReader, every: float = 15.0) -> None:
        self._queues = asyncio.create_task(self._watch_queues(read, every), name="metrics-queues")

    async def stop(self) -> None:
        if self._queues is not None:
            self._queues.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._queues
            self._queues = None

    async def _watch_queues(self, read: QueueReader, every: float) -> None:
        while True:
            try:
                seen = set()
                for recipient, channel, depth, oldest in await read():
                    self.queue_depth.labels(recipient, channel).set(depth)
                    self.queue_oldest.labels(recipient, channel).set(oldest)
                    seen.add((recipient, channel))
                for labels in [k for k in self._labelled(self.queue_depth) if k not in seen]:
                    self.queue_depth.remove(*labels)  # a queue that went away
                    self.queue_oldest.remove(*labels)
            except Exception:  # keep measuring through a database outage
                log.exception("could not read the queue depths")
            await asyncio.sleep(every)

    @staticmethod
    def _labelled(gauge: Gauge) -> list[tuple[str, str]]:
        return [tuple(s.labels.values()) for m in gauge.collect() for s in m.samples]  # type: ignore[misc]


