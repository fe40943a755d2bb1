"""On-boarding and off-boarding participants, their API keys, certificates and connection providers."""

from __future__ import annotations

import time

import msgspec

from dip.catalogue import build_channel
from dip.directory import hash_api_key, key_id, new_api_key
from dip.signing import fingerprint, load_certificate_pem
from dip.state import SharedState
from dip.store.base import DirectoryStore, ParticipantRow


def _now() -> int:
    return int(time.time() * 1_000_000)


class CertificateTaken(ValueError):
    """The certificate is registered to another participant."""


class Participants:
    def __init__(self, store: DirectoryStore, state: SharedState) -> None:
        self._store = store
        self._state = state

    async def put(self, participant_id: str, name: str, roles: list[str]) -> bool:
        """On-board (or change) a participant; True when created."""
        created = await self._store.put_participant(
            ParticipantRow(participant_id, name, tuple(sorted(set(roles))), True), _now())
        await self._state.reload()
        return created

    async def offboard(self, participant_id: str) -> bool:
        """Deactivate the participant and remove it from every channel it is named on."""
        updates = []
        for channel in self._state.catalogue.channels.values():
            always = channel.definition.routing.always
            if participant_id in always.participants:
                routing = msgspec.structs.replace(
                    channel.definition.routing,
                    always=msgspec.structs.replace(
                        always, participants=[p for p in always.participants if p != participant_id]),
                )
                changed = build_channel(channel.interface_id,
                                        msgspec.structs.replace(channel.definition, routing=routing))
                updates.append((channel.interface_id, changed.to_json()))
        done = await self._store.offboard_participant(participant_id, updates, _now())
        await self._state.reload()
        return done

    async def new_api_key(self, participant_id: str) -> tuple[str, str]:
        """A new API key for the participant, and its key ID (what names it to revoke it)."""
        key = new_api_key()
        hashed = hash_api_key(key)
        await self._store.add_api_key(participant_id, hashed, _now())
        await self._state.reload()
        return key, key_id(hashed)

    async def revoke_api_key(self, participant_id: str, key: str) -> bool:
        done = await self._store.revoke_api_key(participant_id, key, _now())
        await self._state.reload()
        return done

    async def revoke_certificate(self, participant_id: str, fingerprint: str) -> bool:
        done = await self._store.revoke_certificate(participant_id, fingerprint.lower(), _now())
        await self._state.reload()
        return done

    async def api_keys(self, participant_id: str) -> list[tuple[str, int, int | None]]:
        return await self._store.api_keys_of(participant_id)

    async def register_certificate(self, participant_id: str, pem: str) -> tuple[bool, str]:
        """Register a signing certificate; (created, fingerprint). A PEM that is not a
        certificate raises SignatureError; one registered to someone else, CertificateTaken."""
        cert = load_certificate_pem(pem)
        fp = fingerprint(cert)
        holder = await self._store.certificate_holder(fp)
        if holder is not None and holder != participant_id:
            raise CertificateTaken(f"this certificate is already registered to participant {holder}")
        if holder is not None and await self._store.certificate_revoked(fp):
            raise CertificateTaken("this certificate was revoked and cannot be registered again: issue a new one")
        created = await self._store.add_certificate(participant_id, fp, pem, int(cert.not_valid_after_utc.timestamp()
                                                                                  * 1_000_000), _now())
        await self._state.reload()
        return created, fp

    async def put_connection_provider(self, participant_id: str, dcp_id: str, roles: list[str]) -> None:
        """Appoint ``dcp_id`` to act for the participant in ``roles`` (none: withdraw it)."""
        await self._store.put_connection_provider(participant_id, dcp_id, tuple(sorted(set(roles))), _now())
        await self._state.reload()
