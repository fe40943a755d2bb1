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
from dip.delivery.egress import Publication, egress_array, egress_element
from dip.delivery.element_cache import ElementCache, element_key
from dip.delivery.sender import CallResult, WebhookSender
from dip.exceptions import StoreError
from dip.responses import item
from dip.retry import Outcome, RetryPolicy
from dip.store import Claim, DeliveryRow, PendingDelivery, Settlement
from dip.store.message_cache import MessageCache

if TYPE_CHECKING:
    from dip.service import DipService

log = logging.getLogger("dip.delivery")

STATUS = "status"
_NO_WEBHOOK_RECHECK = 30.0  # seconds between looks at a queue whose recipient has no webhook yet


def status_queue(participant_id: str) -> str:
    return f"{participant_id}|{STATUS}"


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreakers:
    """Per-URL breakers: after ``threshold`` failed calls in a row an endpoint is left alone for
    ``cool_off`` seconds; then one call (the probe) is let through while every other queue using
    the URL waits another cool-off, and a success closes the breaker. A dead endpoint costs nothing."""

    def __init__(self, threshold: int = 5, cool_off: float = 30.0) -> None:
        self.threshold = threshold
        self.cool_off = cool_off
        self._by_url: dict[str, _Breaker] = {}

    def hold(self, url: str, now: float) -> float | None:
        """None when a call may go now (possibly as the probe), else until when to wait."""
        breaker = self._by_url.get(url)
        if breaker is None or breaker.failures < self.threshold:
            return None
        if breaker.open_until > now:
            return breaker.open_until
        breaker.open_until = now + self.cool_off  # this caller probes; the others wait
        return None

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
        self.messages = MessageCache(settings.delivery_cache_mb * 1024 * 1024) if settings.delivery_cache_mb else None
        # half as much again for built elements: one call's worth (5,000 IF-021 of 4.5 KB) and more
        self.elements = ElementCache(settings.delivery_cache_mb * 512 * 1024) if settings.delivery_cache_mb else None
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
            await asyncio.wait({self._task})  # (a cancellation of the caller itself still propagates)
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
                except StoreError as exc:  # the database is away (restart, failover): keep polling
                    log.warning("could not claim delivery queues: %s", exc)
                except Exception:
                    log.exception("could not claim delivery queues")
            for claim in claims:
                task = asyncio.create_task(self._serve(claim), name=f"deliver {claim.queue}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if not claims:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                # that comes as the wake-up does, and the node would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()

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
        if hook is None:
            # nowhere to send yet: dead-letter what is too old and look again later; not a failed
            # attempt, so the first call after a registration is not held back by a long backoff
            # (a registration also makes the recipient's queues due at once)
            pending = await dip.store.pending(claim.queue, 1000, self.messages)
            settlements, relay = self._dead_letters(claim, pending, now, is_status)
            next_at = now + min(self.policy.max_delay, _NO_WEBHOOK_RECHECK)
            await self._settle(claim, settlements, _micros(next_at), claim.retries, relay)
            return
        held = self.breakers.hold(hook.url, now)
        if held is not None:
            await self._settle(claim, [], _micros(held), claim.retries, [])
            return
        # the recipient's maxMessageCount is a ceiling; calls stay moderate so a slow call holds
        # little and the next one starts sooner (fetch, build and settle scale with the batch)
        started = time.perf_counter()
        pending = await dip.store.pending(claim.queue, min(hook.max_message_count, self.max_batch), self.messages)
        fetched = time.perf_counter()
        settlements, relay = self._dead_letters(claim, pending, now, is_status)
        dead = {st.id for st in settlements}
        alive = [p for p in pending if p.id not in dead]
        if not alive:
            await self._settle(claim, settlements, _micros(), 0, relay)
            return
        elements = ([p.body or b"{}" for p in alive] if is_status
                    else await self._publication_elements(claim, alive))
        batch, body = _fit(alive, elements, hook.max_payload_kb * 1024)
        built = time.perf_counter()
        mpo = hook.participant_id if hook.registered_by != hook.participant_id else None
        assert self._sender is not None
        result = await self._sender.post(hook.url, body, {p.transaction_id for p in batch}, mpo)
        posted = time.perf_counter()
        self.breakers.record(hook.url, result.outcome is not Outcome.RETRY, time.time())
        more, next_at, retries = self._outcome(claim, batch, result, time.time())
        settlements += more[0]
        if not is_status:
            relay += more[1]
        await self._settle(claim, settlements, next_at, retries, relay)
        log.debug("%s: %d message(s), %d bytes, HTTP %s; fetch %.3f s, build %.3f s, call %.3f s, settle %.3f s",
                  claim.queue, len(batch), len(body), result.status or result.error, fetched - started,
                  built - fetched, posted - built, time.perf_counter() - posted)

    def _dead_letters(self, claim: Claim, pending: Sequence[PendingDelivery], now: float, is_status: bool,
                      ) -> tuple[list[Settlement], list[DeliveryRow | None]]:
        dead = [p for p in pending if self.policy.dead_lettered(now, p.accepted_at / 1e6)]
        settlements = [Settlement(p.id, "dead", None, "not delivered in time: dead-lettered") for p in dead]
        relay: list[DeliveryRow | None] = [] if is_status else [
            self._dip_status(p, claim, f"dead-lettered: not delivered to {claim.recipient_id} within "
                                       f"{int(self.policy.dead_letter_after)} s")
            for p in dead
        ]
        return settlements, relay

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

    async def _publication_elements(self, claim: Claim, batch: Sequence[PendingDelivery]) -> list[bytes]:
        """Each message as its recipient gets it: A0 as routed at ingest, D0, masking."""
        dip = self.dip
        channel = dip.catalogue.get(claim.interface_id)
        masks = channel.definition.obfuscation if channel is not None else {}
        publication_id = channel.publication_id if channel is not None else ids.publication_id(claim.interface_id)
        cache, elements = self.elements, []
        for p in batch:
            masked = masks.get(p.role, ())
            key = element_key(p.transaction_id, publication_id, masked)
            element = cache.get(key) if cache is not None else None
            if element is None:
                element = egress_element(
                    Publication(p.transaction_id, publication_id, p.payload or b"{}", p.received_at or p.accepted_at,
                                p.correlation_id, p.role, _ids(p.a0_secondary), _ids(p.a0_always),
                                common_span=_span(p.common_start, p.common_end)),
                    masked, dip.ticket_url(p.transaction_id))
                if cache is not None and p.payload is not None:
                    cache.put(key, element)
            elements.append(element)
        return elements

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


def _fit(pending: Sequence[PendingDelivery], elements: Sequence[bytes], max_bytes: int,
         ) -> tuple[list[PendingDelivery], bytes]:
    """The head of the queue that fits in one call of at most ``max_bytes`` as sent (E2E 4.6.2):
    a single message larger than the limit goes alone."""
    size = 1  # the array's brackets, and a comma between elements
    count = 0
    for element in elements:
        if count and size + len(element) + 1 > max_bytes:
            break
        size += len(element) + 1
        count += 1
    return list(pending[:count]), egress_array(elements[:count])


def _span(start: int | None, end: int | None) -> tuple[int, int] | None:
    return (start, end) if start is not None and end is not None else None


def _ids(joined: str | None) -> list[str]:
    return joined.split(",") if joined else []


def _micros(seconds: float | None = None) -> int:
    return int((time.time() if seconds is None else seconds) * 1_000_000)
