"""Who receives a message: pure, from the channel's routing rules, the directory and the registry.

Three kinds of addressing (E2E 4.3.1, FS 5.5.3; API contract ``routing``):

- **primary**: the participants the sender names in ``A0.primaryRecipients``; each receives as
  every role it holds among the channel's primary roles;
- **secondary**: for each secondary role, the participant the MPAN registry holds for
  ``M0.MPANCore`` on the message's routing date (the date at the channel's ``secondaryDate``
  pointer, else the transaction date);
- **always**: every on-boarded participant holding an always role, and the named participants
  (each as its first role that the channel delivers to, else its first role).

A participant/role pair receives a message once (the first kind that finds it wins, in the
order above). The sending participant/role pair itself is never a recipient.

Errors found here are per-message Level 1 verdicts (MSG1030-MSG1038). MSG1038 (no secondary
recipient found) applies only when the sender named no primary recipient: a message addressed to
someone is not refused because the registry does not (yet) know the MPAN's other parties.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple, Protocol

from dip.catalogue import Channel
from dip.codes import Code
from dip.directory import Directory
from dip.queue import DeliveryKind


class Lookup(Protocol):
    def lookup(self, mpan: str, role: str, day: str) -> list[str]: ...


class Recipient(NamedTuple):
    participant_id: str
    role: str
    kind: DeliveryKind


class Routed(NamedTuple):
    recipients: tuple[Recipient, ...]
    secondary_ids: tuple[str, ...]  # for A0.secondaryRecipients
    always_ids: tuple[str, ...]  # for A0.always


@dataclass(frozen=True, slots=True)
class RoutingError:
    code: Code
    help: str


def routing_day(value: object, transaction_day: str) -> str:
    """The day a secondary lookup applies at: the date part of an ISO date or date-time, else today."""
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            pass
    return transaction_day


def route(
    channel: Channel,
    directory: Directory,
    registry: Lookup,
    sender: tuple[str, str],
    primary: list[str | None] | tuple[str | None, ...],
    mpan: str | None,
    day: str,
    always: tuple[tuple[str, str], ...] | None = None,
) -> Routed | RoutingError:
    """``always``: :func:`always_recipients` of the channel and directory, when the caller
    routes many messages at once (it depends on neither the message nor the registry)."""
    rules = channel.definition.routing
    found: dict[tuple[str, str], Recipient] = {}

    def add(participant_id: str, role: str, kind: DeliveryKind) -> None:
        key = (participant_id, role)
        if key != sender and key not in found:
            found[key] = Recipient(participant_id, role, kind)

    primary_roles = set(rules.primary) if primary else set()
    for pid in (p for p in primary if p is not None):
        participant = directory.active(pid)
        if participant is None:
            return RoutingError(Code.PRIMARY_PARTICIPANT_INVALID, f"primary recipient '{pid}' is not on-boarded")
        roles = sorted(participant.roles & primary_roles)
        if not roles:
            return RoutingError(Code.PRIMARY_ROLE_INVALID,
                                f"primary recipient '{pid}' holds none of {', '.join(rules.primary)}")
        for role in roles:
            add(pid, role, DeliveryKind.PRIMARY)

    secondary_ids: list[str] = []
    if rules.secondary:
        if not mpan:
            return RoutingError(Code.SECONDARY_MISSING_MPAN,
                                f"{channel.interface_id} is routed by MPAN: M0.MPANCore is required")
        resolved = 0
        for role in rules.secondary:
            for pid in registry.lookup(mpan, role, day):
                participant = directory.active(pid)
                if participant is None or role not in participant.roles:
                    continue  # an appointment of a party since off-boarded or without the role
                resolved += 1
                add(pid, role, DeliveryKind.SECONDARY)
                if pid not in secondary_ids:
                    secondary_ids.append(pid)
        if not resolved and not any(p is not None for p in primary):
            # MPAN routing was the message's only way to its addressees; with named primary
            # recipients it still goes to them (the registry may lag a change of supplier)
            return RoutingError(
                Code.SECONDARY_UNRESOLVED,
                f"no {'/'.join(rules.secondary)} is appointed to MPAN {mpan} on {day} in the DIP's registry",
            )

    always_ids: list[str] = []
    for pid, role in always_recipients(channel, directory) if always is None else always:
        add(pid, role, DeliveryKind.ALWAYS)
        if pid not in always_ids:
            always_ids.append(pid)

    recipients = tuple(found.values())
    # A0 lists whom the DIP delivers to: the sender, never a recipient, is not listed
    delivered = {r.participant_id for r in recipients}
    return Routed(recipients, tuple(p for p in secondary_ids if p in delivered),
                  tuple(p for p in always_ids if p in delivered))


def always_recipients(channel: Channel, directory: Directory) -> tuple[tuple[str, str], ...]:
    """The (participant, role) pairs every message of the channel goes to, in order: each holder
    of an always role, then each named participant, as the first of its roles the channel
    delivers to (else its first role). A named participant since off-boarded is left out:
    nothing the sender can fix."""
    rules = channel.definition.routing
    found = [(participant.id, role) for role in rules.always.roles for participant in directory.holders(role)]
    receiving = list(rules.primary) + list(rules.secondary) + list(rules.always.roles)
    for pid in rules.always.participants:
        participant = directory.active(pid)
        if participant is not None:
            found.append((pid, next((r for r in receiving if r in participant.roles), min(participant.roles))))
    return tuple(found)


class _Resolved:
    """A Lookup that answers with lookups already made (for one message)."""

    __slots__ = ("found",)

    def __init__(self, found: dict[str, list[str]]) -> None:
        self.found = found

    def lookup(self, mpan: str, role: str, day: str) -> list[str]:
        return self.found[role]


class Router:
    """:func:`route` for the messages of one batch: the always recipients are worked out once,
    and a message routed like an earlier one (same sender, primary recipients and registry
    answers, as most of a batch of consumption data is) reuses its result. Errors are not kept:
    their text names the message's MPAN and day."""

    def __init__(self, channel: Channel, directory: Directory, max_kept: int = 10_000) -> None:
        self.channel = channel
        self.directory = directory
        self.always = always_recipients(channel, directory)
        self.secondary = tuple(channel.definition.routing.secondary)
        self.max_kept = max_kept
        self._kept: dict[tuple[object, ...], Routed] = {}

    def route(self, registry: Lookup, sender: tuple[str, str], primary: tuple[str | None, ...],
              mpan: str | None, day: str) -> Routed | RoutingError:
        found = {role: registry.lookup(mpan, role, day) for role in self.secondary} if mpan else {}
        key = (sender, primary, bool(mpan), *(tuple(pids) for pids in found.values()))
        routed = self._kept.get(key)
        if routed is not None:
            return routed
        result = route(self.channel, self.directory, _Resolved(found), sender, primary, mpan, day, self.always)
        if isinstance(result, Routed):
            if len(self._kept) >= self.max_kept:
                self._kept.clear()
            self._kept[key] = result
        return result
