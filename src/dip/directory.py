"""Participants, their credentials and their connection providers, as one immutable snapshot.

Loaded from the store at start and rebuilt whenever the store's state version moves, so every
node agrees within a poll interval. Lookups on the request path are dictionary reads.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum


def hash_api_key(key: str) -> str:
    """API keys are stored as SHA-256 hex: they are long random tokens, so no slow KDF is needed."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return "dip_" + secrets.token_urlsafe(32)


def key_id(key_hash: str) -> str:
    """What names a key to the operator (to list or revoke it): the first 16 hex digits of its
    hash. It tells nothing of the key, which is 256 random bits."""
    return key_hash[:16]


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    roles: frozenset[str]
    active: bool = True


class WebhookKind(StrEnum):
    PUBLICATION = "publication"  # a channel's publications (interface_id names the channel)
    STATUS = "status"  # status messages (interface_id is "")


@dataclass(frozen=True, slots=True)
class Webhook:
    participant_id: str
    kind: str  # a WebhookKind
    interface_id: str  # "" for the status-message webhook
    url: str
    max_message_count: int
    max_payload_kb: int
    registered_by: str  # the participant or connection provider that registered it


class OperatorRole(StrEnum):
    """What an operator may do (docs/security.md, "Operators"): administrators change things;
    support and auditors read."""

    ADMINISTRATOR = "administrator"
    SUPPORT = "support"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    name: str
    role: OperatorRole

    @property
    def may_change(self) -> bool:
        return self.role == OperatorRole.ADMINISTRATOR


FIRST_ADMINISTRATOR = Operator("admin", "the DIP's first administrator key", OperatorRole.ADMINISTRATOR)


@dataclass(frozen=True)
class Directory:
    participants: dict[str, Participant] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)  # key hash -> participant ID
    certificates: dict[str, str] = field(default_factory=dict)  # fingerprint -> participant ID
    retiring: dict[str, int] = field(default_factory=dict)  # fingerprint -> works until (µs): rotated away
    providers: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (participant, dcp)
    admin_keys: frozenset[str] = frozenset()  # key hashes: administrators' (DIP_ADMIN_API_KEY, generated)
    operator_keys: dict[str, Operator] = field(default_factory=dict)  # key hash -> operator
    webhooks: dict[tuple[str, str, str], Webhook] = field(default_factory=dict)  # (participant, kind, interface)

    def active(self, participant_id: str | None) -> Participant | None:
        if participant_id is None:
            return None
        p = self.participants.get(participant_id)
        return p if p is not None and p.active else None

    def participant_for_key(self, api_key: str) -> Participant | None:
        pid = self.api_keys.get(hash_api_key(api_key))
        return self.active(pid)

    def operator_for_key(self, api_key: str) -> Operator | None:
        hashed = hash_api_key(api_key)
        if hashed in self.admin_keys:
            return FIRST_ADMINISTRATOR
        return self.operator_keys.get(hashed)

    def certificate_owner(self, fingerprint: str) -> Participant | None:
        """Whose certificate this is, while it is in force (not revoked, not past a rotation's overlap)."""
        until = self.retiring.get(fingerprint)
        if until is not None and time.time() * 1_000_000 >= until:
            return None
        return self.active(self.certificates.get(fingerprint))

    def provider_roles(self, participant_id: str, dcp_id: str) -> frozenset[str]:
        """Roles in which ``dcp_id`` may act for ``participant_id`` (empty when none)."""
        if self.active(dcp_id) is None or self.active(participant_id) is None:
            return frozenset()
        return self.providers.get((participant_id, dcp_id), frozenset())

    def webhook(self, participant_id: str, kind: str, interface_id: str = "") -> Webhook | None:
        return self.webhooks.get((participant_id, kind, interface_id))

    def holders(self, role: str) -> list[Participant]:
        """On-boarded participants holding ``role``, by ID."""
        return list(self._holders.get(role, ()))

    @functools.cached_property
    def _holders(self) -> dict[str, tuple[Participant, ...]]:
        """Role -> active holders by ID, built once per snapshot (routing asks for every message)."""
        by_role: dict[str, list[Participant]] = {}
        for p in sorted(self.participants.values(), key=lambda p: p.id):
            if p.active:
                for role in p.roles:
                    by_role.setdefault(role, []).append(p)
        return {role: tuple(found) for role, found in by_role.items()}

    def represented_by(self, dcp_id: str) -> dict[str, frozenset[str]]:
        """Participants ``dcp_id`` acts for, with the roles."""
        return {p: roles for (p, d), roles in self.providers.items() if d == dcp_id and self.active(p)}
