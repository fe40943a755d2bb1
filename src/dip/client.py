"""A small participant client: builds, signs and posts batches to a DIP.

Used by ``dip send``, the demo, the tests and the benchmarks::

    identity = Identity.load(Path(".dip/demo/SDS.json"))
    client = DipClient("http://127.0.0.1:8080", identity)
    response = client.send("IF-021", [client.message("IF-021", "[ActivePower]", "011", custom_block)])
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from dip import ids
from dip.signing import API_KEY, SigningKey, load_private_key_pem, sign_headers


@dataclass(frozen=True)
class Identity:
    """A participant's credentials: DIP ID, the role it sends as, API key, key and certificate."""

    participant_id: str
    role: str
    api_key: str
    key_pem: bytes
    cert_pem: bytes
    url: str = "http://127.0.0.1:8080"
    environment: str = "DEV"

    @property
    def key(self) -> SigningKey:
        return load_private_key_pem(self.key_pem)

    @classmethod
    def load(cls, profile: Path) -> Identity:
        """Read a profile written by ``dip serve --demo`` (JSON with key and certificate file names)."""
        data = json.loads(profile.read_text(encoding="utf-8"))
        base = profile.parent
        return cls(
            participant_id=data["participantId"],
            role=data["role"],
            api_key=data["apiKey"],
            key_pem=(base / data["keyFile"]).read_bytes(),
            cert_pem=(base / data["certFile"]).read_bytes(),
            url=data.get("url", cls.url),
            environment=data.get("environment", "DEV"),
        )


_refs = itertools.count(1)
_run = secrets.token_hex(6)


class DipClient:
    def __init__(self, base_url: str, identity: Identity, timeout: float = 600.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self._key = identity.key
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def signed_headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        headers = sign_headers(self._key, self.identity.cert_pem, method, url, body)
        headers[API_KEY] = self.identity.api_key
        headers["Content-Type"] = "application/json"
        return headers

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        url = self.base_url + path
        all_headers = self.signed_headers("POST", url, body)
        all_headers.update(headers or {})
        return self._http.post(url, content=body, headers=all_headers)

    def send_raw(self, interface_id: str, body: bytes) -> httpx.Response:
        return self.post(f"/dip-channel/{interface_id}", body)

    def send(self, interface_id: str, payloads: list[dict[str, Any]]) -> httpx.Response:
        """POST a DIPMessageArray built from payload objects."""
        return self.send_raw(interface_id, orjson.dumps([{"payload": p} for p in payloads]))

    def message(
        self,
        interface_id: str,
        event_code: str,
        schema_version: str,
        custom_block: dict[str, Any],
        *,
        mpan: str | None = None,
        distributor_id: str = "1500000001",
        gsp_group: str = "_A",
        primary_recipients: list[str] | None = None,
        correlation_id: str | None = None,
        on_behalf_of: tuple[str, str] | None = None,
        sur: str | None = None,
    ) -> dict[str, Any]:
        """A payload with a complete common block. ``on_behalf_of=(participant, role)`` sends as a DCP."""
        now = datetime.now(UTC)
        sender, role = on_behalf_of or (self.identity.participant_id, self.identity.role)
        reference = sur or ids.make_sender_reference(interface_id, sender, role, now, f"{_run}{next(_refs):x}")
        common: dict[str, Any] = {
            "S0": {"interfaceID": interface_id, "schemaVersion": schema_version, "eventCode": event_code},
            "S1": {
                "environmentTag": self.identity.environment,
                "subText": None,
                "senderUniqueReference": reference,
                "senderTimestamp": ids.timestamp(now),
                "senderDIPID": sender,
                "senderRoleID": role,
                "senderCorrelationID": correlation_id,
                "DIPConnectionProviderID": self.identity.participant_id if on_behalf_of else None,
            },
            "A0": {"primaryRecipients": primary_recipients or [], "secondaryRecipients": [], "always": []},
        }
        if mpan is not None:
            common["M0"] = {"MPANCore": mpan, "distributorDIPID": distributor_id, "GSPGroupID": gsp_group}
        return {"CommonBlock": common, "CustomBlock": custom_block}
