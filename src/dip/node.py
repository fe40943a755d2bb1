"""A DIP node: the composition root. Builds the store, the shared state, the use cases and the
delivery worker, each given what it needs; starts and stops them.

Routes (dip.ingress) call the use cases held here; nothing but the use cases and the start-up below
touches the store.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import ssl
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from dip.accept.accept_batch import AcceptBatch
from dip.accept.rate_limits import SharedRateLimiter
from dip.accept.registry import RegistryCache
from dip.accept.replay_guard import ReplayGuard
from dip.accept.schema import SchemaChecker
from dip.accept.submission_limits import CHANNEL as SUBMISSION_CHANNEL
from dip.accept.submission_limits import HOUR, SubmissionLimits
from dip.accept.validate_batch import ValidateBatch
from dip.admin.certificate_authority import CertificateAuthority
from dip.admin.certificates import Certificates
from dip.admin.channels import Channels
from dip.admin.operators import Operators
from dip.admin.participants import Participants
from dip.admin.registry import RegistryLoads
from dip.admin.signing_key import SigningKeys
from dip.admin.views import OperatorViews
from dip.admin.webhooks import Webhooks
from dip.archive.consumption_replay import ConsumptionReplay
from dip.archive.redrive import Redriving
from dip.archive.replay import Replay
from dip.archive.requeue import Requeue, RequeueAppender
from dip.archive.retention import Retention
from dip.archive.search import Search
from dip.archive.status_replay import StatusReplay
from dip.audit import chain as audit_chain
from dip.audit.export import ActivityReader
from dip.audit.writer import ActivityLog
from dip.catalogue import ANSWERED_BY_DIP, default_catalogue, parse_definition
from dip.config import Settings
from dip.directory import hash_api_key, new_api_key
from dip.egress.breaker import CircuitBreakers
from dip.egress.dispatch import WorkerContext
from dip.egress.element_cache import ElementCache
from dip.egress.retry import RetryPolicy
from dip.egress.sender import WebhookSender
from dip.egress.status import RelayStatusMessages, StatusNotices
from dip.egress.worker import DeliveryWorker, new_owner
from dip.exceptions import ConfigurationError
from dip.jobs import Job, Scheduler
from dip.metrics import Metrics
from dip.signing import Signer, SigningKey
from dip.state import SharedState
from dip.store import Store, open_store
from dip.store.encryption import Keyring, load_keks
from dip.store.message_cache import MessageCache

log = logging.getLogger("dip")


def _now() -> int:
    return int(time.time() * 1_000_000)


def _chain_name() -> str:
    """This process's activity-log chain: unique across nodes and restarts, safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", new_owner())


class Node:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url, settings.data_dir)
        self.state = SharedState(self.store, settings.state_poll_seconds)
        self.checker = SchemaChecker(settings.validation_workers)
        self.limiter = SharedRateLimiter(self.store, settings.rate_limit_messages_per_second, settings.rate_limit_burst)
        self.submission_limits = SubmissionLimits(self.store, settings.large_portfolio_mpans)
        self.channel_limiter = SharedRateLimiter(self.store, 0, 1, kind="channel")  # rates from the channels
        self.archive_limiter = SharedRateLimiter(self.store, settings.archive_rate_limit, settings.archive_burst,
                                                 kind="archive")
        self.status_limiter = SharedRateLimiter(self.store, settings.status_rate_limit, settings.status_burst,
                                                kind="status")
        self.replay_guard = ReplayGuard(self.store, settings.signature_max_skew_seconds)
        self.registry = RegistryCache(self.store, capacity=settings.registry_cache_mpans)
        self.signing_keys = SigningKeys(self.store, settings)
        self.state.on_change.append(self.signing_keys.reload)  # a rotation on another node applies here
        self.signer: Signer | None = None  # the DIP's key and certificate now (shared: rotations apply at once)
        self.worker: DeliveryWorker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, once started
        # the use cases
        self.metrics = Metrics()
        self.accept = AcceptBatch(self.store, self.state, self.checker, self.registry, settings, self.wake_delivery,
                                  self.metrics)
        self.validate = ValidateBatch(self.state, self.checker, self.registry, settings.environment)
        self.relay_status = RelayStatusMessages(self.store, self.state, settings.dip_id, self.wake_delivery)
        self.participants = Participants(self.store, self.state)
        authority = (CertificateAuthority.from_files(settings.ca_cert, settings.ca_key, settings.environment)
                     if settings.ca_cert is not None and settings.ca_key is not None else None)
        self.certificates = Certificates(self.store, self.state, self.participants, authority)
        self.operators = Operators(self.store, self.state)
        self.channels = Channels(self.store, self.state)
        self.webhooks = Webhooks(self.store, self.state, self.wake_delivery)
        self.registry_loads = RegistryLoads(self.store)
        self.views = OperatorViews(self.store)
        self.requeue_appender = RequeueAppender(self.store, new_owner(), self.wake_delivery)
        self.replay = Replay(self.store, settings.ticket_url, settings.replay_page_size)
        self.requeue = Requeue(self.store, self.state, self.requeue_appender.wake)
        self.redrive = Redriving(self.store, self.wake_delivery)
        self.search = Search(self.store, self.state)
        self.status_replay = StatusReplay(self.store, settings.replay_page_size)
        self.policy = RetryPolicy(settings.retry_initial_seconds, settings.retry_max_seconds,
                                  settings.dead_letter_after_seconds)
        self.retention = Retention(self.store, self.state, policy=self.policy)
        self.activity = (ActivityLog(self.store, _chain_name(), settings.audit_folder,
                                     checkpoint_seconds=settings.audit_checkpoint_seconds)
                         if settings.activity_log else None)
        self.activity_reader = ActivityReader(self.store, [settings.audit_folder])
        self.scheduler = Scheduler(self.store, new_owner(), [
            Job("retention", settings.retention_every_seconds, self._purge),
            Job("activity-retention", 3_600.0, self._purge_activity),
            Job("portfolio", 86_400.0, self._measure_portfolios),
        ], settings.jobs_poll_seconds)

    async def _purge(self, now: int) -> tuple[str, bool]:
        purged = await self.retention.purge(now)
        return purged.summary(), purged.finished

    async def _purge_activity(self, now: int) -> tuple[str, bool]:
        """The activity log's own retention (never the archive's): each chain's entries older than
        ``audit_retention_days`` go, after a signed cut that says where the chain now starts."""
        assert self.signing_key is not None
        horizon = now - int(self.settings.audit_retention_days * 86_400 * 1_000_000)
        deleted = 0
        for chain, seq, hash_ in await self.store.activity_due(horizon):
            deleted += await self.store.cut_activity(audit_chain.cut(self.signing_key, chain, seq, hash_, now))
        return f"{deleted} activity log entries older than {self.settings.audit_retention_days:g} days removed", True

    async def _measure_portfolios(self, now: int) -> tuple[str, bool]:
        """E2E 6.1: each data service's portfolio, the distinct MPANs it sent on IF-021 in the last
        day; hourly counts older than a week are dropped."""
        found = await self.store.measure_portfolios(SUBMISSION_CHANNEL, now - 86_400_000_000, now)
        await self.store.forget_submission_counts(now // HOUR - 24 * 7)
        self.submission_limits.forget()
        return f"portfolios of {len(found)} data services measured", True

    def _protect_payloads(self) -> None:
        """Encryption at rest of the payloads of security categories 2-4 (dip.store.encryption):
        with the KEKs given; outside DEV they are required."""
        s = self.settings
        keks = load_keks(s.kek_file, s.previous_kek_files, os.environ.get("DIP_KEK"))
        if not keks:
            if s.environment != "DEV":
                raise ConfigurationError("outside DEV, payloads with personal data are encrypted at rest: give the "
                                         "key-encryption key with --kek-file (or DIP_KEK); dip keys new-kek makes one")
            log.info("no --kek-file: payloads are stored unencrypted (DEV only)")
            return
        catalogue = self.state

        def sensitive(interface_id: str) -> bool:
            channel = catalogue.catalogue.get(interface_id)
            return channel is None or channel.definition.securityCategory >= 2

        self.store.protect(Keyring(keks), sensitive)

    async def readiness(self) -> list[str]:
        """Why this node cannot serve (none: ready): its database must answer within 2 s, and its
        delivery loop, where it runs one, be running."""
        problems = []
        try:
            async with asyncio.timeout(2):
                await self.store.state_version()
        except Exception as exc:  # any failure to answer is "not ready", with its reason
            problems.append(f"the database does not answer: {type(exc).__name__}: {exc}"[:300])
        if self.settings.deliver and (self.worker is None or not self.worker.running):
            problems.append("the delivery loop is not running")
        return problems

    async def _queue_depths(self) -> list[tuple[str, str, int, float]]:
        """(recipient, channel, messages waiting, oldest's age in seconds) of every queue (the gauges)."""
        now = _now()
        return [(q.recipient_id, q.interface_id, q.pending,
                 (now - q.head_accepted_at) / 1e6 if q.head_accepted_at is not None else 0.0)
                for q in await self.views.queues()]

    def wake_delivery(self) -> None:
        """Deliveries were committed: this node's worker (if it has one) looks at once."""
        if self.worker is not None:
            self.worker.wake()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.store.open()
        await self._bootstrap()
        await self._load_identity()
        await self.state.reload(force=True)
        self._protect_payloads()
        self.checker.start()
        await asyncio.get_running_loop().run_in_executor(None, self.checker.warm_up)
        gc.freeze()  # what start-up built lives for ever: keep it out of every later collection
        if self.settings.deliver:
            self.worker = self._delivery_worker()
            self.worker.start()
            await self.worker.listen()
            self.metrics.start_queue_gauges(self._queue_depths, self.settings.metrics_queue_seconds)
        self.requeue_appender.start()
        if self.activity is not None:
            assert self.signer is not None
            await self.activity.start(self.signer)
        await self.scheduler.start()
        self.state.start_polling()

    async def stop(self) -> None:
        await self.metrics.stop()
        await self.scheduler.stop()
        await self.requeue_appender.stop()
        if self.worker is not None:
            await self.worker.stop(self.settings.shutdown_grace_seconds)
        await self.state.stop_polling()
        if self.activity is not None:
            await self.activity.stop()
        self.checker.close()
        await self.store.close()

    def _delivery_worker(self) -> DeliveryWorker:
        s = self.settings
        assert self.signer is not None
        cache_bytes = s.delivery_cache_mb * 1024 * 1024
        internal = {"IF-015": ConsumptionReplay(self.store, self.state, s.dip_id, s.environment)}
        assert internal.keys() == ANSWERED_BY_DIP.keys(), "every channel the DIP answers needs its handler"
        ctx = WorkerContext(
            metrics=self.metrics,
            queues=self.store,
            lookups=self.state,
            sender=WebhookSender(self.signer, s.webhook_timeout_seconds,
                                 public_only=s.environment != "DEV", tls=self._webhook_tls()),
            policy=self.policy,
            notices=StatusNotices(s.dip_id, s.ticket_url),
            breakers=CircuitBreakers(cool_off=min(30.0, s.retry_max_seconds)),
            max_batch=s.delivery_max_batch,
            messages=MessageCache(cache_bytes) if cache_bytes else None,
            # half as much again for built elements: one call's worth (5,000 IF-021 of 4.5 KB) and more
            elements=ElementCache(cache_bytes // 2) if cache_bytes else None,
            dip_id=s.dip_id,
            internal=internal,
        )
        # a lease outlives any call it covers, so a live node never loses a queue mid-call
        lease = max(s.delivery_lease_seconds or s.webhook_timeout_seconds + 30, s.webhook_timeout_seconds + 1)
        return DeliveryWorker(ctx, lease_seconds=lease, poll_seconds=s.delivery_poll_seconds,
                              concurrency=s.delivery_concurrency, slow_after=s.delivery_slow_after_seconds)

    def _webhook_tls(self) -> ssl.SSLContext:
        """How the DIP calls webhooks over TLS: it verifies the recipient's server certificate
        (against the system's CAs, or --webhook-ca-bundle for private CAs) and presents its own
        client certificate when the recipient asks for one: --webhook-client-cert, else its signing
        certificate, which recipients can fetch from GET /dip/certificate to trust."""
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.webhook_ca_bundle) if s.webhook_ca_bundle else None)
        if s.webhook_client_cert is not None and s.webhook_client_key is not None:
            context.load_cert_chain(str(s.webhook_client_cert), str(s.webhook_client_key))
        else:
            assert self.signing_key is not None
            key_pem = self.signing_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
            # ssl loads a chain only from files: written for the load, readable by this user alone
            with tempfile.TemporaryDirectory() as folder:
                cert, key = Path(folder) / "dip.pem", Path(folder) / "dip.key"
                cert.write_bytes(self.signing_cert_pem)
                key.touch(mode=0o600)
                key.write_bytes(key_pem)
                context.load_cert_chain(str(cert), str(key))
        return context

    async def _bootstrap(self) -> None:
        """The first admin key and the shipped catalogue, on a database that has neither."""
        now = _now()
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
            shipped = default_catalogue(with_demo_schemas=self.settings.demo)
            for days in {parse_definition(i, d).definition.retentionDays for i, d in shipped}:
                await self.store.add_retention_class(days)
            for interface_id, definition in shipped:
                await self.store.put_channel(interface_id, definition, now)

    async def _load_identity(self) -> None:
        self.signer = await self.signing_keys.load()

    @property
    def signing_key(self) -> SigningKey | None:
        return self.signer.key if self.signer is not None else None

    @property
    def signing_cert_pem(self) -> bytes:
        return self.signer.cert_pem if self.signer is not None else b""
