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
from typing import Protocol

from dip.catalogue import Channel
from dip.codes import Code
from dip.directory import Directory


class Lookup(Protocol):
    def lookup(self, mpan: str, role: str, day: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Recipient:
    participant_id: str
    role: str
    kind: str  # "primary" | "secondary" | "always"


@dataclass(frozen=True, slots=True)
class Routed:
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
) -> Routed | RoutingError:
    rules = channel.definition.routing
    found: dict[tuple[str, str], Recipient] = {}

    def add(participant_id: str, role: str, kind: str) -> None:
        key = (participant_id, role)
        if key != sender and key not in found:
            found[key] = Recipient(participant_id, role, kind)

    primary_roles = set(rules.primary)
    for pid in (p for p in primary if p is not None):
        participant = directory.active(pid)
        if participant is None:
            return RoutingError(Code.PRIMARY_PARTICIPANT_INVALID, f"primary recipient '{pid}' is not on-boarded")
        roles = sorted(participant.roles & primary_roles)
        if not roles:
            return RoutingError(Code.PRIMARY_ROLE_INVALID,
                                f"primary recipient '{pid}' holds none of {', '.join(rules.primary)}")
        for role in roles:
            add(pid, role, "primary")

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
                add(pid, role, "secondary")
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
    receiving = list(rules.primary) + list(rules.secondary) + list(rules.always.roles)
    for role in rules.always.roles:
        for participant in directory.holders(role):
            add(participant.id, role, "always")
            if participant.id not in always_ids:
                always_ids.append(participant.id)
    for pid in rules.always.participants:
        participant = directory.active(pid)
        if participant is None:
            continue  # removed by off-boarding; nothing the sender can fix
        role = next((r for r in receiving if r in participant.roles), min(participant.roles))
        add(pid, role, "always")
        if pid not in always_ids:
            always_ids.append(pid)

    recipients = tuple(found.values())
    # A0 lists whom the DIP delivers to: the sender, never a recipient, is not listed
    delivered = {r.participant_id for r in recipients}
    return Routed(recipients, tuple(p for p in secondary_ids if p in delivered),
                  tuple(p for p in always_ids if p in delivered))
