"""Channel definitions: parse, check and hold them; changed live through the admin API.

A channel is data (API contract section 2). The definition format is the contract's, plus two
optional keys this DIP adds:

- ``interfaceID``: may be given in the body; must then equal the path's ID;
- ``payloadSchemas``: ``{eventCode: JSON Schema of the whole payload}``, written by
  ``dip catalogue import-openapi`` so Level 1 checks are exactly the official API's. When
  absent, the DIP checks the common blocks with its own schema (dip.schemas) and the custom
  block with ``customBlockSchema``;
- ``registryUpdates``: which fields of an accepted message appoint or de-appoint a role for the
  message's MPAN, from or to which date (FS 5.5.14: registration flows keep the MPAN address
  registry current); see dip.accept.registry_updates.

The catalogue in memory is an immutable snapshot; a change builds a new one.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import jsonschema_rs
import msgspec
import orjson

from dip import ids
from dip.exceptions import CatalogueError

DEFAULT_RETENTION_DAYS = 730  # FS 5.5.7: a channel keeps its messages two years unless it says otherwise

_POINTER = re.compile(r"^(/([^/~]|~[01])*)*$")
_EVENT_CODE = re.compile(r"^\[[A-Za-z0-9-]{1,48}\]$")


# Channels whose messages the DIP answers itself: each accepted message is also queued for the
# DIP (its own queue, ``{dip_id}|{interface}``), and a handler in the delivery worker answers it.
ANSWERED_BY_DIP = {"IF-015": "consumption replay, answered on IF-016 (E2E 5.1.7; dip.archive.consumption_replay)"}
DIP_ROLE = "DIP"  # the role the DIP receives its own queue's messages in
# Channels whose messages have no custom block at all (the official schema has none: IF-015,
# DIN-827); every other channel's messages must carry one.
WITHOUT_CUSTOM_BLOCK = frozenset({"IF-015"})

class AlwaysRouting(msgspec.Struct, forbid_unknown_fields=True):
    roles: list[str] = []
    participants: list[str] = []


class Routing(msgspec.Struct, forbid_unknown_fields=True):
    primary: list[str] = []
    secondary: list[str] = []
    secondaryDate: str | None = None
    always: AlwaysRouting = msgspec.field(default_factory=AlwaysRouting)


class RegistryUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """One appointment (``effectiveFrom`` given) or de-appointment (``effectiveTo`` given) that a
    message carries: ``participant`` and the date are JSON pointers into the payload."""

    role: str
    participant: str
    effectiveFrom: str | None = None
    effectiveTo: str | None = None
    eventCodes: list[str] = []  # empty: every event code of the channel


class ChannelRateLimit(msgspec.Struct, forbid_unknown_fields=True):
    """Each sender's messages on this channel, held across API nodes (429 with Retry-After
    beyond it; docs/security.md "Rate limits")."""

    messagesPerSecond: float
    burst: int = 50_000  # one full call


class ChannelDefinition(msgspec.Struct, forbid_unknown_fields=True):
    publicationID: str
    title: str
    senderRoles: list[str]
    eventCodes: list[str]
    schemaVersions: list[str]
    routing: Routing = msgspec.field(default_factory=Routing)
    correlation: Literal["create", "copy", "none"] = "none"
    obfuscation: dict[str, list[str]] = {}
    customBlockSchema: dict[str, Any] | None = None
    retentionDays: int = DEFAULT_RETENTION_DAYS
    interfaceID: str | None = None
    payloadSchemas: dict[str, dict[str, Any]] | None = None
    registryUpdates: list[RegistryUpdate] = []
    # FS 4.2.6: 1 no personal data, 2 MPAN, 3 MPAN and personal data, 4 MPAN and consumption data;
    # payloads of categories 2-4 are encrypted at rest (docs/security.md "Encryption at rest")
    securityCategory: int = 2
    rateLimit: ChannelRateLimit | None = None  # each sender's messages on this channel (none: no limit)


_decoder = msgspec.json.Decoder(ChannelDefinition)
_encoder = msgspec.json.Encoder(order="deterministic")


@dataclass(frozen=True, slots=True)
class Channel:
    """A checked channel definition with the lookups the hot path needs precomputed."""

    interface_id: str
    definition: ChannelDefinition
    digest: str  # identifies this exact definition (compiled validator caches key on it)
    sender_roles: frozenset[str] = field(default_factory=frozenset)
    event_codes: frozenset[str] = field(default_factory=frozenset)

    @property
    def publication_id(self) -> str:
        return self.definition.publicationID

    @property
    def correlation(self) -> str:
        return self.definition.correlation

    def to_json(self) -> bytes:
        return encode_definition(self.interface_id, self.definition)

    @property
    def primary_only(self) -> bool:
        """Delivered only to the recipients the sender names (so naming none is an error)."""
        r = self.definition.routing
        return bool(r.primary) and not r.secondary and not r.always.roles and not r.always.participants

    def receiving_roles(self) -> frozenset[str]:
        r = self.definition.routing
        return frozenset(r.primary) | frozenset(r.secondary) | frozenset(r.always.roles)


def encode_definition(interface_id: str, definition: ChannelDefinition) -> bytes:
    return _encoder.encode(msgspec.structs.replace(definition, interfaceID=interface_id))


def _check_roles(where: str, roles: list[str]) -> None:
    for role in roles:
        if not ids.is_role(role):
            raise CatalogueError(f"{where}: '{role}' is not a role ID (3 to 5 upper-case letters)")


def _check_schema(where: str, schema: dict[str, Any]) -> None:
    try:
        jsonschema_rs.validator_for(schema)
    except Exception as exc:  # jsonschema_rs raises ValueError/ReferencingError subclasses
        raise CatalogueError(f"{where} is not a usable JSON Schema: {exc}") from exc


def parse_definition(interface_id: str, body: bytes) -> Channel:
    """Decode and check a channel definition; raise CatalogueError saying what is wrong."""
    if not ids.is_interface_id(interface_id):
        raise CatalogueError(f"'{interface_id}' is not an interface ID (IF-nnn or REP-nnn[A])")
    try:
        definition = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise CatalogueError(f"channel definition: {exc}") from exc
    return build_channel(interface_id, definition)


def build_channel(interface_id: str, definition: ChannelDefinition) -> Channel:
    d = definition
    if d.interfaceID is not None and d.interfaceID != interface_id:
        raise CatalogueError(f"interfaceID '{d.interfaceID}' does not match the path's '{interface_id}'")
    if not re.fullmatch(r"(PUB|REP)-\d{3}[A-Z]?", d.publicationID):
        raise CatalogueError(f"publicationID '{d.publicationID}' is not PUB-nnn or REP-nnn")
    if not d.senderRoles:
        raise CatalogueError("senderRoles must name at least one role")
    _check_roles("senderRoles", d.senderRoles)
    _check_roles("routing.primary", d.routing.primary)
    _check_roles("routing.secondary", d.routing.secondary)
    _check_roles("routing.always.roles", d.routing.always.roles)
    for pid in d.routing.always.participants:
        if not ids.is_participant_id(pid):
            raise CatalogueError(f"routing.always.participants: '{pid}' is not a 10-character DIP ID")
    if not d.eventCodes:
        raise CatalogueError("eventCodes must list at least one event code, e.g. '[MeterInstall]'")
    for code in d.eventCodes:
        if not _EVENT_CODE.fullmatch(code):
            raise CatalogueError(f"eventCodes: '{code}' is not of the form '[Name]'")
    if not d.schemaVersions or any(not v or len(v) > 10 for v in d.schemaVersions):
        raise CatalogueError("schemaVersions must list one or more versions of 1 to 10 characters")
    if d.routing.secondaryDate is not None and not _POINTER.fullmatch(d.routing.secondaryDate):
        raise CatalogueError(f"routing.secondaryDate '{d.routing.secondaryDate}' is not a JSON pointer")
    for role, pointers in d.obfuscation.items():
        _check_roles("obfuscation", [role])
        for pointer in pointers:
            if not pointer or not _POINTER.fullmatch(pointer):
                raise CatalogueError(f"obfuscation.{role}: '{pointer}' is not a JSON pointer")
    for n, update in enumerate(d.registryUpdates):
        where = f"registryUpdates[{n}]"
        _check_roles(where, [update.role])
        if (update.effectiveFrom is None) == (update.effectiveTo is None):
            raise CatalogueError(f"{where} needs exactly one of effectiveFrom (appoints) and effectiveTo (de-appoints)")
        for pointer in (update.participant, update.effectiveFrom or update.effectiveTo or ""):
            if not pointer or not _POINTER.fullmatch(pointer):
                raise CatalogueError(f"{where}: '{pointer}' is not a JSON pointer")
        unknown = [code for code in update.eventCodes if code not in d.eventCodes]
        if unknown:
            raise CatalogueError(f"{where}.eventCodes: {', '.join(unknown)} not in the channel's eventCodes")
    if d.retentionDays < 1:
        raise CatalogueError("retentionDays must be at least 1")
    if d.rateLimit is not None and not (math.isfinite(d.rateLimit.messagesPerSecond)
                                        and d.rateLimit.messagesPerSecond > 0 and d.rateLimit.burst >= 1):
        raise CatalogueError("rateLimit: messagesPerSecond must be a positive number and burst at least 1")
    if not 1 <= d.securityCategory <= 4:
        raise CatalogueError("securityCategory must be 1 (no personal data) to 4 (FS 4.2.6)")
    if d.customBlockSchema is not None:
        _check_schema("customBlockSchema", d.customBlockSchema)
    if d.payloadSchemas is not None:
        for code, schema in d.payloadSchemas.items():
            if code != "*" and code not in d.eventCodes:
                raise CatalogueError(f"payloadSchemas has '{code}', which is not in eventCodes")
            _check_schema(f"payloadSchemas[{code}]", schema)
        missing = [code for code in d.eventCodes if code not in d.payloadSchemas]
        if missing and "*" not in d.payloadSchemas:
            raise CatalogueError(f"payloadSchemas has no schema for {', '.join(missing)} (or '*' for any)")
    encoded = encode_definition(interface_id, d)
    return Channel(
        interface_id=interface_id,
        definition=msgspec.structs.replace(d, interfaceID=interface_id),
        digest=hashlib.sha256(encoded).hexdigest()[:16],
        sender_roles=frozenset(d.senderRoles),
        event_codes=frozenset(d.eventCodes),
    )


@dataclass(frozen=True)
class Catalogue:
    """All channels, by interface ID."""

    channels: dict[str, Channel]

    def get(self, interface_id: str) -> Channel | None:
        return self.channels.get(interface_id.upper())

    @classmethod
    def from_rows(cls, rows: list[tuple[str, bytes]]) -> Catalogue:
        return cls({iid: parse_definition(iid, body) for iid, body in rows})


# FS 4.2.6 security categories the shipped channels have other than the default 2 (MPAN)
SHIPPED_SECURITY_CATEGORIES = {"IF-021": 4}  # MPAN and consumption data


def default_catalogue(with_demo_schemas: bool = False) -> list[tuple[str, bytes]]:
    """The shipped catalogue: every v2.1.0 channel; the demo adds small custom-block schemas."""
    data = resources.files("dip").joinpath("data")
    channels = orjson.loads(data.joinpath("default_catalogue.json").read_bytes())["channels"]
    schemas = orjson.loads(data.joinpath("demo_schemas.json").read_bytes()) if with_demo_schemas else {}
    out = []
    for definition in channels:
        interface_id = definition["interfaceID"]
        if interface_id in SHIPPED_SECURITY_CATEGORIES:  # (the shipped file holds the contract's keys only)
            definition = {**definition, "securityCategory": SHIPPED_SECURITY_CATEGORIES[interface_id]}
        if interface_id in schemas:
            definition = {**definition, "customBlockSchema": schemas[interface_id]}
        out.append((interface_id, parse_definition(interface_id, orjson.dumps(definition)).to_json()))
    return out
