"""``dip``: serve the DIP, send messages, manage the catalogue. Parses arguments; builds objects; nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from dip import __version__
from dip.config import Settings
from dip.exceptions import DipError
from dip.tools import audit_cli, credentials_cli, keys_cli, migrate_cli


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the DIP (API and workers) in this process")
    p.add_argument("--host", default=os.environ.get("DIP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("DIP_PORT", "8080")))
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIP_DATA_DIR", ".dip")))
    p.add_argument("--database-url", default=os.environ.get("DIP_DATABASE_URL"),
                   help="postgresql://user@host/db (default: SQLite under --data-dir)")
    p.add_argument("--environment", default=os.environ.get("DIP_ENVIRONMENT", "DEV"),
                   help="this instance's environment tag: PRD SITB SIT UIT DEV")
    p.add_argument("--dip-id", default=os.environ.get("DIP_ID", "0000000000"),
                   help="the DIP's own 10-character participant ID")
    for flag, text in [("tls-cert", "serve HTTPS with this certificate chain (PEM)"),
                       ("tls-key", "the private key of --tls-cert (PEM)"),
                       ("tls-client-ca", "mutual TLS: participant routes need a client certificate chaining to this "
                                         "CA bundle and registered to the API key's participant or its provider"),
                       ("webhook-ca-bundle", "trust these CAs for recipients' webhook servers (private CAs); "
                                             "default: the system's"),
                       ("webhook-client-cert", "the DIP's TLS client certificate toward webhooks (PEM); default: its "
                                               "signing certificate"),
                       ("webhook-client-key", "the key of --webhook-client-cert (PEM)"),
                       ("signing-key", "the DIP's signing key (PEM; DIP_SIGNING_KEY_PASSWORD if encrypted) "
                                       "instead of the one kept in the database"),
                       ("signing-cert", "the certificate of --signing-key"),
                       ("kek-file", "the key-encryption key of encryption at rest (32 bytes: raw, hex or base64; "
                                    "dip keys new-kek makes one); required outside DEV unless DIP_KEK is set"),
                       ("ca-cert", "outside production: the CA certificate the DIP issues participants' "
                                   "certificates under (dip ca init makes one)"),
                       ("ca-key", "the key of --ca-cert"),
                       ("audit-dir", "where the API activity log's signed checkpoints are written (default "
                                     "DATA_DIR/audit): outside the database, ideally append-only storage")]:
        variable = "DIP_" + flag.upper().replace("-", "_")
        value = os.environ.get(variable)
        p.add_argument(f"--{flag}", type=Path, default=Path(value) if value else None, help=f"{text}; {variable}")
    p.add_argument("--client-cert-header", default=os.environ.get("DIP_CLIENT_CERT_HEADER"),
                   help="behind a TLS-terminating gateway: the header carrying the client certificate it verified "
                        "(URL-encoded PEM); needs --trusted-proxies")
    p.add_argument("--trusted-proxies", default=os.environ.get("DIP_TRUSTED_PROXIES", ""),
                   help="comma-separated addresses or CIDRs of the gateway: the only ones whose forwarded client "
                        "certificate is believed")
    p.add_argument("--public-base-url", default=os.environ.get("DIP_PUBLIC_BASE_URL"),
                   help="base URL participants sign against when the DIP sits behind a proxy")
    p.add_argument("--service-ticket-url", default=os.environ.get("DIP_SERVICE_TICKET_URL",
                   Settings.service_ticket_url), help="URL template with {transactionID}")
    p.add_argument("--max-messages-per-call", type=int, default=50_000)
    p.add_argument("--max-body-bytes", type=int, default=Settings.max_body_bytes)
    limits = p.add_argument_group("connection limits (docs/security.md, \"Connections\")")
    for flag, kind, default, text in [
        ("max-connections", int, Settings.max_connections, "open connections at most (further ones are closed)"),
        ("idle-timeout-seconds", float, Settings.idle_timeout_seconds, "a connection's wait for its next request"),
        ("header-timeout-seconds", float, Settings.header_timeout_seconds, "to send the request line and headers"),
        ("max-header-bytes", int, Settings.max_header_bytes, "the request line and headers together (431 over)"),
        ("max-headers", int, Settings.max_headers, "header fields in one request (431 over)"),
        ("body-grace-seconds", float, Settings.body_grace_seconds, "before --min-body-rate applies"),
        ("min-body-rate", float, Settings.min_body_rate, "bytes a second a body must average (408 under)"),
    ]:
        variable = "DIP_" + flag.upper().replace("-", "_")
        limits.add_argument(f"--{flag}", type=kind, default=kind(os.environ.get(variable, default)),
                            help=f"{text}; {variable}; default {default:g}")
    p.add_argument("--rate-limit-messages-per-second", type=float,
                   default=float(os.environ.get("DIP_RATE_LIMIT_MESSAGES_PER_SECOND", "0")))
    p.add_argument("--rate-limit-burst", type=int, default=Settings.rate_limit_burst)
    p.add_argument("--archive-rate-limit", type=float, default=Settings.archive_rate_limit,
                   help="replay, requeue and search requests per second per participant (0 = no limit)")
    p.add_argument("--shutdown-grace-seconds", type=float, default=Settings.shutdown_grace_seconds,
                   help="on SIGTERM, how long webhook calls in flight may finish before the node hands its queues "
                        "back and exits")
    p.add_argument("--metrics-port", type=int, default=int(os.environ["DIP_METRICS_PORT"])
                   if os.environ.get("DIP_METRICS_PORT") else None,
                   help="serve /metrics, /healthz and /readyz on this port too (a --no-api node always does: on "
                        "this port, else on one the system chooses, printed in its ready line)")
    p.add_argument("--metrics-allow", default=os.environ.get("DIP_METRICS_ALLOW", "127.0.0.0/8,::1/128"),
                   help="comma-separated addresses or CIDRs that may read GET /metrics without an operator key")
    p.add_argument("--large-portfolio-mpans", type=int, default=Settings.large_portfolio_mpans,
                   help="IF-021 soft limits (E2E 6.1) are reported for data services with portfolios this large")
    p.add_argument("--status-rate-limit", type=float, default=Settings.status_rate_limit,
                   help="status-message items relayed per second per reporter (0 = no limit)")
    p.add_argument("--retention-every-seconds", type=float, default=Settings.retention_every_seconds,
                   help="how often the retention purge runs (one node at a time)")
    p.add_argument("--previous-signing-cert", type=Path, action="append", default=[
                       Path(v) for v in os.environ.get("DIP_PREVIOUS_SIGNING_CERTS", "").split(",") if v],
                   help="a certificate the DIP signed with before a rotation, still published by GET "
                        "/dip/certificate during the overlap (repeatable; DIP_PREVIOUS_SIGNING_CERTS, comma-separated)")
    p.add_argument("--previous-kek-file", type=Path, action="append", default=[],
                   help="a key-encryption key being rotated away: data keys it wrapped are still read (repeatable)")
    p.add_argument("--no-activity-log", action="store_true",
                   help="do not keep the API activity log (FS 5.8.1 requires it): only to measure its cost")
    p.add_argument("--audit-retention-days", type=float,
                   default=float(os.environ.get("DIP_AUDIT_RETENTION_DAYS", Settings.audit_retention_days)),
                   help="how long the API activity log keeps an entry (its own retention, never the archive's)")
    p.add_argument("--audit-checkpoint-seconds", type=float, default=Settings.audit_checkpoint_seconds,
                   help="how often each process signs its activity-log chain's head into the audit directory")
    p.add_argument("--validation-workers", type=int, default=None,
                   help="processes for schema checks of large batches (default: one per CPU; 0 = in-process)")
    p.add_argument("--retry-initial-seconds", type=float, default=None)
    p.add_argument("--retry-max-seconds", type=float, default=None)
    p.add_argument("--dead-letter-after-seconds", type=float, default=None)
    p.add_argument("--webhook-timeout-seconds", type=float, default=None)
    p.add_argument("--delivery-lease-seconds", type=float, default=None,
                   help="how long a node holds a recipient queue before another may take it over "
                        "(default: webhook timeout + 30 s)")
    p.add_argument("--delivery-poll-seconds", type=float, default=Settings.delivery_poll_seconds,
                   help="how often a worker looks for due queues when not woken")
    p.add_argument("--delivery-concurrency", type=int, default=Settings.delivery_concurrency,
                   help="queues a delivery node works at once (its fast lane; docs/reliability.md, \"Isolation\")")
    p.add_argument("--delivery-slow-after-seconds", type=float, default=Settings.delivery_slow_after_seconds,
                   help="a webhook call still running after this leaves the fast lane, and its recipient's "
                        "queues start in the slow lane until a call of theirs ends in time again")
    p.add_argument("--delivery-max-batch", type=int, default=Settings.delivery_max_batch,
                   help="messages per webhook call at most (a recipient's maxMessageCount may lower it)")
    p.add_argument("--delivery-cache-mb", type=int, default=Settings.delivery_cache_mb,
                   help="MB of recently read messages a delivery node keeps, so a message routed to several "
                        "recipients is read from the database once, and half as much again for built copies, "
                        "which recipients that see a message alike share (0: neither)")
    p.add_argument("--no-delivery", action="store_true",
                   help="accept messages only; leave webhook delivery to other nodes on the same database")
    p.add_argument("--no-api", action="store_true",
                   help="a delivery node: serve the webhooks of messages other nodes accept on the same "
                        "database (PostgreSQL, or the same SQLite file on this machine); no HTTP API, no port")
    p.add_argument("--demo", action="store_true",
                   help="on-board demo participants and write their credentials to DATA_DIR/demo/")
    p.add_argument("--no-default-catalogue", action="store_true",
                   help="start with no channels instead of the shipped v2.1.0 catalogue")
    p.add_argument("--log-level", default=os.environ.get("DIP_LOG_LEVEL", "info"))


def settings_from(args: argparse.Namespace) -> Settings:
    timing = {
        name: getattr(args, name)
        for name in ("retry_initial_seconds", "retry_max_seconds", "dead_letter_after_seconds",
                     "webhook_timeout_seconds")
        if getattr(args, name) is not None
    }
    return Settings(
        host=args.host, port=args.port, data_dir=args.data_dir, database_url=args.database_url,
        environment=args.environment, dip_id=args.dip_id,
        admin_api_key=os.environ.get("DIP_ADMIN_API_KEY") or None,
        public_base_url=args.public_base_url, service_ticket_url=args.service_ticket_url,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
        client_cert_header=args.client_cert_header,
        trusted_proxies=tuple(p.strip() for p in args.trusted_proxies.split(",") if p.strip()),
        webhook_ca_bundle=args.webhook_ca_bundle, webhook_client_cert=args.webhook_client_cert,
        webhook_client_key=args.webhook_client_key,
        max_messages_per_call=args.max_messages_per_call, max_body_bytes=args.max_body_bytes,
        max_connections=args.max_connections, idle_timeout_seconds=args.idle_timeout_seconds,
        header_timeout_seconds=args.header_timeout_seconds, max_header_bytes=args.max_header_bytes,
        max_headers=args.max_headers, body_grace_seconds=args.body_grace_seconds, min_body_rate=args.min_body_rate,
        rate_limit_messages_per_second=args.rate_limit_messages_per_second,
        rate_limit_burst=args.rate_limit_burst, archive_rate_limit=args.archive_rate_limit,
        status_rate_limit=args.status_rate_limit, large_portfolio_mpans=args.large_portfolio_mpans,
        metrics_allow=tuple(p.strip() for p in args.metrics_allow.split(",") if p.strip()),
        metrics_port=args.metrics_port, shutdown_grace_seconds=args.shutdown_grace_seconds,
        retention_every_seconds=args.retention_every_seconds,
        kek_file=args.kek_file, previous_kek_files=tuple(args.previous_kek_file),
        signing_key=args.signing_key, signing_cert=args.signing_cert, ca_cert=args.ca_cert, ca_key=args.ca_key,
        previous_signing_certs=tuple(args.previous_signing_cert),
        activity_log=not args.no_activity_log, audit_dir=args.audit_dir, audit_retention_days=args.audit_retention_days,
        audit_checkpoint_seconds=args.audit_checkpoint_seconds,
        validation_workers=args.validation_workers,
        demo=args.demo, load_default_catalogue=not args.no_default_catalogue, deliver=not args.no_delivery,
        delivery_lease_seconds=args.delivery_lease_seconds, delivery_poll_seconds=args.delivery_poll_seconds,
        delivery_max_batch=args.delivery_max_batch, delivery_concurrency=args.delivery_concurrency,
        delivery_slow_after_seconds=args.delivery_slow_after_seconds, delivery_cache_mb=args.delivery_cache_mb,
        **timing,
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dip import allocator
    from dip.ingress.app import create_app
    from dip.ingress.server import server_config
    from dip.node import Node

    allocator.tune()
    settings = settings_from(args)
    if args.no_api:
        return _delivery_node(settings, args.log_level)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base_url = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"

    async def on_started(dip: Node) -> None:
        if settings.demo:
            from dip.tools.demo import seed

            profiles = await seed(dip, base_url)
            print(f"Demo participants (credentials in {profiles[0].parent}):", flush=True)
            for profile in profiles:
                data = json.loads(profile.read_text())
                print(f"  {data['role']:5} {data['participantId']}  {data['name']:32} {profile}", flush=True)
            print(
                "Send a first message:\n"
                f"  .venv/bin/dip send --profile {profiles[3]} --channel IF-021 --generate 3\n"
                f"Swagger UI: {base_url}/docs",
                flush=True,
            )

    app = create_app(settings, on_started=on_started)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"DIP ready on {base_url}", flush=True)

    config = server_config(app, settings, log_level=args.log_level.lower(),
                           loop="uvloop" if sys.platform != "win32" else "asyncio", access_log=False,
                           timeout_graceful_shutdown=10)
    Server(config).run()
    return 0


def _delivery_node(settings: Settings, log_level: str) -> int:
    """``dip serve --no-api``: the delivery worker (and the state poller that keeps its directory
    and catalogue current) without the HTTP API, until SIGINT or SIGTERM."""
    import asyncio
    import dataclasses
    import signal

    from dip.ingress.ops_server import OpsServer
    from dip.node import Node

    if not settings.deliver:
        print("dip: --no-api with --no-delivery leaves nothing to run", file=sys.stderr)
        return 2
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = dataclasses.replace(settings, validation_workers=0)  # it validates nothing

    async def run() -> None:
        dip = Node(settings)
        await dip.start()
        ops = OpsServer(dip, settings.host, settings.metrics_port or 0)  # without a port: one the system chooses
        await ops.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"DIP delivery node ready (worker {dip.worker.owner if dip.worker else '-'}; metrics and probes on "
              f"http://{settings.host}:{ops.port})", flush=True)
        try:
            await stop.wait()
        finally:
            await ops.stop()
            await dip.stop()

    if sys.platform != "win32":
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())
    return 0


def send(args: argparse.Namespace) -> int:
    import orjson

    from dip.tools.client import DipClient, Identity
    from dip.tools.samples import sample_payloads

    identity = Identity.load(args.profile)
    url = args.url or identity.url
    with DipClient(url, identity) as client:
        if args.generate:
            payloads = sample_payloads(client, args.channel, args.generate, on_behalf_of=_pair(args.on_behalf_of))
            body = orjson.dumps([{"payload": p} for p in payloads])
        elif args.file:
            body = Path(args.file).read_bytes()
        else:
            print("give a FILE holding a JSON array of messages, or --generate N", file=sys.stderr)
            return 2
        response = client.send_raw(args.channel, body)
    print(f"HTTP {response.status_code}")
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.status_code in (201, 207) else 1


def _pair(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    participant, _, role = value.partition(":")
    return participant, role


def _admin_key(args: argparse.Namespace) -> str | None:
    admin_key: str | None = args.admin_key or os.environ.get("DIP_ADMIN_API_KEY")
    if not admin_key:
        key_file = args.data_dir / "admin-api-key"
        if key_file.exists():
            admin_key = key_file.read_text().strip()
    if not admin_key:
        print("an admin key is needed: --admin-key, DIP_ADMIN_API_KEY or DATA_DIR/admin-api-key", file=sys.stderr)
    return admin_key


def registry_load(args: argparse.Namespace) -> int:
    from dip.tools.registry_load import load_file

    admin_key = _admin_key(args)
    if not admin_key:
        return 2
    try:
        loaded = load_file(Path(args.file), args.url, admin_key, args.batch_size, progress=not args.quiet)
    except (OSError, ValueError) as exc:
        print(f"dip: {exc}", file=sys.stderr)
        return 1
    print(f"loaded {loaded} appointments")
    return 0


def import_openapi(args: argparse.Namespace) -> int:
    from dip.tools.catalogue_import import import_into_dip

    admin_key = _admin_key(args)
    if not admin_key:
        return 2
    summary = import_into_dip(Path(args.directory), args.url, admin_key, only=args.interface)
    for line in summary:
        print(line)
    return 0


def replay(args: argparse.Namespace) -> int:
    """POST /dip-channel/{id}/replay/{recipient} as a participant, following continuation tokens."""
    from datetime import UTC, datetime, timedelta

    import orjson

    from dip import ids
    from dip.tools.client import DipClient, Identity

    identity = Identity.load(args.profile)
    recipient = args.recipient or identity.participant_id
    request: dict[str, object] = {}
    if args.transaction_id:
        request["transactionIDs"] = args.transaction_id
    else:
        request["datetimeFrom"] = args.since or ids.timestamp(datetime.now(UTC) - timedelta(days=1))
    for key, value in (("datetimeTo", args.until), ("eventCode", args.event_code), ("MPAN", args.mpan),
                       ("version", args.version)):
        if value:
            request[key] = value
    elements: list[dict[str, object]] = []
    token, pages = None, 0
    with DipClient(args.url or identity.url, identity) as client:
        while True:
            response = client.post(f"/dip-channel/{args.channel}/replay/{recipient}", orjson.dumps(request),
                                   {"X-Continuation-Token": token} if token else None)
            if response.status_code == 204:
                break
            if response.status_code not in (200, 206):
                print(f"HTTP {response.status_code}\n{response.text}")
                return 1
            elements += response.json()
            pages += 1
            if response.status_code == 200:
                break
            token = response.headers["x-continuation-token"]
    if args.out:
        Path(args.out).write_bytes(orjson.dumps(elements))
    print(f"replayed {len(elements)} message(s) in {pages} page(s)" + (f" into {args.out}" if args.out else ""))
    for element in elements[:args.show]:
        payload = element["payload"]
        assert isinstance(payload, dict)
        original = element["originalWrapper"]
        assert isinstance(original, dict)
        print(f"  {original['D0']['transactionID']} -> {payload['CommonBlock']['D0']['transactionID']}")
    return 0


def redrive(args: argparse.Namespace) -> int:
    """POST /admin/redrive on a running DIP; prints how many deliveries went back on their queues."""
    import httpx

    admin_key = _admin_key(args)
    if not admin_key:
        return 2
    body = {"recipientId": args.recipient, "channel": args.channel, "from": args.since, "to": args.until,
            "states": args.state or ["dead"]}
    try:
        answer = httpx.post(f"{args.url.rstrip('/')}/admin/redrive", json={k: v for k, v in body.items() if v},
                            headers={"X-API-Key": admin_key}, timeout=600)
    except httpx.HTTPError as exc:
        print(f"dip: {exc}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        print(f"dip: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    print(f"redriven {answer.json()['redriven']} deliveries")
    return 0


def ca_init(args: argparse.Namespace) -> int:
    """``dip ca init``: a CA for one test environment; the key readable by its owner only."""
    from dip.admin.certificate_authority import make_ca

    key_pem, cert_pem = make_ca(args.environment, args.days)
    args.out.mkdir(parents=True, exist_ok=True)
    key = args.out / "ca.key"
    if key.exists() or (args.out / "ca.pem").exists():
        raise DipError(f"{args.out} holds a CA already: keep it, or choose another folder")
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    (args.out / "ca.pem").write_bytes(cert_pem)
    print(f"CA for {args.environment}: {args.out / 'ca.pem'} (certificate), {key} (key: keep it secret)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dip", description="Data Integration Platform for GB MHHS")
    parser.add_argument("--version", action="version", version=f"dip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)

    s = sub.add_parser("send", help="sign and send a batch of messages to a channel")
    s.add_argument("--profile", type=Path, required=True, help="participant profile JSON (e.g. .dip/demo/SDS.json)")
    s.add_argument("--channel", required=True, help="interface ID, e.g. IF-021")
    s.add_argument("--url", help="DIP base URL (default: the profile's)")
    s.add_argument("--generate", type=int, default=0, help="send N generated sample messages")
    s.add_argument("--on-behalf-of", help="PARTICIPANT:ROLE to send as a connection provider")
    s.add_argument("file", nargs="?", help="JSON file holding a DIPMessageArray")

    c = sub.add_parser("catalogue", help="manage the channel catalogue")
    csub = c.add_subparsers(dest="catalogue_command", required=True)
    imp = csub.add_parser("import-openapi", help="import the official DIP API interface schemas (L1 checks)")
    imp.add_argument("directory", help="folder of the official OpenAPI source (…/elexon-dip-api-v2.1.0)")
    imp.add_argument("--url", default="http://127.0.0.1:8080")
    imp.add_argument("--admin-key")
    imp.add_argument("--data-dir", type=Path, default=Path(".dip"))
    imp.add_argument("--interface", action="append", help="only this interface (repeatable)")

    r = sub.add_parser("registry", help="the MPAN address registry")
    rsub = r.add_subparsers(dest="registry_command", required=True)
    load = rsub.add_parser("load", help="bulk-load appointments from CSV or JSON Lines into a running DIP")
    load.add_argument("file", help="CSV with header MPANCore,role,participantId,effectiveFrom,effectiveTo, or .jsonl")
    load.add_argument("--url", default="http://127.0.0.1:8080")
    load.add_argument("--admin-key")
    load.add_argument("--data-dir", type=Path, default=Path(".dip"))
    load.add_argument("--batch-size", type=int, default=50_000)
    load.add_argument("--quiet", action="store_true", help="no progress bar")

    rp = sub.add_parser("replay", help="replay archived publications to yourself (a participant's request)")
    rp.add_argument("--profile", type=Path, required=True, help="participant profile JSON (e.g. .dip/demo/MDS.json)")
    rp.add_argument("--channel", required=True, help="interface ID, e.g. IF-021")
    rp.add_argument("--recipient", help="the recipient (default: the profile's participant; a DCP names its client)")
    rp.add_argument("--url", help="DIP base URL (default: the profile's)")
    rp.add_argument("--from", dest="since", help="accepted from (ISO 8601 with offset; default: a day ago)")
    rp.add_argument("--to", dest="until", help="accepted up to (ISO 8601 with offset)")
    rp.add_argument("--transaction-id", action="append", help="replay these (repeatable, up to 100)")
    rp.add_argument("--event-code")
    rp.add_argument("--mpan")
    rp.add_argument("--version", help="schema version")
    rp.add_argument("--out", help="write the replayed DIPMessageEgressArray to this file")
    rp.add_argument("--show", type=int, default=10, help="list this many (original -> new transaction ID)")

    rd = sub.add_parser("redrive", help="put dead-lettered (or failed, rejected) deliveries back on their queues")
    rd.add_argument("--url", default="http://127.0.0.1:8080")
    rd.add_argument("--admin-key")
    rd.add_argument("--data-dir", type=Path, default=Path(".dip"))
    rd.add_argument("--recipient", help="only this participant's deliveries")
    rd.add_argument("--channel", help="only this channel's, e.g. IF-021")
    rd.add_argument("--from", dest="since", help="queued from (ISO 8601 with offset)")
    rd.add_argument("--to", dest="until", help="queued up to (ISO 8601 with offset)")
    rd.add_argument("--state", action="append", choices=["dead", "failed", "rejected"],
                    help="which undelivered deliveries (repeatable; default dead)")

    sim = sub.add_parser("simulate", help="simulate market participants around a running DIP (SIT-style testing)")
    sim.add_argument("--url", default="http://127.0.0.1:8080", help="the DIP's base URL")
    sim.add_argument("--admin-key", help="default: DIP_ADMIN_API_KEY, else DATA_DIR/admin-api-key")
    sim.add_argument("--data-dir", type=Path, default=Path(".dip"))
    sim.add_argument("--mpans", type=int, default=1000, help="MPANs in the seeded registry")
    sim.add_argument("--rate", type=float, default=100.0, help="messages per second (IF-021 and IF-005)")
    sim.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    sim.add_argument("--behaviour", nargs="+", action="extend", metavar="[WHO=]KIND[:ARG]",
                     help="webhook answers: accept, reject:F, slow:S, 503[:F], hang[:F], drop[:F]")
    sim.add_argument("--seed", type=int, default=0, help="seeds the traffic mix and the webhooks' random choices")
    sim.add_argument("--drain-seconds", type=float, default=60.0, help="wait at most this long for deliveries")
    sim.add_argument("--changes", type=int, help="change-of-supplier scenarios (default: one per second)")
    sim.add_argument("--webhook-host", default="127.0.0.1", help="address the webhook server listens on")
    sim.add_argument("--webhook-port", type=int, default=0)
    sim.add_argument("--callback-host", help="host name the DIP calls the webhooks at (default: --webhook-host)")
    sim.add_argument("--environment", default="DEV", help="environment tag of the messages")
    sim.add_argument("--quiet", action="store_true", help="no progress output")

    audit_cli.add_parser(sub)
    credentials_cli.add_parsers(sub)
    keys_cli.add_parsers(sub)
    migrate_cli.add_parser(sub)
    ca = sub.add_parser("ca", help="the DIP as certificate authority outside production")
    casub = ca.add_subparsers(dest="ca_command", required=True)
    init = casub.add_parser("init", help="make a CA key and certificate for one environment (not PRD)")
    init.add_argument("--environment", required=True, help="DEV, SIT, UAT, ... : each has a CA of its own")
    init.add_argument("--out", type=Path, required=True, help="folder for ca.pem and ca.key (created)")
    init.add_argument("--days", type=int, default=3650)

    args = parser.parse_args(argv)
    try:
        if args.command == "audit":
            return audit_cli.command(args)
        if args.command == "ca":
            return ca_init(args)
        if args.command == "migrate":
            return migrate_cli.command(args)
        if args.command == "keys":
            return keys_cli.command(args)
        if args.command in ("certificate", "api-key", "signing-key"):
            admin_key = _admin_key(args)
            return credentials_cli.command(args, admin_key) if admin_key else 2
        if args.command == "serve":
            return serve(args)
        if args.command == "send":
            return send(args)
        if args.command == "registry":
            return registry_load(args)
        if args.command == "redrive":
            return redrive(args)
        if args.command == "replay":
            return replay(args)
        if args.command == "simulate":
            from dip.tools.simulate import command

            admin_key = _admin_key(args)
            return command(args, admin_key) if admin_key else 2
        return import_openapi(args)
    except DipError as exc:
        print(f"dip: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
