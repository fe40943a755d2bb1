"""Demo participants for ``dip serve --demo``: on-boarded with API keys and signing certificates.

Their credentials are written to ``<data dir>/demo/`` (one profile JSON per participant, plus
its key and certificate) so ``dip send --profile .dip/demo/SDS.json ...`` works at once.
Re-running keeps existing credentials when they are still registered. The demo supplier and
distributor are appointed in the MPAN registry to the MPANs of the generated sample messages
(the first 10,000 of each seed's), so IF-021 messages are routed to them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dip.directory import hash_api_key
from dip.node import Node
from dip.signing import fingerprint, generate_identity, load_certificate_pem
from dip.store import AppointmentRow
from dip.tools.samples import SAMPLE_MPANS, sample_mpans


@dataclass(frozen=True)
class DemoParticipant:
    participant_id: str
    name: str
    role: str


DEMO_PARTICIPANTS = (
    DemoParticipant("1000000001", "Demo Supplier", "SUP"),
    DemoParticipant("1100000001", "Demo Registration Service", "REGS"),
    DemoParticipant("1200000001", "Demo Metering Service (Smart)", "MSS"),
    DemoParticipant("1300000001", "Demo Smart Data Service", "SDS"),
    DemoParticipant("1400000001", "Demo Market-wide Data Service", "MDS"),
    DemoParticipant("1500000001", "Demo Distributor", "LDSO"),
    DemoParticipant("1600000001", "Demo Connection Provider", "DCP"),
)


DEMO_HOLDERS = {"SUP": "1000000001", "LDSO": "1500000001"}


async def seed(dip: Node, base_url: str) -> list[Path]:
    """On-board the demo participants and write their profiles; returns the profile paths."""
    folder = dip.settings.data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    profiles = []
    for p in DEMO_PARTICIPANTS:
        await dip.participants.put(p.participant_id, p.name, [p.role])
        profile = folder / f"{p.role}.json"
        if not _still_valid(dip, profile):
            key_pem, cert_pem = generate_identity(f"{p.name} ({p.participant_id})")
            (folder / f"{p.role}.key.pem").write_bytes(key_pem)
            os.chmod(folder / f"{p.role}.key.pem", 0o600)
            (folder / f"{p.role}.cert.pem").write_bytes(cert_pem)
            await dip.participants.register_certificate(p.participant_id, cert_pem.decode("ascii"))
            api_key, _ = await dip.participants.new_api_key(p.participant_id)
            profile.write_text(json.dumps({
                "participantId": p.participant_id,
                "name": p.name,
                "role": p.role,
                "apiKey": api_key,
                "keyFile": f"{p.role}.key.pem",
                "certFile": f"{p.role}.cert.pem",
                "url": base_url,
                "environment": dip.settings.environment,
            }, indent=2) + "\n", encoding="utf-8")
            os.chmod(profile, 0o600)
        profiles.append(profile)
    # The demo connection provider may send for the data service (DCP tour step).
    await dip.participants.put_connection_provider("1300000001", "1600000001", ["SDS"])
    # The demo supplier and distributor hold the MPANs `dip send --generate` uses, so messages
    # routed by MPAN (IF-021) find them.
    if not (await dip.views.mpan(sample_mpans(1)[0])).appointments:
        await dip.registry_loads.load([
            AppointmentRow(mpan, role, "2020-01-01", participant, None)
            for mpan in sample_mpans(SAMPLE_MPANS) for role, participant in DEMO_HOLDERS.items()
        ])
    return profiles


def _still_valid(dip: Node, profile: Path) -> bool:
    if not profile.exists():
        return False
    try:
        data = json.loads(profile.read_text(encoding="utf-8"))
        cert = load_certificate_pem((profile.parent / data["certFile"]).read_bytes())
    except (OSError, ValueError, KeyError):
        return False
    directory = dip.state.directory
    return bool(
        directory.api_keys.get(hash_api_key(data["apiKey"])) == data["participantId"]
        and directory.certificates.get(fingerprint(cert)) == data["participantId"]
    )
