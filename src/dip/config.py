"""Settings: built once from arguments and environment variables, then passed explicitly."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from dip.exceptions import ConfigurationError
from dip.schemas import ENVIRONMENT_TAGS


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from exc


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".dip")
    database_url: str | None = None
    environment: str = "DEV"
    dip_id: str = "0000000000"  # the DIP's own participant ID, used as senderID in its responses
    admin_api_key: str | None = None  # the first admin key (DIP_ADMIN_API_KEY)
    tls_cert: Path | None = None  # serve HTTPS with this certificate chain (PEM) ...
    tls_key: Path | None = None  # ... and key; with tls_client_ca, participant routes need a client certificate
    tls_client_ca: Path | None = None  # the CA bundle participants' client certificates must chain to (mutual TLS)
    client_cert_header: str | None = None  # behind a TLS-terminating gateway: the header it forwards the
    # verified client certificate in (URL-encoded PEM, as nginx's $ssl_client_escaped_cert) ...
    trusted_proxies: tuple[str, ...] = ()  # ... trusted only from these addresses (CIDRs)
    signing_key: Path | None = None  # the DIP's signing key (PEM) from a file instead of the database ...
    signing_cert: Path | None = None  # ... and its certificate
    previous_signing_certs: tuple[Path, ...] = ()  # rotation: still published by GET /dip/certificate
    kek_file: Path | None = None  # the key-encryption key of encryption at rest (else DIP_KEK; required outside DEV)
    previous_kek_files: tuple[Path, ...] = ()  # KEK rotation: still read, never written with
    ca_cert: Path | None = None  # outside production: the CA the DIP issues participants' certificates under ...
    ca_key: Path | None = None  # ... and its key (dip ca init makes both)
    webhook_ca_bundle: Path | None = None  # trust these CAs for recipients' servers (default: the system's)
    webhook_client_cert: Path | None = None  # the DIP's TLS client certificate toward webhooks ...
    webhook_client_key: Path | None = None  # ... and its key (default: the DIP's signing certificate and key)
    public_base_url: str | None = None  # the URL participants sign against, when behind a proxy
    service_ticket_url: str = "https://servicedesk.dip.invalid/ticket?transactionID={transactionID}"
    max_messages_per_call: int = 50_000
    max_body_bytes: int = 300 * 1024 * 1024
    # the HTTP server's own limits (dip.ingress.server, docs/security.md "Connections")
    max_connections: int = 10_000  # lowered to what the descriptor limit allows, less a reserve
    idle_timeout_seconds: float = 5.0  # a connection's wait for its (next) request
    header_timeout_seconds: float = 10.0  # the request line and headers, from their first byte
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    body_grace_seconds: float = 10.0  # after which a body must have come at min_body_rate on average
    min_body_rate: float = 64 * 1024  # bytes a second
    signature_max_skew_seconds: float = 300
    rate_limit_messages_per_second: float = 0  # 0 = no limit
    rate_limit_burst: int = 100_000
    large_portfolio_mpans: int = 1_000_000  # E2E 6.1: IF-021 soft limits are reported for portfolios this large
    archive_rate_limit: float = 2.0  # replay, requeue and search requests per second per participant; 0 = none
    archive_burst: int = 20
    status_rate_limit: float = 1_000.0  # status-message items relayed per second per reporter; 0 = none
    status_burst: int = 50_000  # one full call
    replay_page_size: int = 50_000  # elements per replay answer (E2E 4.9); larger selections page
    retention_every_seconds: float = 600.0  # how often the purge runs (on one node at a time)
    jobs_poll_seconds: float = 5.0  # how often each node looks for due jobs
    validation_workers: int | None = None  # None = one per CPU
    state_poll_seconds: float = 1.0
    retry_initial_seconds: float = field(default_factory=lambda: _env_float("DIP_RETRY_INITIAL_SECONDS", 1))
    retry_max_seconds: float = field(default_factory=lambda: _env_float("DIP_RETRY_MAX_SECONDS", 300))
    dead_letter_after_seconds: float = field(
        default_factory=lambda: _env_float("DIP_DEAD_LETTER_AFTER_SECONDS", 1_209_600)
    )
    webhook_timeout_seconds: float = field(default_factory=lambda: _env_float("DIP_WEBHOOK_TIMEOUT_SECONDS", 30))
    registry_cache_mpans: int = 500_000  # MPANs whose appointments each node keeps in memory
    delivery_lease_seconds: float | None = None  # how long a node holds a queue; None: webhook timeout + 30 s
    delivery_concurrency: int = 64  # queues a delivery node works at once in its fast lane (dip.egress.worker)
    delivery_slow_after_seconds: float = 1.0  # a call still running after this moves to the slow lane
    delivery_max_batch: int = 5_000  # messages per webhook call at most, whatever maxMessageCount allows
    delivery_cache_mb: int = 64  # stored messages (and half as much again of built copies) kept for other recipients
    deliver: bool = True  # run the delivery worker in this process
    shutdown_grace_seconds: float = 10.0  # on stopping, calls in flight may finish; then queues are handed back
    delivery_poll_seconds: float = 0.5
    demo: bool = False
    load_default_catalogue: bool = True
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # who may read GET /metrics without an operator key
    metrics_port: int | None = None  # /metrics, /healthz, /readyz on a port of their own (always for --no-api)
    metrics_queue_seconds: float = 15.0  # how often a delivering node reads the queue depths for the gauges
    # the API activity log (dip.audit; docs/security.md "API activity log")
    activity_log: bool = True  # off only to measure what it costs (bench/audit.py)
    audit_dir: Path | None = None  # where the signed checkpoints go (default DATA_DIR/audit): outside the database
    audit_checkpoint_seconds: float = 10.0
    audit_retention_days: float = 2_557.0  # seven years; never purged with the archive

    @property
    def audit_folder(self) -> Path:
        return self.audit_dir if self.audit_dir is not None else self.data_dir / "audit"

    @property
    def requires_client_cert(self) -> bool:
        """Mutual TLS on participant routes: the DIP's own (a client CA) or a gateway's."""
        return self.tls_client_ca is not None or self.client_cert_header is not None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENT_TAGS:
            raise ConfigurationError(
                f"--environment must be one of {', '.join(ENVIRONMENT_TAGS)} (case-sensitive), not {self.environment!r}"
            )
        if len(self.dip_id) != 10 or any(c not in "0123456789abcdefABCDEF" for c in self.dip_id):
            # hexadecimal: the DIP sends messages of its own (IF-016), and a sender unique
            # reference holds its sender's ID in the official pattern's 10 hex digits
            raise ConfigurationError("--dip-id must be 10 hexadecimal characters (e.g. 0000000000)")
        positive = (self.archive_rate_limit >= 0 and self.status_rate_limit >= 0 and self.replay_page_size >= 1
                    and self.retention_every_seconds > 0 and self.jobs_poll_seconds > 0)
        if not positive:
            raise ConfigurationError("--archive-rate-limit and --status-rate-limit must be 0 or more, and the "
                                     "replay page size and the "
                                     "retention and job intervals positive")
        if (self.tls_cert is None) != (self.tls_key is None) or (self.tls_client_ca is not None
                                                                   and self.tls_cert is None):
            raise ConfigurationError("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
        if self.client_cert_header is not None and not self.trusted_proxies:
            raise ConfigurationError("--client-cert-header needs --trusted-proxies: the gateway's addresses")
        for flag, networks in (("--trusted-proxies", self.trusted_proxies), ("--metrics-allow", self.metrics_allow)):
            try:
                for network in networks:
                    ipaddress.ip_network(network)
            except ValueError as exc:
                raise ConfigurationError(f"{flag}: {exc}") from exc
        if (self.ca_cert is None) != (self.ca_key is None):
            raise ConfigurationError("--ca-cert and --ca-key go together")
        if self.ca_cert is not None and self.environment == "PRD":
            raise ConfigurationError("--ca-cert/--ca-key: the DIP is no certificate authority in production (FS 8.4): "
                                     "trust the industry CA's bundle with --tls-client-ca")
        if (self.signing_key is None) != (self.signing_cert is None):
            raise ConfigurationError("--signing-key and --signing-cert go together")
        if (self.webhook_client_cert is None) != (self.webhook_client_key is None):
            raise ConfigurationError("--webhook-client-cert and --webhook-client-key go together")
        if self.environment != "DEV" and not self.public_base_url:
            # else a signature would be checked against the Host header, which the caller chooses:
            # a request signed for another host would pass when sent with that Host
            raise ConfigurationError("--public-base-url (DIP_PUBLIC_BASE_URL) is required outside DEV: the URL "
                                     "participants call, which their signatures cover")
        limits = (self.max_connections, self.idle_timeout_seconds, self.header_timeout_seconds,
                  self.max_header_bytes, self.max_headers, self.body_grace_seconds, self.min_body_rate)
        if not all(math.isfinite(v) and v > 0 for v in limits):
            raise ConfigurationError("the connection limits (--max-connections, --idle-timeout-seconds, "
                                     "--header-timeout-seconds, --max-header-bytes, --max-headers, "
                                     "--body-grace-seconds, --min-body-rate) must be positive")
        if not 1 <= self.max_messages_per_call <= 1_000_000:
            raise ConfigurationError("--max-messages-per-call must be between 1 and 1,000,000")
        timing = (self.retry_initial_seconds, self.retry_max_seconds, self.dead_letter_after_seconds,
                  self.webhook_timeout_seconds)
        if not all(math.isfinite(v) and v > 0 for v in timing):
            raise ConfigurationError("retry, dead-letter and timeout settings must be positive finite numbers")
        if self.delivery_lease_seconds is not None and not (
                math.isfinite(self.delivery_lease_seconds) and self.delivery_lease_seconds > 0):
            raise ConfigurationError("--delivery-lease-seconds must be a positive number")
        if not (math.isfinite(self.delivery_poll_seconds) and self.delivery_poll_seconds > 0):
            raise ConfigurationError("--delivery-poll-seconds must be a positive number")
        if self.delivery_concurrency < 1 or not (math.isfinite(self.delivery_slow_after_seconds)
                                                 and self.delivery_slow_after_seconds > 0):
            raise ConfigurationError("--delivery-concurrency and --delivery-slow-after-seconds must be positive")
        if not 1 <= self.delivery_max_batch <= 50_000:
            raise ConfigurationError("--delivery-max-batch must be between 1 and 50,000")
        if not 0 <= self.delivery_cache_mb <= 65_536:
            raise ConfigurationError("--delivery-cache-mb must be between 0 (no cache) and 65,536")
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ConfigurationError("--retry-max-seconds must be at least --retry-initial-seconds")
        if not (math.isfinite(self.shutdown_grace_seconds) and self.shutdown_grace_seconds >= 0):
            raise ConfigurationError("--shutdown-grace-seconds must be 0 or more")
        if not (self.audit_checkpoint_seconds > 0 and self.audit_retention_days > 0
                and math.isfinite(self.audit_checkpoint_seconds) and math.isfinite(self.audit_retention_days)):
            raise ConfigurationError("--audit-checkpoint-seconds and --audit-retention-days must be positive")
        if "{transactionID}" not in self.service_ticket_url:
            raise ConfigurationError("--service-ticket-url must contain {transactionID}")

    def ticket_url(self, transaction_id: str) -> str:
        """The service-desk URL of a transaction (D0.serviceTicketURL, the StandardResponse's)."""
        return self.service_ticket_url.replace("{transactionID}", transaction_id)
