"""``dip simulate``: market participants around a running DIP, for SIT-style testing (FS 5.13.3).

Given the DIP's URL and the operator's admin key, the simulator on-boards a cast (three suppliers,
a registration service, a smart metering service, a smart data service, the market-wide data
service and one distributor per GSP group, each with its own API key and certificate), loads an
MPAN registry, serves every recipient's webhooks from one aiohttp server
(``/{participant}/{channel}`` and ``/{participant}/status``), sends traffic at a set rate, drains
and reports. The flows:

- IF-021 consumption from the SDS, routed by the registry to the MPAN's supplier and distributor
  and always to the MDS;
- BP009: the MSS sends IF-005 [MeterInstall] to REGS; the simulated REGS answers each one it
  accepts on IF-006 with ``senderCorrelationID`` = the ``D0.initialCorrelationID`` it received,
  to the MSS (primary) and the MPAN's parties; a round trip is complete when the MSS receives it;
- change of supplier: IF-001 is given ``registryUpdates`` (B002 appoints the incoming supplier,
  B003 ends the outgoing one; the original definition is put back at the end), and for fresh
  MPANs the SDS sends IF-021 for a day, REGS sends IF-001 [ChangeOfSupplier] from that day, and
  the SDS sends IF-021 for the day again: the first must reach the old supplier, the second the
  new one.

Webhooks answer as ``--behaviour`` says ([WHO=]KIND[:ARG]; WHO a role or participant ID, else
everyone): ``accept``; ``reject:F`` answers 207 rejecting a fraction F of the messages
(``RCP1061``), which the DIP relays to their senders' status webhooks; ``slow:S`` waits S seconds;
``503:F``, ``hang:F``, ``drop:F`` answer 503, never answer, or reset the connection on a fraction F
of calls (all calls without F). Status webhooks always accept. Every call's DIP signature is
checked against ``GET /dip/certificate``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import orjson
from aiohttp import web
from tqdm import tqdm

from dip import ids
from dip.exceptions import SignatureError
from dip.signing import fingerprint, load_certificate_pem, verify_request
from dip.tools.client import DipClient
from dip.tools.samples import consumption_block, meter_install_block, mpan_core
from dip.tools.testing import AdminClient

SUPPLIERS = ("1000000001", "1000000002", "1000000003")
REGS, MSS, SDS, MDS = "1100000001", "1200000001", "1300000001", "1400000001"
GSP_GROUPS = {"10": "_A", "11": "_B", "12": "_C", "13": "_D", "14": "_E", "15": "_F", "16": "_G",
              "17": "_P", "18": "_N", "19": "_J", "20": "_H", "21": "_K", "22": "_L", "23": "_M"}
CHANNELS = ("IF-021", "IF-005", "IF-006", "IF-001")
REGISTRY_BASE = 3_000_000_000  # MPAN seeds of the registry; clear of the demo's (dip.tools.samples)
CHANGE_BASE = 8_000_000_000  # fresh MPANs per run for the change-of-supplier scenarios
BP009_SHARE = 0.1  # of the traffic: IF-005; the rest is IF-021
TICK = 0.1
REJECTED = "RCP1061 - MPAN Invalid or Unknown"
CHANGE_RULES = [
    {"role": "SUP", "participant": "/CustomBlock/B002/incomingSupplierDIPID",
     "effectiveFrom": "/CustomBlock/B002/supplierEffectiveFromDate", "eventCodes": ["[ChangeOfSupplier]"]},
    {"role": "SUP", "participant": "/CustomBlock/B003/outgoingSupplierDIPID",
     "effectiveTo": "/CustomBlock/B003/supplierEffectiveToDate", "eventCodes": ["[ChangeOfSupplier]"]},
]


def ldso(distributor: str) -> str:
    """The simulated distributor's DIP ID for a distributor (MPAN) ID 10-23."""
    return f"15000000{distributor}"


def cast() -> dict[str, str]:
    """Participant ID -> role."""
    people = {s: "SUP" for s in SUPPLIERS} | {REGS: "REGS", MSS: "MSS", SDS: "SDS", MDS: "MDS"}
    return people | {ldso(d): "LDSO" for d in GSP_GROUPS}


def change_of_supplier(outgoing: str, incoming: str, day: datetime) -> dict[str, Any]:
    """IF-001 [ChangeOfSupplier] custom block (every block the official schema requires): the
    incoming supplier from ``day``, the outgoing one until the day before."""
    since = "2020-01-01T00:00:00+00:00"
    return {
        "B013": {"CSSRegistrationID": secrets.token_hex(16)},
        "B002": {"incomingSupplierDIPID": incoming, "incomingSupplierMPID": "SIMB",
                 "supplierEffectiveFromDate": ids.timestamp(day)},
        "B003": {"outgoingSupplierDIPID": outgoing, "outgoingSupplierMPID": "SIMA",
                 "supplierEffectiveToDate": ids.timestamp(day - timedelta(days=1))},
        "B004": {"domesticPremiseIndicator": True, "domesticPremiseIndicatorEffectiveFromDate": since},
        "B022": {"meteringPointPostcode": "SW1A 1AA", "addressLine1": "1 Simulated Street"}
                | {f"addressLine{n}": None for n in range(2, 10)},
        "B023": {"connectionTypeIndicator": "W", "connectionTypeEffectiveFromDate": since, "energyDirection": "I",
                 "meteredIndicator": True},
        "B024": {"DUOSTariffID": "001", "DUOSTariffIDEffectiveFromDate": since},
        "B025": {"energisationStatus": "E", "energisationStatusEffectiveFromDate": since},
        "B026": {"marketSegmentIndicator": "S", "marketSegmentIndicatorEffectiveFromDate": since},
    }


def holders(index: int, mpan: str) -> dict[str, str]:
    """Who the seeded registry appoints to the ``index``-th MPAN, by role."""
    return {"SUP": SUPPLIERS[index % len(SUPPLIERS)], "LDSO": ldso(mpan[:2]), "MSS": MSS, "SDS": SDS}


@dataclass(frozen=True)
class Behaviour:
    who: str | None  # role or participant ID; None: every participant
    kind: str  # accept reject slow 503 hang drop
    value: float  # reject/503/hang/drop: fraction of messages or calls; slow: seconds

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        who, _, rest = spec.rpartition("=")
        kind, _, arg = rest.partition(":")
        defaults = {"accept": 0.0, "reject": 0.1, "slow": 0.5, "503": 1.0, "hang": 1.0, "drop": 1.0}
        if kind not in defaults:
            raise ValueError(f"behaviour {spec!r}: kind must be one of {', '.join(defaults)}")
        try:
            value = float(arg) if arg else defaults[kind]
        except ValueError:
            raise ValueError(f"behaviour {spec!r}: {arg!r} is not a number") from None
        if value < 0 or (kind != "slow" and value > 1):
            raise ValueError(f"behaviour {spec!r}: a fraction is between 0 and 1, a delay is not negative")
        return cls(who or None, kind, value)


@dataclass(frozen=True)
class Config:
    url: str
    admin_key: str
    mpans: int = 1000
    rate: float = 100.0  # messages per second (IF-021 and IF-005; answers and scenarios come on top)
    seconds: float = 10.0
    behaviours: tuple[Behaviour, ...] = ()
    seed: int = 0
    drain_seconds: float = 60.0
    changes: int | None = None  # change-of-supplier scenarios; default about one per second
    webhook_host: str = "127.0.0.1"  # where the webhook server listens
    webhook_port: int = 0  # 0: any free port
    callback_host: str | None = None  # the host the DIP calls back (default: webhook_host)
    environment: str = "DEV"
    registry_batch: int = 50_000  # appointment rows per POST /admin/mpan-registry
    progress: bool = True


@dataclass
class ChannelStats:
    sent: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # code or HTTP status -> messages
    delivered: int = 0  # accepted and received by every simulated participant in its A0 lists
    received_by_role: Counter[str] = field(default_factory=Counter)


@dataclass
class ParticipantStats:
    role: str
    publications: int = 0  # messages received in calls answered 201/207 (first receipt each)
    duplicates: int = 0
    rejected: int = 0  # of those, rejected in a 207
    faults: Counter[str] = field(default_factory=Counter)  # calls answered 503 / hung / dropped
    status_messages: int = 0
    bad_signatures: int = 0


@dataclass
class Summary:
    url: str
    seconds: float
    rate: float
    achieved_rate: float
    mpans: int
    behaviours: list[str]
    channels: dict[str, ChannelStats]
    participants: dict[str, ParticipantStats]
    rejections: int = 0  # messages our webhooks rejected in a 207
    rejections_reported: int = 0  # of those, status messages that reached their senders
    status_messages: int = 0
    status_from_dip: int = 0
    round_trips_started: int = 0  # IF-005 accepted
    round_trips_answered: int = 0  # IF-006 accepted
    round_trips_completed: int = 0  # IF-006 received by the MSS, correlated to its IF-005
    round_trips_mismatched: int = 0
    round_trip_ms: dict[str, float] = field(default_factory=dict)
    changes: int = 0  # IF-001 [ChangeOfSupplier] accepted
    routed_before: int = 0  # IF-021 before the change delivered to the outgoing supplier only
    routed_after: int = 0  # IF-021 after the change delivered to the incoming supplier only
    latency_ms: dict[str, float] = field(default_factory=dict)
    unknown: int = 0  # messages received that this run did not send (earlier runs')
    unsettled: int = 0  # accepted messages not received by all their simulated recipients

    def problems(self) -> list[str]:
        found = []
        if self.round_trips_mismatched:
            found.append(f"{self.round_trips_mismatched} IF-006 with a correlation ID matching no IF-005")
        if self.routed_before < self.changes or self.routed_after < self.changes:
            found.append(f"routing after {self.changes} supplier change(s): {self.routed_before} correct "
                         f"before, {self.routed_after} after")
        if bad := sum(p.bad_signatures for p in self.participants.values()):
            found.append(f"{bad} webhook call(s) not signed by the DIP")
        if self.rejections_reported < self.rejections:
            found.append(f"{self.rejections - self.rejections_reported} rejection(s) never reached their sender")
        if self.unsettled:
            found.append(f"{self.unsettled} accepted message(s) not delivered to every recipient")
        return found

    def render(self) -> str:
        out = [f"DIP simulation against {self.url}: {self.seconds:g} s at {self.rate:g} msg/s "
               f"(achieved {self.achieved_rate:.1f}), {self.mpans:,} MPANs",
               f"behaviours: {', '.join(self.behaviours) or 'accept'}", "",
               f"{'channel':8} {'sent':>8} {'accepted':>9} {'refused':>8} {'delivered':>10}  received by role"]
        for name, c in self.channels.items():
            roles = ", ".join(f"{r} {n}" for r, n in sorted(c.received_by_role.items()))
            refused = f"{sum(c.refused.values())}" + (f" {dict(c.refused)}" if c.refused else "")
            out.append(f"{name:8} {c.sent:8} {c.accepted:9} {refused:>8} {c.delivered:10}  {roles}")
        out += ["", f"{'participant':11} {'role':5} {'received':>8} {'dup':>4} {'207-rej':>7} "
                    f"{'503/hang/drop':>13} {'status':>6}"]
        for pid, p in self.participants.items():
            faults = "/".join(str(p.faults[k]) for k in ("503", "hang", "drop"))
            out.append(f"{pid:11} {p.role:5} {p.publications:8} {p.duplicates:4} {p.rejected:7} {faults:>13} "
                       f"{p.status_messages:6}")
        rt = "  ".join(f"{k} {v:.0f} ms" for k, v in self.round_trip_ms.items())
        lat = "  ".join(f"{k} {v:.0f} ms" for k, v in self.latency_ms.items())
        out += ["",
                f"207 rejections: {self.rejections}, reported to their senders: {self.rejections_reported}",
                f"status messages received: {self.status_messages} ({self.status_from_dip} from the DIP itself)",
                f"BP009 round trips (IF-005 -> REGS -> IF-006 -> MSS): {self.round_trips_started} started, "
                f"{self.round_trips_answered} answered, {self.round_trips_completed} completed, "
                f"{self.round_trips_mismatched} mismatched" + (f"; {rt}" if rt else ""),
                f"registry updates (IF-001 [ChangeOfSupplier]): {self.changes} changes; IF-021 to the old "
                f"supplier before: {self.routed_before}, to the new one after: {self.routed_after}",
                f"latency 201 -> webhook: {lat or 'no deliveries'}",
                f"unsettled at the end: {self.unsettled}; messages from earlier runs received: {self.unknown}"]
        problems = self.problems()
        out += ["", "problems: " + ("; ".join(problems) if problems else "none")]
        return "\n".join(out)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 (nearest rank) and max of seconds, in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)
    pick = {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in (50, 90, 99)}
    return {k: v * 1000 for k, v in (pick | {"max": ordered[-1]}).items()}


@dataclass
class _Track:
    """One message this run sent, on its way to its recipients."""

    channel: str
    accepted_at: float | None = None
    expected: set[str] | None = None  # simulated participants in its A0 lists (known at first receipt)
    received: dict[str, float] = field(default_factory=dict)  # participant -> when

    @property
    def complete(self) -> bool:
        return self.accepted_at is not None and self.expected is not None and self.received.keys() >= self.expected


class Simulation:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.base = config.url.rstrip("/")
        self.roles = cast()
        self.rng = random.Random(config.seed)
        self.hook_rng = random.Random(config.seed + 1)
        self.clients: dict[str, DipClient] = {}
        self.channels = {c: ChannelStats() for c in CHANNELS}
        self.people = {pid: ParticipantStats(role) for pid, role in self.roles.items()}
        self.tracks: dict[str, _Track] = {}
        self.open: set[str] = set()  # accepted, not yet complete
        self.latencies: list[float] = []
        self.rejections: dict[tuple[str, str], str] = {}  # (transaction, rejecting participant) -> sender
        self.reported: set[tuple[str, str]] = set()
        self.status_from_dip = 0
        self.requests: dict[str, float] = {}  # IF-005 correlation ID -> accepted at
        self.replies: dict[str, float] = {}  # IF-006 correlation ID -> received by the MSS at
        self.mismatched = 0
        self.answered: set[str] = set()  # IF-005 transactions REGS has queued an answer for
        self.installs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answering = 0
        self.checks: dict[str, str] = {}  # IF-021 transaction -> the only supplier that should get it
        self.changes = 0
        self.posting = 0
        self.sent_traffic = 0
        self.traffic_seconds = 0.0
        self.unknown = 0
        self.dip_fingerprint = ""
        self.callback = ""
        self.stopping = asyncio.Event()
        self.http: aiohttp.ClientSession | None = None
        self.limit = asyncio.Semaphore(16)
        self.behaviours = {pid: [b for b in config.behaviours if b.who in (None, pid, role)]
                           for pid, role in self.roles.items()}
        day = datetime.now(UTC) - timedelta(days=1)
        self.day = day.replace(hour=0, minute=0, second=0, microsecond=0)
        block_rng = random.Random(config.seed)
        self.blocks = [consumption_block(SDS, self.day, block_rng) for _ in range(16)]
        nonce = secrets.randbelow(999_000)  # fresh scenario MPANs: earlier runs' changes cannot interfere
        count = config.changes if config.changes is not None else max(1, min(100, round(config.seconds)))
        self.change_mpans = [mpan_core(CHANGE_BASE + nonce * 1000 + k) for k in range(min(count, 1000))]

    def say(self, text: str) -> None:
        if self.config.progress:
            print(text, file=sys.stderr, flush=True)

    # -- seeding (blocking, run in a thread) ------------------------------------------------

    def seed(self, admin: AdminClient) -> dict[str, Any] | None:
        """On-board the cast, load the registry, give IF-001 its rules; returns IF-001 as it was."""
        self.say(f"on-boarding {len(self.roles)} participants")
        for pid, role in self.roles.items():
            self.clients[pid] = DipClient(self.base, admin.onboard(pid, [role], environment=self.config.environment))
        pem = admin.http.get("/dip/certificate")
        pem.raise_for_status()
        self.dip_fingerprint = fingerprint(load_certificate_pem(pem.content))
        self.load_registry(admin)
        original = admin.get_channel("IF-001")
        rules = list(original.get("registryUpdates") or [])
        if all(rule in rules for rule in CHANGE_RULES):
            return None
        response = admin.put_channel("IF-001", original | {"registryUpdates": rules + CHANGE_RULES})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"could not give IF-001 its registryUpdates: {response.status_code} {response.text}")
        return original

    def registry_rows(self) -> Iterator[dict[str, Any]]:
        """Four appointments per MPAN (the change scenarios' MPANs start with the first supplier)."""
        seeded = ((i, mpan_core(REGISTRY_BASE + i)) for i in range(self.config.mpans))
        for index, mpan in itertools.chain(seeded, ((0, m) for m in self.change_mpans)):
            for role, pid in holders(index, mpan).items():
                yield {"MPANCore": mpan, "role": role, "participantId": pid, "effectiveFrom": "2020-01-01",
                       "effectiveTo": None}

    def load_registry(self, admin: AdminClient) -> None:
        total = (self.config.mpans + len(self.change_mpans)) * 4
        batch: list[dict[str, Any]] = []
        with tqdm(total=total, unit="rows", desc="MPAN registry", disable=not self.config.progress,
                  file=sys.stderr) as bar:
            for row in itertools.chain(self.registry_rows(), [None]):
                if row is not None:
                    batch.append(row)
                if batch and (row is None or len(batch) == self.config.registry_batch):
                    response = admin.http.post("/admin/mpan-registry", content=orjson.dumps({"appointments": batch}),
                                               headers={"Content-Type": "application/json"}, timeout=600)
                    if response.status_code != 201:
                        raise RuntimeError(f"registry load refused: {response.status_code} {response.text[:500]}")
                    bar.update(len(batch))
                    batch = []

    # -- webhooks -----------------------------------------------------------------------------

    async def serve(self) -> web.AppRunner:
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_post("/{pid}/status", self.on_status)
        app.router.add_post("/{pid}/{channel}", self.on_publication)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, self.config.webhook_host, self.config.webhook_port).start()
        port = runner.addresses[0][1]
        self.callback = f"http://{self.config.callback_host or self.config.webhook_host}:{port}"
        return runner

    def signed(self, request: web.Request, body: bytes) -> bool:
        try:
            signer = verify_request(request.headers, "POST", self.callback + request.path, body, datetime.now(UTC))
        except SignatureError:
            return False
        return signer.fingerprint == self.dip_fingerprint

    async def on_publication(self, request: web.Request) -> web.StreamResponse:
        pid, channel = request.match_info["pid"], request.match_info["channel"]
        body = await request.read()
        at = time.monotonic()
        person = self.people.get(pid)
        if person is None:
            return web.Response(status=404)
        if not self.signed(request, body):
            person.bad_signatures += 1
        fault, delay, reject = None, 0.0, 0.0
        for b in self.behaviours[pid]:
            if b.kind == "slow":
                delay += b.value
            elif b.kind == "reject":
                reject = b.value
            elif b.kind in ("503", "hang", "drop") and fault is None and self.hook_rng.random() < b.value:
                fault = b.kind
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            person.faults[fault] += 1
            if fault == "hang":
                await self.stopping.wait()
            elif fault == "drop" and request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        stamp = ids.timestamp(datetime.now(UTC))
        items = []
        for entry in orjson.loads(body):
            common = entry["payload"]["CommonBlock"]
            tid, sender = common["D0"]["transactionID"], common["S1"]["senderDIPID"]
            rejected = bool(reject) and self.hook_rng.random() < reject
            items.append({"transactionID": tid, "senderUniqueReference": common["S1"]["senderUniqueReference"],
                          "correlationID": common["D0"]["initialCorrelationID"], "sentTimestamp": stamp,
                          "senderID": pid, "recipientID": sender, "DIPConnectionProviderID": None,
                          "message": REJECTED if rejected else "RCP0000 - Message Success",
                          "help": "simulated rejection" if rejected else None, "serviceTicketURL": None})
            if not self.receive(tid, pid, channel, at, common):
                continue
            if rejected:
                person.rejected += 1
                self.rejections[(tid, pid)] = sender
            else:
                self.react(tid, pid, channel, at, entry["payload"])
        status = 207 if any(i["message"] == REJECTED for i in items) else 201
        return web.Response(status=status, body=orjson.dumps({"messageArray": items, "timestamp": stamp}),
                            content_type="application/json")

    def receive(self, tid: str, pid: str, channel: str, at: float, common: dict[str, Any]) -> bool:
        """Record a publication; False for a duplicate."""
        track = self.tracks.get(tid)
        if track is None:
            self.unknown += 1
            track = self.tracks[tid] = _Track(channel)
        person = self.people[pid]
        if pid in track.received:
            person.duplicates += 1
            return False
        person.publications += 1
        track.received[pid] = at
        if track.channel in self.channels:
            self.channels[track.channel].received_by_role[person.role] += 1
        if track.expected is None:
            a0 = common.get("A0") or {}
            named = [*a0.get("primaryRecipients", []), *a0.get("secondaryRecipients", []), *a0.get("always", [])]
            track.expected = {p for p in named if p in self.roles}
        if track.accepted_at is not None:
            self.latencies.append(max(0.0, at - track.accepted_at))
        self.settle(tid, track)
        return True

    def settle(self, tid: str, track: _Track) -> None:
        if tid in self.open and track.complete:
            self.open.discard(tid)
            self.channels[track.channel].delivered += 1

    def react(self, tid: str, pid: str, channel: str, at: float, payload: dict[str, Any]) -> None:
        """What the receiving participant does next: REGS answers IF-005, the MSS closes the round trip."""
        common = payload["CommonBlock"]
        if channel == "IF-005" and pid == REGS and tid not in self.answered:
            self.answered.add(tid)
            self.installs.put_nowait(payload)
        elif channel == "IF-006" and pid == MSS:
            correlation = common["D0"]["initialCorrelationID"]
            if common["S1"]["senderCorrelationID"] != correlation:
                self.mismatched += 1
            else:  # matched against the IF-005 answers at the end: the two may arrive in either order
                self.replies.setdefault(correlation, at)

    async def on_status(self, request: web.Request) -> web.StreamResponse:
        pid = request.match_info["pid"]
        body = await request.read()
        person = self.people.get(pid)
        if person is None:
            return web.Response(status=404)
        if not self.signed(request, body):
            person.bad_signatures += 1
        for entry in orjson.loads(body):
            person.status_messages += 1
            key = (entry.get("transactionID"), entry.get("senderID"))
            if self.rejections.get(key) == pid:
                self.reported.add(key)
            elif entry.get("senderID") not in self.roles:
                self.status_from_dip += 1
        return web.Response(status=201)

    async def register(self, admin: AdminClient, on: bool) -> None:
        """Register (or remove) every webhook: each channel a participant's role receives, and status."""
        wanted: list[tuple[str, str]] = [(pid, "") for pid in self.roles]
        for channel in CHANNELS:
            routing = (await asyncio.to_thread(admin.get_channel, channel))["routing"]
            receivers = {*routing["primary"], *routing["secondary"], *routing["always"]["roles"]}
            wanted += [(pid, channel) for pid, role in self.roles.items() if role in receivers]
        self.say(f"{'registering' if on else 'removing'} {len(wanted)} webhooks")
        for pid, channel in wanted:
            path = f"/dip-channel/{channel}/pubconfig/{pid}" if channel else f"/statusmessage/config/{pid}"
            body = orjson.dumps({"callbackURL": f"{self.callback}/{pid}/{channel or 'status'}"}) if on else b""
            status, text = await self.call("POST" if on else "DELETE", pid, path, body)
            if on and status not in (200, 201):
                raise RuntimeError(f"webhook registration {path} refused: {status} {text[:300]}")

    # -- sending ------------------------------------------------------------------------------

    async def call(self, method: str, pid: str, path: str, body: bytes) -> tuple[int, str]:
        assert self.http is not None
        url = self.base + path
        headers = self.clients[pid].signed_headers(method, url, body)
        async with self.http.request(method, url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def send(self, channel: str, pid: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """POST a batch; the DIP's item for each accepted message, None for each refused one."""
        stats = self.channels[channel]
        stats.sent += len(payloads)
        body = orjson.dumps([{"payload": p} for p in payloads])
        async with self.limit:
            self.posting += 1
            try:
                status, text = await self.call("POST", pid, f"/dip-channel/{channel}", body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.refused[f"error {type(exc).__name__}"] += len(payloads)
                return [None] * len(payloads)
            finally:
                self.posting -= 1
        at = time.monotonic()
        try:
            items = orjson.loads(text)["messageArray"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            items = []
        if status not in (201, 207) or len(items) != len(payloads):
            stats.refused[f"HTTP {status}"] += len(payloads)
            return [None] * len(payloads)
        out: list[dict[str, Any] | None] = []
        for item in items:
            code = str(item.get("message", "")).split(" ", 1)[0]
            if code != "MSG0000":
                stats.refused[code] += 1
                out.append(None)
                continue
            stats.accepted += 1
            tid = item["transactionID"]
            track = self.tracks.setdefault(tid, _Track(channel))
            if track.received:  # a webhook was quicker than our reading of the answer
                self.unknown -= 1
                self.latencies += [max(0.0, t - at) for t in track.received.values()]
            track.channel, track.accepted_at = channel, at
            self.open.add(tid)
            self.settle(tid, track)
            out.append(item)
        return out

    def m0(self, mpan: str) -> dict[str, Any]:
        return {"mpan": mpan, "distributor_id": ldso(mpan[:2]), "gsp_group": GSP_GROUPS[mpan[:2]]}

    def usage(self, mpan: str) -> dict[str, Any]:
        block = self.blocks[self.rng.randrange(len(self.blocks))]
        return self.clients[SDS].message("IF-021", "[ActivePower]", "011", block, **self.m0(mpan))

    async def send_traffic(self, count: int) -> None:
        installs = sum(self.rng.random() < BP009_SHARE for _ in range(count))
        mss, now = self.clients[MSS], datetime.now(UTC)
        picks = [mpan_core(REGISTRY_BASE + self.rng.randrange(self.config.mpans)) for _ in range(count)]
        if count - installs:
            await self.send("IF-021", SDS, [self.usage(m) for m in picks[installs:]])
        if installs:
            block = meter_install_block(now)
            payloads = [mss.message("IF-005", "[MeterInstall]", "011", block, primary_recipients=[REGS],
                                    **self.m0(m)) for m in picks[:installs]]
            for item in await self.send("IF-005", MSS, payloads):
                if item is not None and item.get("correlationID"):
                    self.requests[item["correlationID"]] = self.tracks[item["transactionID"]].accepted_at or 0.0

    async def answer_installs(self) -> None:
        """The simulated REGS: IF-006 for each IF-005 it accepted, copying the correlation ID."""
        regs = self.clients[REGS]
        while True:
            batch = [await self.installs.get()]
            while not self.installs.empty() and len(batch) < 1000:
                batch.append(self.installs.get_nowait())
            self.answering = len(batch)
            payloads = []
            for p in batch:
                common = p["CommonBlock"]
                payloads.append(answer := regs.message(
                    "IF-006", common["S0"]["eventCode"], "011", p["CustomBlock"], **self.m0(common["M0"]["MPANCore"]),
                    primary_recipients=[common["S1"]["senderDIPID"]],
                    correlation_id=common["D0"]["initialCorrelationID"]))
                answer["CommonBlock"]["R0"] = {"responseCode": "A", "responseMessages": []}  # accepted
            await self.send("IF-006", REGS, payloads)
            self.answering = 0

    async def change_supplier(self, mpan: str) -> None:
        """IF-021 for the day; IF-001 changes the supplier from that day; IF-021 for the day again."""
        old, new = SUPPLIERS[0], SUPPLIERS[1]
        (before,) = await self.send("IF-021", SDS, [self.usage(mpan)])
        if before is None:
            return
        self.checks[before["transactionID"]] = old
        message = self.clients[REGS].message("IF-001", "[ChangeOfSupplier]", "011",
                                             change_of_supplier(old, new, self.day), primary_recipients=[new, old],
                                             **self.m0(mpan))
        (change,) = await self.send("IF-001", REGS, [message])
        if change is None:
            return
        self.changes += 1
        (after,) = await self.send("IF-021", SDS, [self.usage(mpan)])
        if after is not None:
            self.checks[after["transactionID"]] = new

    async def traffic(self) -> None:
        cfg = self.config
        total = int(cfg.rate * cfg.seconds)
        starts = [((k + 0.5) * cfg.seconds / len(self.change_mpans), m) for k, m in enumerate(self.change_mpans)]
        tasks: set[asyncio.Task[None]] = set()
        begin = time.monotonic()
        with tqdm(total=math.ceil(cfg.seconds), unit="s", desc="traffic", disable=not cfg.progress,
                  file=sys.stderr) as bar:
            while (elapsed := time.monotonic() - begin) < cfg.seconds or self.sent_traffic < total:
                due = min(total, int(cfg.rate * elapsed), self.sent_traffic + 5000) - self.sent_traffic
                if due > 0:
                    await self.limit.acquire()  # backpressure: wait while 16 batches are on their way
                    self.limit.release()
                    self.sent_traffic += due
                    self.traffic_seconds = max(elapsed, TICK)
                    tasks.add(asyncio.create_task(self.send_traffic(due)))
                while starts and starts[0][0] <= elapsed:
                    tasks.add(asyncio.create_task(self.change_supplier(starts.pop(0)[1])))
                tasks = {t for t in tasks if not t.done()}
                if int(elapsed) > bar.n:
                    bar.set_postfix_str(f"sent {self.sent_traffic}, on the way {len(self.open)}", refresh=False)
                    bar.update(min(bar.total, int(elapsed)) - bar.n)
                await asyncio.sleep(TICK)
            await asyncio.gather(*tasks)

    def settled(self) -> bool:
        return (not self.open and self.installs.empty() and not self.answering and not self.posting
                and len(self.reported) == len(self.rejections))

    async def drain(self) -> None:
        deadline = time.monotonic() + self.config.drain_seconds
        self.say(f"draining: {len(self.open)} messages on their way (up to {self.config.drain_seconds:g} s)")
        # polled: "settled" depends on webhooks, status hooks, answers and posts all at once
        while not self.settled() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(TICK)

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> Summary:
        admin = AdminClient(self.base, self.config.admin_key)
        runner = await self.serve()
        original: dict[str, Any] | None = None
        try:
            original = await asyncio.to_thread(self.seed, admin)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as self.http:
                await self.register(admin, on=True)
                answers = asyncio.create_task(self.answer_installs())
                try:
                    await self.traffic()
                    await self.drain()
                finally:
                    answers.cancel()
                    await asyncio.wait({answers})
                    await self.register(admin, on=False)
        finally:
            self.stopping.set()
            if original is not None:
                await asyncio.to_thread(admin.put_channel, "IF-001", original)
            await runner.cleanup()
            admin.close()
        return self.summary()

    def summary(self) -> Summary:
        completed = [self.replies[c] - self.requests[c] for c in self.replies if c in self.requests]

        def only(tid: str, supplier: str) -> bool:
            track = self.tracks.get(tid)
            got = {p for p in (track.received if track else ()) if self.roles[p] == "SUP"}
            return got == {supplier}
        return Summary(
            url=self.base, seconds=self.config.seconds, rate=self.config.rate,
            achieved_rate=self.sent_traffic / self.traffic_seconds if self.traffic_seconds else 0.0,
            mpans=self.config.mpans,
            behaviours=[f"{b.who + '=' if b.who else ''}{b.kind}:{b.value:g}" for b in self.config.behaviours],
            channels=self.channels, participants=self.people,
            rejections=len(self.rejections), rejections_reported=len(self.reported),
            status_messages=sum(p.status_messages for p in self.people.values()), status_from_dip=self.status_from_dip,
            round_trips_started=len(self.requests), round_trips_answered=self.channels["IF-006"].accepted,
            round_trips_completed=len(completed),
            round_trips_mismatched=self.mismatched + len(self.replies.keys() - self.requests.keys()),
            round_trip_ms=percentiles(completed), changes=self.changes,
            routed_before=sum(only(t, s) for t, s in self.checks.items() if s == SUPPLIERS[0]),
            routed_after=sum(only(t, s) for t, s in self.checks.items() if s == SUPPLIERS[1]),
            latency_ms=percentiles(self.latencies), unknown=self.unknown, unsettled=len(self.open),
        )


def run(config: Config) -> Summary:
    """Run a simulation to its end and return what happened."""
    if config.mpans < 1 or config.mpans > 100_000_000:
        raise ValueError("--mpans must be between 1 and 100,000,000")
    if config.rate <= 0 or config.seconds <= 0:
        raise ValueError("--rate and --seconds must be positive")
    people = cast()
    for b in config.behaviours:
        if b.who is not None and b.who not in people and b.who not in people.values():
            raise ValueError(f"behaviour for {b.who}: not a simulated role or participant ({', '.join(people)})")

    async def main() -> Summary:
        return await Simulation(config).run()

    return asyncio.run(main())


def command(args: argparse.Namespace, admin_key: str) -> int:
    """``dip simulate``: run, print the summary; 1 when a check failed."""
    try:
        config = Config(
            url=args.url, admin_key=admin_key, mpans=args.mpans, rate=args.rate, seconds=args.seconds,
            behaviours=tuple(Behaviour.parse(s) for s in args.behaviour or ()), seed=args.seed,
            drain_seconds=args.drain_seconds, changes=args.changes, webhook_host=args.webhook_host,
            webhook_port=args.webhook_port, callback_host=args.callback_host, environment=args.environment,
            progress=not args.quiet,
        )
        summary = run(config)
    except (ValueError, RuntimeError, OSError, httpx.HTTPError, aiohttp.ClientError) as exc:
        print(f"dip simulate: {exc}", file=sys.stderr)
        return 2
    print(summary.render())
    return 1 if summary.problems() else 0
