"""The delivery worker: claims due recipient queues and pushes their head batches to the webhooks.

One worker runs in every ``dip serve``; several nodes share the queues through leases (the
store's ``claim``), so a queue is served by one node at a time and a dead node's queues are
taken over when its lease runs out. Per queue, messages go in acceptance order; a retryable
failure holds the queue's head (and only that queue) until ``next_attempt_at``; anything else
is settled and the queue moves on. Workers never sleep through a backoff: the store keeps the
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from dip import ids
from dip.codes import Code
from dip.delivery.egress import Publication, egress_body
from dip.delivery.sender import CallResult, WebhookSender
from dip.responses import item
from dip.retry import Outcome, RetryPolicy
from dip.store import Claim, DeliveryRow, PendingDelivery, Settlement

if TYPE_CHECKING:
    from dip.service import DipService

log = logging.getLogger("dip.delivery")

STATUS = "status"


def status_queue(participant_id: str) -> str:
    return f"{participant_id}|{STATUS}"


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreakers:
    """Per-URL breakers: after ``threshold`` failed calls in a row an endpoint is left alone for
    ``cool_off`` seconds (then one call is tried), so a dead endpoint costs nothing."""

    def __init__(self, threshold: int = 5, cool_off: float = 30.0) -> None:
        self.threshold = threshold
        self.cool_off = cool_off
        self._by_url: dict[str, _Breaker] = {}

    def open_until(self, url: str, now: float) -> float | None:
        breaker = self._by_url.get(url)
        return breaker.open_until if breaker is not None and breaker.open_until > now else None

    def record(self, url: str, ok: bool, now: float) -> None:
        breaker = self._by_url.setdefault(url, _Breaker())
        if ok:
            breaker.failures, breaker.open_until = 0, 0.0
            return
        breaker.failures += 1
        if breaker.failures >= self.threshold:
            breaker.open_until = now + self.cool_off


class DeliveryWorker:
    def __init__(self, dip: DipService, concurrency: int = 64, poll_seconds: float = 0.2) -> None:
        self.dip = dip
        settings = dip.settings
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.policy = RetryPolicy(settings.retry_initial_seconds, settings.retry_max_seconds,
                                  settings.dead_letter_after_seconds)
        # a lease outlives any call it covers, so a live node never loses a queue mid-call
        self.lease_seconds = max(settings.delivery_lease_seconds or settings.webhook_timeout_seconds + 30,
                                 settings.webhook_timeout_seconds + 1)
        self.breakers = CircuitBreakers(cool_off=min(30.0, settings.retry_max_seconds))
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._poll = poll_seconds
        self.max_batch = settings.delivery_max_batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._sender: WebhookSender | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        assert self.dip.signing_key is not None
        self._sender = WebhookSender(self.dip.signing_key, self.dip.signing_cert_pem,
                                     self.dip.settings.webhook_timeout_seconds,
                                     public_only=self.dip.settings.environment != "DEV")
        self._task = asyncio.create_task(self._loop(), name="dip-delivery")

    async def listen(self) -> None:
        """Wake on other nodes' commits too (PostgreSQL); polling covers a lost listener."""
        if await self.dip.store.listen_deliveries(self.wake):
            log.info("delivery worker %s listens for new deliveries", self.owner)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._sender is not None:
            await self._sender.close()

    def wake(self) -> None:
        """New deliveries were committed: look for due queues now rather than at the next poll."""
        self._wake.set()

    # -- the claim loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            # cleared before the claim: a wake-up during the claim query (a commit it may not have
            # seen) makes the next wait return at once instead of after a poll interval
            self._wake.clear()
            free = self._concurrency - len(self._running)
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = await self.dip.store.claim(self.owner, _micros(), int(self.lease_seconds * 1e6), free)
                except Exception:
                    log.exception("could not claim delivery queues")
            for claim in claims:
                task = asyncio.create_task(self._serve(claim), name=f"deliver {claim.queue}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if not claims:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _serve(self, claim: Claim) -> None:
        try:
            await self._deliver(claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery to %s failed; the queue is retried after its lease", claim.queue)
        finally:
            self._wake.set()  # a slot is free again

    # -- one call ----------------------------------------------------------------------------

    async def _deliver(self, claim: Claim) -> None:
        dip, now = self.dip, time.time()
        is_status = claim.interface_id == STATUS
        hook = dip.directory.webhook(claim.recipient_id, STATUS if is_status else "publication",
                                     "" if is_status else claim.interface_id)
        # the recipient's maxMessageCount is a ceiling; calls stay moderate so a slow call holds
        # little and the next one starts sooner (fetch, build and settle scale with the batch)
        limit = min(hook.max_message_count, self.max_batch) if hook else 1000
        pending = await dip.store.pending(claim.queue, limit)
        dead = [p for p in pending if self.policy.dead_lettered(now, p.accepted_at / 1e6)]
        alive = [p for p in pending if p not in dead]
        settlements = [Settlement(p.id, "dead", None, "not delivered in time: dead-lettered") for p in dead]
        relay: list[DeliveryRow | None] = [] if is_status else [
            self._dip_status(p, claim, f"dead-lettered: not delivered to {claim.recipient_id} within "
                                       f"{int(self.policy.dead_letter_after)} s")
            for p in dead
        ]
        if not alive:
            await self._settle(claim, settlements, _micros(), 0, relay)
            return
        if hook is None:
            # nowhere to send yet: wait for a registration, backing off like a failed call
            retry_at = self.policy.next_attempt(claim.retries + 1, now, alive[0].accepted_at / 1e6)
            await self._settle(claim, settlements, _micros(retry_at or now), claim.retries + 1, relay)
            return
        opened = self.breakers.open_until(hook.url, now)
        if opened is not None:
            await self._settle(claim, settlements, _micros(opened), claim.retries, relay)
            return
        batch = _fit(alive, hook.max_payload_kb * 1024)
        body = self._status_body(batch) if is_status else await self._publication_body(claim, batch)
        mpo = hook.participant_id if hook.registered_by != hook.participant_id else None
        assert self._sender is not None
        result = await self._sender.post(hook.url, body, {p.transaction_id for p in batch}, mpo)
        self.breakers.record(hook.url, result.outcome is not Outcome.RETRY, time.time())
        more, next_at, retries = self._outcome(claim, batch, result, time.time())
        settlements += more[0]
        if not is_status:
            relay += more[1]
        await self._settle(claim, settlements, next_at, retries, relay)

    def _outcome(self, claim: Claim, batch: Sequence[PendingDelivery], result: CallResult, now: float,
                 ) -> tuple[tuple[list[Settlement], list[DeliveryRow]], int, int]:
        status, error = result.status, result.error
        settlements: list[Settlement] = []
        relay: list[DeliveryRow | None] = []
        if result.outcome is Outcome.RETRY:
            retry_at = self.policy.next_attempt(claim.retries + 1, now, batch[0].accepted_at / 1e6,
                                                result.retry_after)
            for p in batch:
                expired = retry_at is None and self.policy.dead_lettered(now, p.accepted_at / 1e6)
                settlements.append(Settlement(p.id, "dead" if expired else "pending", status, error))
                if expired:
                    relay.append(self._dip_status(p, claim, f"dead-lettered after HTTP {status or error}"))
            return (settlements, [r for r in relay if r is not None]), _micros(retry_at or now), claim.retries + 1
        for p in batch:
            rejection = result.rejected.get(p.transaction_id)
            if rejection is not None:
                settlements.append(Settlement(p.id, "rejected", status, str(rejection.get("message"))[:500]))
                relay.append(self._relayed(p, claim, rejection))
            elif result.outcome in (Outcome.FAILED, Outcome.FAILED_NOTIFY):
                settlements.append(Settlement(p.id, "failed", status, error))
                if result.outcome is Outcome.FAILED_NOTIFY:
                    relay.append(self._dip_status(p, claim, f"the recipient's webhook answered HTTP {status}"))
            else:
                settlements.append(Settlement(p.id, "delivered", status, error))
        return (settlements, [r for r in relay if r is not None]), _micros(now), 0

    async def _settle(self, claim: Claim, settlements: list[Settlement], next_at: int, retries: int,
                      relay: Sequence[DeliveryRow | None]) -> None:
        rows = [r for r in relay if r is not None]
        if not await self.dip.store.settle(claim.queue, self.owner, settlements, next_at, retries, rows, _micros()):
            log.warning("lost the lease on %s before settling; another node will repeat the call", claim.queue)
        elif rows:
            self.wake()

    # -- bodies ------------------------------------------------------------------------------

    async def _publication_body(self, claim: Claim, batch: Sequence[PendingDelivery]) -> bytes:
        dip = self.dip
        channel = dip.catalogue.get(claim.interface_id)
        masks = channel.definition.obfuscation if channel is not None else {}
        publication_id = channel.publication_id if channel is not None else ids.publication_id(claim.interface_id)
        states = await dip.store.delivery_states([p.transaction_id for p in batch])
        secondary: dict[str, list[str]] = {}
        always: dict[str, list[str]] = {}
        for tid, recipient, _, kind, _ in states:
            target = secondary if kind == "secondary" else always if kind == "always" else None
            if target is not None and recipient not in target.setdefault(tid, []):
                target[tid].append(recipient)
        return egress_body([
            (Publication(p.transaction_id, publication_id, p.payload or b"{}", p.received_at or p.accepted_at,
                         p.correlation_id, p.role, secondary.get(p.transaction_id, ()),
                         always.get(p.transaction_id, ())),
             masks.get(p.role, ()), dip.ticket_url(p.transaction_id))
            for p in batch
        ])

    @staticmethod
    def _status_body(batch: Sequence[PendingDelivery]) -> bytes:
        return b"[" + b",".join(p.body or b"{}" for p in batch) + b"]"

    def _sender_of(self, p: PendingDelivery) -> str | None:
        try:
            sender = orjson.loads(p.payload or b"{}")["CommonBlock"]["S1"]["senderDIPID"]
        except (KeyError, TypeError, orjson.JSONDecodeError):
            return None
        return sender if isinstance(sender, str) else None

    def _relayed(self, p: PendingDelivery, claim: Claim, entry: dict[str, Any]) -> DeliveryRow | None:
        """A recipient's rejection of a message, on its way to the message's sender."""
        sender = self._sender_of(p)
        if sender is None:
            return None
        stamp = ids.timestamp(datetime.now(UTC))
        message = entry.get("message") if isinstance(entry.get("message"), str) else None
        relayed = item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=claim.recipient_id,
                       recipient_id=sender, transaction_id=p.transaction_id,
                       correlation_id=p.correlation_id, help_text=entry.get("help") if isinstance(
                           entry.get("help"), str) else None)
        body = orjson.loads(orjson.dumps(_builtins(relayed)))
        if message:
            body["message"] = message[:200]
        return DeliveryRow(status_queue(sender), p.transaction_id, sender, "", STATUS, _micros(),
                           orjson.dumps(body))

    def _dip_status(self, p: PendingDelivery, claim: Claim, why: str) -> DeliveryRow | None:
        """A status message the DIP itself sends to a message's sender."""
        sender = self._sender_of(p)
        if sender is None:
            return None
        stamp = ids.timestamp(datetime.now(UTC))
        status = item(code=Code.PROCESSING_FAILED, sent_timestamp=stamp, sender_id=self.dip.settings.dip_id,
                      recipient_id=sender, transaction_id=p.transaction_id, correlation_id=p.correlation_id,
                      help_text=f"{claim.recipient_id} ({p.role}): {why}",
                      service_ticket_url=self.dip.ticket_url(p.transaction_id))
        return DeliveryRow(status_queue(sender), p.transaction_id, sender, "", STATUS, _micros(),
                           orjson.dumps(_builtins(status)))


def _builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def _fit(pending: Sequence[PendingDelivery], max_bytes: int) -> list[PendingDelivery]:
    """The head of the queue that fits in one call (E2E 4.6.2): a message larger than the limit
    goes alone; otherwise messages are added while the total stays within it."""
    batch: list[PendingDelivery] = []
    size = 0
    for p in pending:
        length = len(p.payload or p.body or b"") + 400  # D0 and the array framing
        if batch and size + length > max_bytes:
            break
        batch.append(p)
        size += length
    return batch


def _micros(seconds: float | None = None) -> int:
    return int((time.time() if seconds is None else seconds) * 1_000_000)
