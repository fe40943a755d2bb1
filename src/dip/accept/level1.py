"""Level 1 checks after the schema stage: who may send what, and what the DIP stamps on it.

Pure: the same inputs give the same verdicts (apart from the IDs minted for accepted messages),
so every rule here is tested without a server or a database. Order of checks per message
follows E2E 4.4.3: sender, connection provider, role, sender unique reference, timestamp,
correlation, addressing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from dip import ids
from dip.accept import registry_updates, routing
from dip.accept.registry import Appointment, Registry, RegistryView
from dip.accept.schema import Checked, Header, payload_bytes
from dip.catalogue import ANSWERED_BY_DIP, DIP_ROLE, Channel
from dip.codes import Code
from dip.directory import Directory, Participant
from dip.queue import DeliveryKind, publication_queue
from dip.store.base import AppointmentRow, DeliveryRow, MessageRow

MAX_FUTURE_SKEW = timedelta(minutes=5)
_UNSEEN: datetime | None = datetime.min


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the API key's participant, and the certificate's (the physical sender).

    They differ when a DIP connection provider signs with its own certificate for a participant.
    """

    principal: Participant
    physical: Participant


@dataclass(slots=True)
class Verdict:
    index: int
    code: Code
    help: str | None
    sur: str | None
    sender_id: str | None
    dcp_id: str | None
    row: MessageRow | None = None  # set when accepted
    deliveries: tuple[DeliveryRow, ...] = ()  # one per recipient (participant, role)
    appointments: tuple[AppointmentRow, ...] = ()  # the MPAN registry changes it makes

    @property
    def accepted(self) -> bool:
        return self.row is not None


def _reject(c: Checked, h: Header, code: Code, help_text: str) -> Verdict:
    return Verdict(c.index, code, help_text, h.sur, h.sender_id, h.dcp_id)


def _acting_problem(h: Header, caller: Caller, directory: Directory) -> tuple[Code, str] | None:
    physical = caller.physical.id
    if h.sender_id == physical:
        if h.dcp_id not in (None, physical):
            return Code.CONNECTION_PROVIDER_INVALID, (
                f"DIPConnectionProviderID '{h.dcp_id}' is set, but the message was sent by "
                f"senderDIPID '{physical}' itself; leave it null"
            )
        return None
    if h.dcp_id is None:
        return Code.SENDER_INVALID, (
            f"senderDIPID '{h.sender_id}' is not the authenticated caller '{physical}'; a DIP connection "
            "provider must set DIPConnectionProviderID to its own DIP ID"
        )
    if h.dcp_id != physical:
        return Code.CONNECTION_PROVIDER_INVALID, (
            f"DIPConnectionProviderID '{h.dcp_id}' is not the authenticated caller '{physical}'"
        )
    if h.sender_role not in directory.provider_roles(h.sender_id, physical):
        return Code.CONNECTION_PROVIDER_INVALID, (
            f"'{physical}' is not registered as a connection provider for '{h.sender_id}' "
            f"in role {h.sender_role}"
        )
    return None


def _addressing_problem(h: Header, channel: Channel, directory: Directory) -> tuple[Code, str] | None:
    routing = channel.definition.routing
    named = [r for r in h.primary_recipients if r is not None]
    if named and not routing.primary:
        return Code.ROUTING_ERROR, (
            f"{channel.interface_id} is not addressed by the sender (the DIP finds its recipients); "
            "leave A0.primaryRecipients empty"
        )
    if routing.primary:
        for recipient in named:
            participant = directory.active(recipient)
            if participant is None:
                return Code.PRIMARY_PARTICIPANT_INVALID, (
                    f"primary recipient '{recipient}' is not an on-boarded DIP participant"
                )
            if not participant.roles & set(routing.primary):
                return Code.PRIMARY_ROLE_INVALID, (
                    f"primary recipient '{recipient}' holds none of the roles {channel.interface_id} "
                    f"is addressed to ({', '.join(routing.primary)})"
                )
        if not named and not routing.secondary and not routing.always.roles and not routing.always.participants:
            return Code.ROUTING_ERROR, (
                f"{channel.interface_id} is delivered only to named recipients: A0.primaryRecipients must "
                f"name at least one participant holding {', '.join(routing.primary)}"
            )
    return None


class Judge:
    """Level 1 rules for the schema-valid messages of one batch, a chunk at a time, in order.

    Holds what spans chunks: references seen earlier in the batch, parsed timestamps.
    """

    def __init__(self, channel: Channel, directory: Directory, caller: Caller, now: datetime,
                 received_at: int, registry: RegistryView | None = None, dip_id: str | None = None) -> None:
        self.channel = channel
        # the DIP's own queue, for a channel it answers itself (ANSWERED_BY_DIP)
        self.internal_queue = (publication_queue(dip_id, channel.interface_id)
                               if dip_id is not None and channel.interface_id in ANSWERED_BY_DIP else None)
        self.dip_id = dip_id
        self.directory = directory
        self.caller = caller
        self.now = now
        self.received_at = received_at
        self.registry: RegistryView = registry if registry is not None else Registry()
        self.seen: set[tuple[str, str]] = set()
        self.times: dict[str, datetime | None] = {}  # messages of a batch mostly share their timestamp
        self.today = now.date().isoformat()
        self.queues: dict[str, str] = {}  # recipient -> its queue on this channel
        self.appointed: dict[str, dict[tuple[str, str], Appointment]] = {}  # this batch's registry changes
        self.router = routing.Router(channel, directory)
        self.days: dict[str | None, str] = {}  # routing date as sent -> the day it applies at

    def _route(self, h: Header, transaction_id: str,
               ) -> tuple[tuple[DeliveryRow, ...], str, str] | routing.RoutingError:
        """The message's deliveries and its A0 lists (comma-separated), or why it cannot be routed."""
        day = self.days.get(h.routing_date)
        if day is None:
            day = self.days[h.routing_date] = routing.routing_day(h.routing_date, self.today)
        routed = self.router.route(self.registry, (h.sender_id, h.sender_role), h.primary_recipients, h.mpan, day)
        if isinstance(routed, routing.RoutingError):
            return routed
        queues, interface_id, at = self.queues, self.channel.interface_id, self.received_at
        days = self.channel.definition.retentionDays
        out = []
        for r in routed.recipients:
            queue = queues.get(r.participant_id)
            if queue is None:
                queue = queues[r.participant_id] = publication_queue(r.participant_id, interface_id)
            out.append(DeliveryRow(queue, transaction_id, r.participant_id, r.role, r.kind, at, None, days))
        if self.internal_queue is not None and self.dip_id is not None:
            out.append(DeliveryRow(self.internal_queue, transaction_id, self.dip_id, DIP_ROLE, DeliveryKind.INTERNAL,
                                   at, None, days))
        return tuple(out), ",".join(routed.secondary_ids), ",".join(routed.always_ids)

    def _appointments(self, h: Header) -> tuple[AppointmentRow, ...]:
        """The registry rows this message writes, given the registry and earlier messages of the batch."""
        if not h.mpan:
            return ()
        mine = self.appointed.setdefault(h.mpan, {})
        existing = {(a.role, a.effective_from): a for a in self.registry.appointments(h.mpan)} | mine
        rows = registry_updates.apply(h.mpan, existing.values(), h.changes)
        for r in rows:
            mine[(r.role, r.effective_from)] = Appointment(r.mpan, r.role, r.participant_id, r.effective_from,
                                                           r.effective_to)
        return tuple(rows)

    def __call__(self, checked: list[Checked], raws: Sequence[bytes | msgspec.Raw]) -> list[Verdict]:
        """One verdict per message of ``checked`` (all must have passed the schema stage).

        ``raws`` are the batch's array items, from which accepted payloads are taken.
        """
        channel, directory, caller, now, received_at = (
            self.channel, self.directory, self.caller, self.now, self.received_at)
        verdicts: list[Verdict] = []
        seen = self.seen
        interface_id = channel.interface_id
        date = f"{now:%Y%m%d}"
        sequence = iter(ids.sequences(now, len(checked)))
        create = channel.correlation == "create"
        copy = channel.correlation == "copy"
        latest = now + MAX_FUTURE_SKEW
        times = self.times
        for c in checked:
            h = c.header
            assert h is not None
            seq = next(sequence)
            problem: tuple[Code, str] | None = None
            sender = directory.active(h.sender_id)
            if sender is None:
                problem = Code.SENDER_INVALID, f"senderDIPID '{h.sender_id}' is not an on-boarded DIP participant"
            elif h.sender_id != caller.physical.id or h.dcp_id is not None:
                problem = _acting_problem(h, caller, directory)
            if problem is None and sender is not None:
                why = sender_role_problem(channel, sender, h.sender_role)
                if why is not None:
                    problem = Code.SENDER_ROLE_INVALID, why
            if problem is None:
                why = ids.sender_reference_problem(h.sur, interface_id, h.sender_id, h.sender_role)
                if why is not None:
                    problem = Code.SUR_DUPLICATED, why
                elif (h.sender_id, h.sur) in seen:
                    problem = Code.SUR_DUPLICATED, "senderUniqueReference repeats an earlier message in this batch"
            if problem is None:
                sent = times.get(h.sender_timestamp, _UNSEEN)
                if sent is _UNSEEN:
                    sent = times[h.sender_timestamp] = ids.parse_timestamp(h.sender_timestamp)
                if sent is None:
                    problem = Code.SENDER_TIMESTAMP_INVALID, (
                        f"senderTimestamp '{h.sender_timestamp}' is not a date-time like 2026-11-23T10:15:00+00:00"
                    )
                elif sent > latest:  # type: ignore[operator]
                    problem = Code.SENDER_TIMESTAMP_INVALID, f"senderTimestamp '{h.sender_timestamp}' is in the future"
            if problem is None:
                cid = h.sender_correlation_id
                if copy and cid is None:
                    problem = Code.SENDER_CORRELATION_INVALID, (
                        f"{interface_id} continues a workflow: S1.senderCorrelationID must carry the "
                        "correlation ID of the message it answers"
                    )
                elif cid is not None and not ids.is_correlation_id(cid):
                    problem = Code.SENDER_CORRELATION_INVALID, (
                        f"senderCorrelationID '{cid}' is not of the form CI-YYYYMMDD-<hex>"
                    )
            if problem is None and (h.primary_recipients or channel.primary_only):
                problem = _addressing_problem(h, channel, directory)
            transaction_id = f"T-{interface_id}-{h.sender_id}-{h.sender_role}-{date}-{seq}"
            routed: tuple[tuple[DeliveryRow, ...], str, str] | routing.RoutingError = ((), "", "")
            if problem is None:
                routed = self._route(h, transaction_id)
                if isinstance(routed, routing.RoutingError):
                    problem = routed.code, routed.help
            if problem is not None:
                verdicts.append(_reject(c, h, *problem))
                continue
            assert not isinstance(routed, routing.RoutingError)
            deliveries, a0_secondary, a0_always = routed
            seen.add((h.sender_id, h.sur))
            row = MessageRow(
                transaction_id,
                interface_id,
                h.event_code,
                h.schema_version,
                h.sender_id,
                h.sender_role,
                h.dcp_id,
                h.sur,
                f"CI-{date}-{seq}" if create else h.sender_correlation_id,
                h.mpan,
                received_at,
                payload_bytes(c, raws[c.index]),
                a0_secondary,
                a0_always,
                common_start=c.common_span[0] if c.common_span else None,
                common_end=c.common_span[1] if c.common_span else None,
                retention_days=channel.definition.retentionDays,
            )
            verdicts.append(Verdict(c.index, Code.SUCCESS, None, h.sur, h.sender_id, h.dcp_id, row, deliveries,
                                    self._appointments(h) if h.changes else ()))
        return verdicts


def judge(
    channel: Channel,
    directory: Directory,
    caller: Caller,
    checked: list[Checked],
    raws: Sequence[bytes | msgspec.Raw],
    now: datetime,
    received_at: int,
    registry: RegistryView | None = None,
    dip_id: str | None = None,
) -> list[Verdict]:
    """The verdicts of a whole batch at once (see Judge)."""
    return Judge(channel, directory, caller, now, received_at, registry, dip_id)(checked, raws)


def sender_role_problem(channel: Channel, sender: Participant, role: str | None = None) -> str | None:
    """MSG1010 (Sender Role Invalid), the one rule: why ``sender`` may not send on ``channel`` in
    ``role`` (or, with no role given, in any role it holds); None when it may."""
    if role is not None and role not in sender.roles:
        return f"senderRoleID {role} is not a role of '{sender.id}'"
    if not ({role} if role is not None else sender.roles) & channel.sender_roles:
        senders = ", ".join(sorted(channel.sender_roles))
        if role is None:
            return f"'{sender.id}' holds no role that may send on {channel.interface_id} ({senders})"
        return f"role {role} may not send on {channel.interface_id} (senders: {senders})"
    return None


def may_send_on(channel: Channel, caller: Caller, directory: Directory) -> bool:
    """Whether the caller could ever send on this channel, itself or for a participant it acts
    for (else the request is refused at once, 403 MSG1010)."""
    if sender_role_problem(channel, caller.physical) is None:
        return True
    return any(sender_role_problem(channel, Participant(pid, "", roles)) is None
               for pid, roles in directory.represented_by(caller.physical.id).items())
