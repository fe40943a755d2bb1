"""The DIP service: owns the store, the in-memory catalogue and directory, and every state change.

API routes parse and authenticate; everything that changes state goes through here, and this
is the only caller of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING

import msgspec
import orjson

from dip import ids
from dip.catalogue import Catalogue, Channel, build_channel, parse_definition
from dip.codes import Code
from dip.config import Settings
from dip.directory import Directory, Participant, Webhook, hash_api_key, new_api_key
from dip.exceptions import CatalogueError, UniqueViolation
from dip.ingest import Caller, Judge, Verdict
from dip.ingest import judge as judge_batch
from dip.ratelimit import MessageRateLimiter
from dip.registry import RegistryCache, RegistryView
from dip.responses import ResponseItem, item, standard_response
from dip.signing import SigningKey, generate_identity, load_certificate_pem, load_private_key_pem
from dip.store import AppointmentRow, ParticipantRow, Store, WebhookRow, open_store
from dip.validation import Checked, SchemaChecker, paused_gc, spec_for

if TYPE_CHECKING:
    from dip.delivery.worker import DeliveryWorker

log = logging.getLogger("dip")


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class DipService:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url, settings.data_dir)
        self.catalogue = Catalogue({})
        self.directory = Directory()
        self.checker = SchemaChecker(settings.validation_workers)
        self.limiter = MessageRateLimiter(settings.rate_limit_messages_per_second, settings.rate_limit_burst)
        self.registry = RegistryCache(self.store, capacity=settings.registry_cache_mpans)
        self._version = -1
        self._channel_bytes: dict[str, bytes] = {}
        self.signing_key: SigningKey | None = None
        self.worker: DeliveryWorker | None = None
        self.signing_cert_pem = b""
        self._poller: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, once started

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.store.open()
        await self._bootstrap()
        await self._load_identity()
        await self.reload(force=True)
        self.checker.start()
        await asyncio.get_running_loop().run_in_executor(None, self.checker.warm_up)
        gc.freeze()  # what start-up built lives for ever: keep it out of every later collection
        if self.settings.deliver:
            from dip.delivery.worker import DeliveryWorker

            self.worker = DeliveryWorker(self, poll_seconds=self.settings.delivery_poll_seconds)
            self.worker.start()
            await self.worker.listen()
        self._poller = asyncio.create_task(self._poll(), name="dip-state-poller")

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait({self._poller})
        self.checker.close()
        await self.store.close()

    async def _bootstrap(self) -> None:
        now = micros(datetime.now(UTC))
        if self.settings.admin_api_key:
            await self.store.add_admin_key(hash_api_key(self.settings.admin_api_key), now)
        elif not (await self.store.load_directory()).admin_keys:
            key = new_api_key()
            await self.store.add_admin_key(hash_api_key(key), now)
            path = self.settings.data_dir / "admin-api-key"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key + "\n", encoding="utf-8")
            os.chmod(path, 0o600)
            log.warning("no admin key configured: created one in %s", path)
        if self.settings.load_default_catalogue and not await self.store.load_channels():
            for interface_id, definition in default_catalogue(with_demo_schemas=self.settings.demo):
                await self.store.put_channel(interface_id, definition, now)

    async def _load_identity(self) -> None:
        """The DIP's signing key and certificate: one per installation, shared by every node."""
        key_pem, cert_pem = generate_identity(f"DIP {self.settings.environment} {self.settings.dip_id}", days=3650)
        stored_key, stored_cert = await self.store.dip_identity(
            key_pem.decode("ascii"), cert_pem.decode("ascii"), micros(datetime.now(UTC)))
        self.signing_key = load_private_key_pem(stored_key.encode("ascii"))
        self.signing_cert_pem = stored_cert.encode("ascii")

    async def reload(self, force: bool = False) -> None:
        async with self._reload_lock:
            version = await self.store.state_version()
            if version == self._version and not force:
                return
            rows = await self.store.load_directory()
            channel_rows = await self.store.load_channels()
            self.directory = Directory(
                participants={r.id: Participant(r.id, r.name, frozenset(r.roles), r.active) for r in rows.participants},
                api_keys=dict(rows.api_keys),
                certificates=dict(rows.certificates),
                providers={(p, d): frozenset(roles) for p, d, roles in rows.providers},
                admin_keys=frozenset(rows.admin_keys),
                webhooks={(w.participant_id, w.kind, w.interface_id): Webhook(*w) for w in rows.webhooks},
            )
            channels: dict[str, Channel] = {}
            for interface_id, body in channel_rows:
                known = self.catalogue.get(interface_id)
                if known is not None and self._channel_bytes.get(interface_id) == body:
                    channels[interface_id] = known  # unchanged: keep the parsed, checked channel
                    continue
                try:
                    channels[interface_id] = parse_definition(interface_id, body)
                    self._channel_bytes[interface_id] = body
                except CatalogueError:
                    log.exception("stored channel %s is not valid; it is unavailable", interface_id)
            self.catalogue = Catalogue(channels)
            self._version = version

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.state_poll_seconds)
            try:
                await self.reload()
            except Exception:  # keep polling through a database outage
                log.exception("could not refresh the catalogue and participants")

    # -- sending -----------------------------------------------------------------------------

    def ticket_url(self, transaction_id: str) -> str:
        return self.settings.service_ticket_url.replace("{transactionID}", transaction_id)

    async def ingest(self, channel: Channel, caller: Caller, raws: Sequence[bytes | msgspec.Raw],
                     now: datetime, body: bytes | None = None) -> tuple[int, bytes]:
        """Accept a batch: returns the HTTP status and the StandardResponse body.

        400 when any message fails its schema or names another interface (nothing is stored);
        otherwise the per-message checks decide, the accepted messages are committed in one
        transaction, and the answer is 201 (all accepted) or 207.

        The schema stage yields its results a chunk at a time; each chunk is judged and handed to
        the store's open batch at once (on PostgreSQL, COPYed inside the open transaction), so
        storing overlaps checking. A schema failure anywhere discards the whole batch.
        """
        stamp = ids.timestamp(now)
        started = time.perf_counter()
        spec = spec_for(channel, self.settings.environment)
        checked: list[Checked] = []
        failed: list[Checked] = []
        verdicts: list[Verdict] = []
        judge_time = store_time = 0.0
        judge = Judge(channel, self.directory, caller, now, micros(now))
        by_mpan = _needs_registry(channel)
        if by_mpan:
            await self.registry.refresh()
        try:
            async with self.store.message_batch() as batch, \
                    contextlib.aclosing(self.checker.chunks(spec, raws, body)) as chunks:
                async for chunk in chunks:
                    checked.extend(chunk)
                    failed.extend(c for c in chunk if c.code is not None)
                    if failed:
                        continue  # keep checking, to report every failing message; store nothing
                    t = time.perf_counter()
                    if by_mpan:
                        judge.registry = await self.registry.view(c.header.mpan for c in chunk if c.header)
                    with paused_gc():
                        chunk_verdicts = judge(chunk, raws)
                    accepted = [v for v in chunk_verdicts if v.row is not None]
                    judge_time += time.perf_counter() - t
                    t = time.perf_counter()
                    skipped = await batch.add([v.row for v in accepted if v.row is not None],
                                              [v.deliveries for v in accepted],
                                              [v.appointments for v in accepted] if channel.definition.registryUpdates
                                              else ())
                    store_time += time.perf_counter() - t
                    verdicts.extend(_mark_duplicates(chunk_verdicts, [accepted[i].index for i in skipped]))
                if failed:
                    raise _BatchRejected
                t = time.perf_counter()
            store_time += time.perf_counter() - t  # the commit
        except _BatchRejected:
            return 400, standard_response([self._schema_item(c, caller, stamp) for c in failed], stamp)
        except UniqueViolation:
            # A concurrent batch stored one of these references between our check and our write,
            # and the transaction was rolled back: judge again and store in one go (that path
            # re-checks inside its own transaction and retries).
            registry = await self._registry_view(channel, checked)
            verdicts = judge_batch(channel, self.directory, caller, checked, raws, now, micros(now), registry)
            accepted = [v for v in verdicts if v.row is not None]
            skipped = await self.store.insert_messages([v.row for v in accepted if v.row is not None],
                                                       [v.deliveries for v in accepted],
                                                       [v.appointments for v in accepted])
            verdicts = _mark_duplicates(verdicts, [accepted[i].index for i in skipped])
        if self.worker is not None and any(v.deliveries for v in verdicts):
            self.worker.wake()
        t = time.perf_counter()
        with paused_gc():
            items = [self._verdict_item(v, caller, stamp) for v in verdicts]
            response = standard_response(items, stamp)
        status = 201 if all(v.accepted for v in verdicts) else 207
        log.debug(
            "%s: %d messages, %d accepted in %.3f s; of which checks %.3f s, store %.3f s, response %.3f s",
            channel.interface_id, len(raws), sum(v.accepted for v in verdicts), time.perf_counter() - started,
            judge_time, store_time, time.perf_counter() - t,
        )
        return status, response

    async def validate(self, channel: Channel, event_code: str, caller: Caller, raws: Sequence[bytes | msgspec.Raw],
                       now: datetime) -> tuple[bool, str]:
        """POST /validate: the checks of ingest, without storing anything."""
        checked = await self.checker.check(spec_for(channel, self.settings.environment), raws)
        problems: list[str] = []
        for c in checked:
            if c.code is not None:
                problems.append(f"[{c.index}] {c.code} {c.help}")
            elif c.header is not None and c.header.event_code != event_code:
                problems.append(f"[{c.index}] {Code.SCHEMA_FAILURE.value} /CommonBlock/S0/eventCode "
                                f"'{c.header.event_code}' is not {event_code}")
        if not problems:
            registry = await self._registry_view(channel, checked)
            for v in judge_batch(channel, self.directory, caller, checked, raws, now, micros(now), registry):
                if not v.accepted:
                    problems.append(f"[{v.index}] {v.code.value} {v.help}")
        if problems:
            return False, "; ".join(problems)[:20_000]
        return True, f"{len(raws)} message(s) valid for {channel.interface_id} {event_code}"

    async def _registry_view(self, channel: Channel, checked: list[Checked]) -> RegistryView | None:
        if not _needs_registry(channel):
            return None
        await self.registry.refresh()
        return await self.registry.view(c.header.mpan for c in checked if c.header)

    def _schema_item(self, c: Checked, caller: Caller, stamp: str) -> ResponseItem:
        return item(
            code=Code(c.code or Code.SCHEMA_FAILURE.value),
            sent_timestamp=stamp,
            sender_id=self.settings.dip_id,
            recipient_id=caller.principal.id,
            sur=c.sur,
            help_text=f"message {c.index}: {c.help}",
        )

    def _verdict_item(self, v: Verdict, caller: Caller, stamp: str) -> ResponseItem:
        row = v.row
        return item(
            code=v.code,
            sent_timestamp=stamp,
            sender_id=self.settings.dip_id,
            recipient_id=v.sender_id or caller.principal.id,
            transaction_id=row.transaction_id if row else None,
            sur=v.sur,
            correlation_id=row.correlation_id if row else None,
            dcp_id=v.dcp_id,
            help_text=None if row else f"message {v.index}: {v.help}",
            service_ticket_url=self.ticket_url(row.transaction_id) if row else None,
        )

    # -- administration ----------------------------------------------------------------------

    async def put_participant(self, participant_id: str, name: str, roles: list[str]) -> bool:
        created = await self.store.put_participant(
            ParticipantRow(participant_id, name, tuple(sorted(set(roles))), True), micros(datetime.now(UTC))
        )
        await self.reload()
        return created

    async def offboard(self, participant_id: str) -> bool:
        """Deactivate the participant and remove it from every channel it is named on."""
        updates = []
        for channel in self.catalogue.channels.values():
            always = channel.definition.routing.always
            if participant_id in always.participants:
                routing = msgspec.structs.replace(
                    channel.definition.routing,
                    always=msgspec.structs.replace(
                        always, participants=[p for p in always.participants if p != participant_id]
                    ),
                )
                changed = build_channel(
                    channel.interface_id, msgspec.structs.replace(channel.definition, routing=routing)
                )
                updates.append((channel.interface_id, changed.to_json()))
        done = await self.store.offboard_participant(participant_id, updates, micros(datetime.now(UTC)))
        await self.reload()
        return done

    async def new_api_key(self, participant_id: str) -> str:
        key = new_api_key()
        await self.store.add_api_key(participant_id, hash_api_key(key), micros(datetime.now(UTC)))
        await self.reload()
        return key

    async def register_certificate(self, participant_id: str, pem: str) -> tuple[bool, str]:
        """Register a signing certificate; returns (created, fingerprint).

        Raises CatalogueError-free ValueError subclasses from dip.signing for a bad PEM; a
        certificate already registered to someone else is refused (ValueError).
        """
        from dip.signing import fingerprint

        cert = load_certificate_pem(pem)
        fp = fingerprint(cert)
        holder = await self.store.certificate_holder(fp)
        if holder is not None and holder != participant_id:
            raise ValueError(f"this certificate is already registered to participant {holder}")
        created = await self.store.add_certificate(
            participant_id, fp, pem, micros(cert.not_valid_after_utc), micros(datetime.now(UTC))
        )
        await self.reload()
        return created, fp

    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: list[str]) -> None:
        await self.store.put_connection_provider(
            participant_id, dcp_id, tuple(sorted(set(roles))), micros(datetime.now(UTC))
        )
        await self.reload()

    async def put_channel(self, interface_id: str, body: bytes) -> tuple[bool, Channel]:
        channel = parse_definition(interface_id, body)
        created = await self.store.put_channel(interface_id, channel.to_json(), micros(datetime.now(UTC)))
        await self.reload()
        return created, channel

    async def put_webhook(self, hook: Webhook) -> bool:
        created = await self.store.put_webhook(WebhookRow(
            hook.participant_id, hook.kind, hook.interface_id, hook.url, hook.max_message_count, hook.max_payload_kb,
            hook.registered_by), micros(datetime.now(UTC)))
        await self.reload()
        # messages waiting for this webhook go now, on whichever node serves their queue
        await self.store.make_due(hook.participant_id, micros(datetime.now(UTC)))
        if self.worker is not None:
            self.worker.wake()
        return created

    async def delete_webhook(self, participant_id: str, kind: str, interface_id: str = "") -> bool:
        deleted = await self.store.delete_webhook(participant_id, kind, interface_id)
        await self.reload()
        return deleted

    async def load_appointments(self, rows: list[AppointmentRow]) -> int:
        """Store MPAN appointments; the last of several with the same key in one load wins."""
        unique = {(r.mpan, r.role, r.effective_from): r for r in rows}
        return await self.store.put_appointments(list(unique.values()))

    async def delete_channel(self, interface_id: str) -> bool:
        deleted = await self.store.delete_channel(interface_id)
        await self.reload()
        return deleted


def _needs_registry(channel: Channel) -> bool:
    return bool(channel.definition.routing.secondary or channel.definition.registryUpdates)


class _BatchRejected(Exception):
    """A message failed its schema: the open batch is discarded."""


def _mark_duplicates(verdicts: list[Verdict], indexes: list[int]) -> list[Verdict]:
    """Turn the accepted verdicts whose reference the store already had into MSG1006."""
    if not indexes:
        return verdicts
    duplicate = set(indexes)
    return [
        Verdict(v.index, Code.SUR_DUPLICATED,
                "senderUniqueReference was already used by an earlier message from this sender",
                v.sur, v.sender_id, v.dcp_id)
        if v.index in duplicate else v
        for v in verdicts
    ]


def default_catalogue(with_demo_schemas: bool = False) -> list[tuple[str, bytes]]:
    """The shipped catalogue: every v2.1.0 channel; the demo adds small custom-block schemas."""
    data = resources.files("dip").joinpath("data")
    channels = orjson.loads(data.joinpath("default_catalogue.json").read_bytes())["channels"]
    schemas = orjson.loads(data.joinpath("demo_schemas.json").read_bytes()) if with_demo_schemas else {}
    out = []
    for definition in channels:
        interface_id = definition["interfaceID"]
        if interface_id in schemas:
            definition = {**definition, "customBlockSchema": schemas[interface_id]}
        out.append((interface_id, parse_definition(interface_id, orjson.dumps(definition)).to_json()))
    return out
