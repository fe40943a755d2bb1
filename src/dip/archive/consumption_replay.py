"""Consumption replay (E2E 5.1.7): an Advanced Data Service's IF-015 request is answered by the
DIP, as sender, on IF-016 with the consumption the archive holds for the MPAN, or with IF-016's
``[ConsumptionRequestRejected]``, never with silence. Business as usual, not event replay.

The request is queued for the DIP itself (dip.catalogue.ANSWERED_BY_DIP) and answered by the
delivery worker's internal handler (this class), so it is durable, retried and answered once:
each answer's sender unique reference is made from the request's and the replayed message's
transaction IDs, and a second run finds them taken and adds nothing.

What is replayed (the spec leaves the details open; decided here, docs/archive.md):

- the requester must be the MPAN's Advanced Data Service in the MPAN registry (an appointment
  that has not ended: a new service may ask before its supply start date); the appointment's
  start is the supply start date (SSD). Not appointed: rejected;
- the IF-021 (``[ActivePower]``, ``[ReactivePower]``) and IF-013 (``[ActivePowerDefaulted]``)
  messages of the MPAN accepted in the four calendar months before the SSD, oldest first, whoever
  sent them; each becomes one IF-016 message of the same event code;
- none: ``[ConsumptionRequestRejected]`` with R1 ``responseCode`` R and the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

import orjson

from dip import ids
from dip.catalogue import DEFAULT_RETENTION_DAYS, DIP_ROLE, Catalogue
from dip.queue import DeliveryKind, publication_queue
from dip.store.archive import Found, Narrowing
from dip.store.base import AppointmentRow, DeliveryRow, MessageRow, PendingDelivery
from dip.store.message_cache import StoredMessage

ANSWER_CHANNEL = "IF-016"
SOURCES = {"IF-021": ("[ActivePower]", "[ReactivePower]"), "IF-013": ("[ActivePowerDefaulted]",)}
REQUESTER_ROLE = "ADS"
MONTHS_BEFORE = 4
_PAGE = 1_000


class Store(Protocol):
    async def appointments(self, mpans: list[str]) -> list[AppointmentRow]: ...

    async def search(self, driver: str, value: str, narrowing: Narrowing, after: tuple[int, str],
                     limit: int) -> list[Found]: ...

    async def stored_messages(self, transaction_ids: list[str]) -> dict[str, StoredMessage]: ...

    async def insert_messages(self, rows: list[MessageRow], deliveries: Sequence[Sequence[DeliveryRow]] = (),
                              ) -> list[int]: ...


class Lookups(Protocol):
    @property
    def catalogue(self) -> Catalogue: ...


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day where it is shorter)."""
    month = day.month - months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    for d in range(day.day, 0, -1):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _micros(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def supply_start(appointments: Sequence[AppointmentRow], requester: str, today: str) -> str | None:
    """When the requester's Advanced Data Service appointment to the MPAN starts or started
    (YYYY-MM-DD): the latest that has not ended; a new service asks before or after its SSD."""
    mine = [a for a in appointments if a.role == REQUESTER_ROLE and a.participant_id == requester
            and (a.effective_to is None or a.effective_to >= today)]
    return max((a.effective_from for a in mine), default=None)


class ConsumptionReplay:
    def __init__(self, store: Store, lookups: Lookups, dip_id: str, environment: str) -> None:
        self.store = store
        self.lookups = lookups
        self.dip_id = dip_id
        self.environment = environment

    async def __call__(self, requests: Sequence[PendingDelivery]) -> None:
        now = datetime.now(UTC)
        rows: list[MessageRow] = []
        deliveries: list[list[DeliveryRow]] = []
        for request in requests:
            for row, delivery in await self.answer(request, now):
                rows.append(row)
                deliveries.append([delivery])
        if rows:
            await self.store.insert_messages(rows, deliveries)  # a second run's are taken: left out

    async def answer(self, request: PendingDelivery, now: datetime) -> list[tuple[MessageRow, DeliveryRow]]:
        """The IF-016 messages that answer one IF-015 request, with their deliveries to the requester."""
        payload: dict[str, Any] = orjson.loads(request.payload or b"{}")
        common = payload.get("CommonBlock") or {}
        requester = str((common.get("S1") or {}).get("senderDIPID") or "")
        mpan = str((common.get("M0") or {}).get("MPANCore") or "")
        found, why = await self._consumption(requester, mpan, now)
        answers = []
        if found:
            stored = await self.store.stored_messages([f.transaction_id for f in found])
            for f in found:
                original = stored.get(f.transaction_id)
                if original is not None:
                    answers.append((f.transaction_id, f.event_code, replayed_as_if016(
                        orjson.loads(original.payload), self._s1(request, f.transaction_id, now))))
        if not answers:
            answers.append(("rejected", "[ConsumptionRequestRejected]", rejected_if016(
                common, self._s1(request, "rejected", now), why or "no consumption found for the MPAN")))
        return [self._message(request, requester, mpan, tid, event, body, now) for tid, event, body in answers]

    async def _consumption(self, requester: str, mpan: str, now: datetime) -> tuple[list[Found], str | None]:
        if not mpan:
            return [], "the request names no MPAN (M0.MPANCore)"
        ssd = supply_start(await self.store.appointments([mpan]), requester, now.date().isoformat())
        if ssd is None:
            return [], f"{requester} is not the Advanced Data Service of MPAN {mpan} in the DIP's registry"
        end = date.fromisoformat(ssd)
        start = months_before(end, MONTHS_BEFORE)
        found: list[Found] = []
        for interface_id, events in SOURCES.items():
            narrowing = Narrowing(_micros(start), min(_micros(end), int(now.timestamp() * 1_000_000)) - 1,
                                  interface_id=interface_id, mpan=mpan)
            after: tuple[int, str] = (-1, "")
            while page := await self.store.search("mpan", mpan, narrowing, after, _PAGE):
                found += [f for f in page if f.event_code in events]
                after = (page[-1].received_at, page[-1].transaction_id)
                if len(page) < _PAGE:
                    break
        found.sort(key=lambda f: (f.received_at, f.transaction_id))
        why = None if found else f"no consumption for MPAN {mpan} accepted from {start} to {end} (the SSD)"
        return found, why

    def _s1(self, request: PendingDelivery, about: str, now: datetime) -> dict[str, Any]:
        """The DIP's own sender block; its reference is the same on every run for the same answer."""
        digest = hashlib.sha256(f"{request.transaction_id}|{about}".encode()).hexdigest()[:24]
        day = request.transaction_id.rsplit("-", 2)[1]
        return {
            "environmentTag": self.environment,
            "subText": None,
            "senderUniqueReference": f"S-{ANSWER_CHANNEL}-{self.dip_id}-{DIP_ROLE}-{day}-{digest}",
            "senderTimestamp": ids.timestamp(now),
            "senderDIPID": self.dip_id,
            "senderRoleID": DIP_ROLE,
            "senderCorrelationID": request.correlation_id,
            "DIPConnectionProviderID": None,
        }

    def _message(self, request: PendingDelivery, requester: str, mpan: str, about: str, event: str,
                 payload: dict[str, Any], now: datetime) -> tuple[MessageRow, DeliveryRow]:
        s1 = payload["CommonBlock"]["S1"]
        payload["CommonBlock"]["A0"] = {"primaryRecipients": [requester], "secondaryRecipients": [], "always": []}
        channel = self.lookups.catalogue.get(ANSWER_CHANNEL)
        received_at = int(now.timestamp() * 1_000_000)
        tid = ids.transaction_id(ANSWER_CHANNEL, self.dip_id, DIP_ROLE, now)
        retention = channel.definition.retentionDays if channel else DEFAULT_RETENTION_DAYS
        row = MessageRow(tid, ANSWER_CHANNEL, event, "011", self.dip_id, DIP_ROLE, None, s1["senderUniqueReference"],
                         request.correlation_id, mpan or None, received_at, orjson.dumps(payload),
                         retention_days=retention)
        delivery = DeliveryRow(publication_queue(requester, ANSWER_CHANNEL), tid, requester, REQUESTER_ROLE,
                               DeliveryKind.PRIMARY, received_at, retention_days=retention)
        return row, delivery


def replayed_as_if016(original: dict[str, Any], s1: dict[str, Any]) -> dict[str, Any]:
    """An archived IF-021 or IF-013 message in IF-016's layout: the DIP's S1, the original sender's
    S1 as S2, the original M0, R1 accepted, the custom block as it was."""
    common = original.get("CommonBlock") or {}
    s0 = common.get("S0") or {}
    return {
        "CommonBlock": {
            "S0": {"interfaceID": ANSWER_CHANNEL, "schemaVersion": "011", "eventCode": s0.get("eventCode")},
            "S1": s1,
            "S2": common.get("S1"),
            "M0": common.get("M0"),
            "R1": {"responseCode": "A", "responseMessages": []},
        },
        "CustomBlock": original.get("CustomBlock"),
    }


def rejected_if016(request_common: dict[str, Any], s1: dict[str, Any], why: str) -> dict[str, Any]:
    """IF-016 ``[ConsumptionRequestRejected]``: the request's M0, R1 rejected with the reason."""
    return {
        "CommonBlock": {
            "S0": {"interfaceID": ANSWER_CHANNEL, "schemaVersion": "011", "eventCode": "[ConsumptionRequestRejected]"},
            "S1": s1,
            "M0": request_common.get("M0"),
            "R1": {"responseCode": "R", "responseMessages": [why[:200]]},
        },
    }
