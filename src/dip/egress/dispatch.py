"""One call to one recipient queue's webhook: fetch its head, build the body, post, settle.

What an answer leads to is read from dip.egress.outcomes (the egress table); this module only
applies it: the state each delivery gets, when the queue's head is tried again, which status
messages go to the senders, what the circuit breaker counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dip import ids
from dip.catalogue import Catalogue
from dip.directory import Directory, WebhookKind
from dip.egress.body import Publication, Replayed, egress_array, egress_element
from dip.egress.breaker import CircuitBreakers
from dip.egress.element_cache import ElementCache, element_key
from dip.egress.outcomes import EGRESS, NAMED, Consequence, Notice, Outcome
from dip.egress.retry import RetryPolicy
from dip.egress.sender import CallResult
from dip.egress.status import StatusNotices
from dip.metrics import Metrics
from dip.queue import STATUS_QUEUE, DeliveryState
from dip.store.base import Claim, DeliveryRow, PendingDelivery, QueueStore, Settlement
from dip.store.message_cache import MessageCache

log = logging.getLogger("dip.delivery")

_NO_WEBHOOK_RECHECK = 30.0  # seconds between looks at a queue whose recipient has no webhook yet
_NO_WEBHOOK_FETCH = 1000  # deliveries looked at for dead letters when there is nowhere to send
_INTERNAL_BATCH = 100  # messages the DIP answers itself at a time


class Sender(Protocol):
    async def post(self, url: str, body: bytes, transactions: set[str], mpo: str | None = None) -> CallResult: ...

    async def close(self) -> None: ...


class Lookups(Protocol):
    """The node's current view of participants' webhooks and of the channels."""

    @property
    def directory(self) -> Directory: ...

    @property
    def catalogue(self) -> Catalogue: ...


class InternalHandler(Protocol):
    """Answers messages the DIP answers itself (dip.catalogue.ANSWERED_BY_DIP): all of them, or
    raises, and they are tried again later as a failed call would be."""

    async def __call__(self, requests: Sequence[PendingDelivery]) -> None: ...


@dataclass(frozen=True)
class WorkerContext:
    """Everything delivery uses, and nothing else (not the node)."""

    queues: QueueStore
    lookups: Lookups
    sender: Sender
    policy: RetryPolicy
    notices: StatusNotices
    breakers: CircuitBreakers
    max_batch: int  # messages per call at most, whatever a recipient's maxMessageCount allows
    messages: MessageCache | None = None  # stored messages read for one queue, kept for the others
    elements: ElementCache | None = None  # copies built for one recipient, kept for the others
    dip_id: str | None = None  # the DIP's own queues ({dip_id}|{interface}) are answered here:
    internal: Mapping[str, InternalHandler] = field(default_factory=dict)  # by interface ID
    metrics: Metrics | None = None  # counted per call: outcomes, retries, the delivered messages' ages


def _micros(seconds: float | None = None) -> int:
    return int((time.time() if seconds is None else seconds) * 1_000_000)


class Dispatcher:
    def __init__(self, ctx: WorkerContext, owner: str, wake: Callable[[], None]) -> None:
        self.ctx = ctx
        self.owner = owner
        self._wake = wake  # status messages were enqueued: serve their queues soon

    async def deliver(self, claim: Claim) -> None:
        ctx, now = self.ctx, time.time()
        if claim.recipient_id == ctx.dip_id and claim.interface_id in ctx.internal:
            await self._answer(claim, ctx.internal[claim.interface_id], now)
            return
        is_status = claim.interface_id == STATUS_QUEUE
        kind = WebhookKind.STATUS if is_status else WebhookKind.PUBLICATION
        hook = ctx.lookups.directory.webhook(claim.recipient_id, kind, "" if is_status else claim.interface_id)
        if hook is None:
            # nowhere to send yet: dead-letter what is too old and look again later; not a failed
            # attempt, so the first call after a registration is not held back by a long backoff
            # (a registration also makes the recipient's queues due at once)
            pending = await ctx.queues.pending(claim.queue, _NO_WEBHOOK_FETCH, ctx.messages,
                                               ctx.policy.read_from(now, claim.pending_floor))
            settlements, relay = self._dead_letters(claim, pending, now, is_status)
            next_at = now + min(ctx.policy.max_delay, _NO_WEBHOOK_RECHECK)
            await self._settle(claim, settlements, _micros(next_at), claim.retries, relay, pending, drained=not pending)
            return
        held = ctx.breakers.hold(hook.url, now)
        if held is not None:
            await self._settle(claim, [], _micros(held), claim.retries, [], [])
            return
        # the recipient's maxMessageCount is a ceiling; calls stay moderate so a slow call holds
        # little and the next one starts sooner (fetch, build and settle scale with the batch)
        started = time.perf_counter()
        limit = min(hook.max_message_count, ctx.max_batch)
        since = ctx.policy.read_from(now, claim.pending_floor)
        pending = await ctx.queues.pending(claim.queue, limit, ctx.messages, since)
        fetched = time.perf_counter()
        settlements, relay = self._dead_letters(claim, pending, now, is_status)
        if not is_status:
            expired = {st.id for st in settlements}
            settlements += self._purged([p for p in pending if p.id not in expired])
        dead = {st.id for st in settlements}
        alive = [p for p in pending if p.id not in dead]
        if not alive:
            await self._settle(claim, settlements, _micros(), 0, relay, pending, drained=len(pending) < limit)
            return
        elements = [p.body or b"{}" for p in alive] if is_status else self._publication_elements(claim, alive)
        batch, body = fit(alive, elements, hook.max_payload_kb * 1024)
        built = time.perf_counter()
        mpo = hook.participant_id if hook.registered_by != hook.participant_id else None
        result = await ctx.sender.post(hook.url, body, {p.transaction_id for p in batch}, mpo)
        posted = time.perf_counter()
        ctx.breakers.record(hook.url, EGRESS[result.outcome].endpoint_failed, time.time())
        more, more_relay, next_at, retries = self._outcome(claim, batch, result, time.time(), is_status)
        # everything pending went and the answer settled it (no retry): the queue goes idle
        drained = len(pending) < limit and len(batch) == len(alive) and retries == 0
        await self._settle(claim, settlements + more, next_at, retries, relay + more_relay, pending, drained)
        log.debug("%s: %d message(s), %d bytes, HTTP %s; fetch %.3f s, build %.3f s, call %.3f s, settle %.3f s",
                  claim.queue, len(batch), len(body), result.status or result.error, fetched - started,
                  built - fetched, posted - built, time.perf_counter() - posted)

    async def _answer(self, claim: Claim, handler: InternalHandler, now: float) -> None:
        """The DIP answers its own queue's messages: done (delivered), or tried again later."""
        ctx = self.ctx
        pending = await ctx.queues.pending(claim.queue, _INTERNAL_BATCH, ctx.messages,
                                           ctx.policy.read_from(now, claim.pending_floor))
        if not pending:
            await self._settle(claim, [], _micros(), 0, [], pending, drained=True)
            return
        drained = len(pending) < _INTERNAL_BATCH
        try:
            await handler(pending)
        except Exception:
            log.exception("answering %d message(s) of %s failed; trying again later", len(pending), claim.queue)
            retry_at = ctx.policy.next_attempt(claim.retries + 1, now, pending[0].accepted_at / 1e6)
            if retry_at is None:  # past the dead-letter deadline: given up, and its sender told
                why = "the DIP could not answer it in time"
                settlements = [Settlement(p.id, DeliveryState.DEAD, None, why) for p in pending]
                relay = [self.ctx.notices.from_dip(p, claim.recipient_id, why) for p in pending]
                await self._settle(claim, settlements, _micros(), 0, relay, pending, drained)
                return
            await self._settle(claim, [], _micros(retry_at), claim.retries + 1, [], pending)
            return
        done = [Settlement(p.id, DeliveryState.DELIVERED, None, "answered by the DIP") for p in pending]
        await self._settle(claim, done, _micros(), 0, [], pending, drained)

    # -- applying the egress table -------------------------------------------------------------------

    def _notice(self, consequence: Consequence, p: PendingDelivery, claim: Claim, is_status: bool,
                why: str, entry: dict[str, object] | None = None) -> DeliveryRow | None:
        """The status message the table says the message's sender gets (never about a status message)."""
        if is_status or consequence.notice is Notice.NONE:
            return None
        if consequence.notice is Notice.RELAY:
            return self.ctx.notices.relayed(p, claim.recipient_id, entry or {})
        return self.ctx.notices.from_dip(p, claim.recipient_id, why)

    def _dead_letters(self, claim: Claim, pending: Sequence[PendingDelivery], now: float, is_status: bool,
                      ) -> tuple[list[Settlement], list[DeliveryRow | None]]:
        """The deliveries past the dead-letter deadline, before any call."""
        policy = self.ctx.policy
        dead = EGRESS[Outcome.DEAD_LETTER]
        expired = [p for p in pending if policy.dead_lettered(now, p.accepted_at / 1e6)]
        why = f"dead-lettered: not delivered to {claim.recipient_id} within {int(policy.dead_letter_after)} s"
        return ([Settlement(p.id, dead.state, None, "not delivered in time: dead-lettered") for p in expired],
                [self._notice(dead, p, claim, is_status, why) for p in expired])

    @staticmethod
    def _purged(pending: Sequence[PendingDelivery]) -> list[Settlement]:
        """Copies (requeued, redriven) whose message the retention purge took before they went:
        failed, with nothing to send. A copy is kept from when it was queued, its message from
        when it was received (docs/archive.md, "Retention")."""
        return [Settlement(p.id, DeliveryState.FAILED, None, "its message was purged from the archive")
                for p in pending if p.payload is None]

    def _outcome(self, claim: Claim, batch: Sequence[PendingDelivery], result: CallResult, now: float,
                 is_status: bool) -> tuple[list[Settlement], list[DeliveryRow | None], int, int]:
        """The settlements and status messages of a call's answer, and when the queue goes next
        (with its count of consecutive failed attempts)."""
        status, error = result.status, result.error
        call = EGRESS[result.outcome]
        policy = self.ctx.policy
        retry_at = (policy.next_attempt(claim.retries + 1, now, batch[0].accepted_at / 1e6, result.retry_after)
                    if call.retry else None)
        settlements: list[Settlement] = []
        relay: list[DeliveryRow | None] = []
        for p in batch:
            named = result.rejected.get(p.transaction_id)
            consequence, note, why = call, error, ""
            if named is not None:
                consequence, note = NAMED, str(named.get("message"))[:500]
            elif call.retry and retry_at is None and policy.dead_lettered(now, p.accepted_at / 1e6):
                consequence, why = EGRESS[Outcome.DEAD_LETTER], f"dead-lettered after HTTP {status or error}"
            elif consequence.notice is Notice.DIP:
                why = f"the recipient's webhook answered HTTP {status}"
            settlements.append(Settlement(p.id, consequence.state, status, note))
            relay.append(self._notice(consequence, p, claim, is_status, why, named))
        if call.retry:
            return settlements, relay, _micros(retry_at or now), claim.retries + 1
        return settlements, relay, _micros(now), 0

    async def _settle(self, claim: Claim, settlements: list[Settlement], next_at: int, retries: int,
                      relay: Sequence[DeliveryRow | None], read: Sequence[PendingDelivery],
                      drained: bool = False) -> None:
        """Settle and release the queue; ``read``: what the call read (settlements are of those;
        their oldest acceptance is the queue's next floor); ``drained``: the call took everything
        pending, so the queue goes idle unless something was enqueued on it since the claim."""
        rows = [r for r in relay if r is not None]
        since = min((p.accepted_at for p in read), default=None)
        if not await self.ctx.queues.settle(claim.queue, self.owner, settlements, next_at, retries, rows, _micros(),
                                            since, claim.arrivals if drained else None):
            log.warning("lost the lease on %s before settling; another node will repeat the call", claim.queue)
            return
        if rows:
            self._wake()
        metrics = self.ctx.metrics
        if metrics is not None and (settlements or retries > claim.retries):
            now = _micros()
            accepted = {p.id: p.accepted_at for p in read}
            metrics.settled(claim.interface_id, [st.state.value for st in settlements
                                                 if st.state != DeliveryState.PENDING],
                            [(now - accepted[st.id]) / 1e6 for st in settlements
                             if st.state == DeliveryState.DELIVERED and st.id in accepted],
                            retry=retries > claim.retries)

    # -- bodies --------------------------------------------------------------------------------------

    def _publication_elements(self, claim: Claim, batch: Sequence[PendingDelivery]) -> list[bytes]:
        """Each message as its recipient gets it: A0 as routed at ingest, D0, masking."""
        ctx = self.ctx
        channel = ctx.lookups.catalogue.get(claim.interface_id)
        masks = channel.definition.obfuscation if channel is not None else {}
        publication_id = channel.publication_id if channel is not None else ids.publication_id(claim.interface_id)
        cache, elements = ctx.elements, []
        for p in batch:
            masked = masks.get(p.role, ())
            # a requeued replay is sent once: its element (a wrapper of its own) is not kept
            key = element_key(p.transaction_id, publication_id, masked) if p.replay_id is None else None
            element = cache.get(key) if cache is not None and key is not None else None
            if element is None:
                replay = None if p.replay_id is None else Replayed(
                    p.replay_id, p.accepted_at, ids.reply_correlation_id(p.correlation_id, p.replay_id))
                element = egress_element(
                    Publication(p.transaction_id, publication_id, p.payload or b"{}", p.received_at or p.accepted_at,
                                p.correlation_id, p.role, _ids(p.a0_secondary), _ids(p.a0_always), replay,
                                common_span=_span(p.common_start, p.common_end)),
                    masked, ctx.notices.ticket_url(p.transaction_id))
                if cache is not None and key is not None and p.payload is not None:
                    cache.put(key, element)
            elements.append(element)
        return elements


def fit(pending: Sequence[PendingDelivery], elements: Sequence[bytes], max_bytes: int,
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
