"""Sample messages for the demo, the tour and the benchmarks (valid against the demo schemas
and, for IF-021, against the official v2.1.0 schema)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from dip.tools.client import DipClient

DEMO_REGS = "1100000001"
SAMPLE_MPANS = 10_000  # the demo registry holds the first MPANs of every seed's samples


def mpan_core(seed: int) -> str:
    """A 13-digit MPAN core with a valid check digit (distributor 10-23 from ``seed``)."""
    body = f"{10 + seed % 14:02d}{seed % 10**10:010d}"
    primes = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
    check = sum(int(d) * p for d, p in zip(body, primes, strict=True)) % 11 % 10
    return body + str(check)


def sample_mpans(count: int, seed: int = 0) -> list[str]:
    """The MPANs ``sample_payloads`` uses for ``count`` messages of ``seed``."""
    return [mpan_core(seed * 1_000_003 + i) for i in range(count)]


def sample_appointments(mpans: list[str], holders: dict[str, str], effective_from: str = "2020-01-01",
                        ) -> list[dict[str, Any]]:
    """MPAN registry rows (the ``POST /admin/mpan-registry`` shape) appointing, for every MPAN,
    ``holders`` ({role: participant ID}) from ``effective_from``, open-ended."""
    return [
        {"MPANCore": mpan, "role": role, "participantId": participant, "effectiveFrom": effective_from,
         "effectiveTo": None}
        for mpan in mpans for role, participant in holders.items()
    ]


def consumption_block(data_service_id: str, day: datetime, rng: random.Random, periods: int = 48,
                      ) -> dict[str, Any]:
    """IF-021 custom block: one settlement day of ``periods`` half-hourly periods (a whole day: 48)."""
    start = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    readings = [
        {
            "sp": (start + timedelta(minutes=30 * (k + 1))).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "v": f"{rng.uniform(0, 3):.3f}",
            "q": "A",
            "e": None,
            "arc": None,
        }
        for k in range(periods)
    ]
    return {
        "B044": {"issuingDataServiceDIPID": data_service_id},
        "B067": {"connectionTypeIndicator": "W", "connectionTypeEffectiveFromDate": "2024-01-01T00:00:00+00:00"},
        "B900": {
            "MQID": {"measurementQuantityID": "AI"},
            "settlementDayConsumptionPeriods": [
                {
                    "settlementDay": {"settlementDayDate": start.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                                      "periodDuration": 30},
                    "consumptionPeriods": readings,
                }
            ],
        },
    }


def meter_install_block(now: datetime) -> dict[str, Any]:
    """IF-005 / IF-006 [MeterInstall] custom block."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return {
        "B906": {
            "existingMeter": {
                "meterID": "Z26M000001",
                "modifiedMeterID": None,
                "meterType": "S2A",
                "manufacturersMakeAndType": "Demo Meters Ltd SM-1",
                "ESMEGUID": "00-00-00-00-00-00-00-01",
                "meterLocation": "A",
                "numberOfDisplayedRegisterDigits": 5,
                "meterInstallationDate": stamp,
            },
            "historyMAP": [{"meterAssetProviderID": "DMAP", "meterAssetProviderEffectiveFromDate": stamp}],
        }
    }


def advisory_block(now: datetime) -> dict[str, Any]:
    """IF-024 [SN-Vacant] custom block."""
    return {
        "B057": {
            "supplierNotificationEffectiveFromDate": now.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "supplierNotificationExpiryDate": None,
            "additionalInformation": "Premises reported vacant",
        }
    }


def sample_payloads(client: DipClient, interface_id: str, count: int,
                    on_behalf_of: tuple[str, str] | None = None, seed: int = 0, periods: int = 48,
                    ) -> list[dict[str, Any]]:
    """``count`` valid messages for a demo channel, sent as the client's participant (or on behalf
    of one); IF-021 messages carry ``periods`` half-hourly periods."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sender = on_behalf_of[0] if on_behalf_of else client.identity.participant_id
    out = []
    for mpan in sample_mpans(count, seed):
        if interface_id == "IF-021":
            block = consumption_block(sender, now - timedelta(days=1), rng, periods)
            out.append(client.message("IF-021", "[ActivePower]", "011", block, mpan=mpan, on_behalf_of=on_behalf_of))
        elif interface_id == "IF-005":
            out.append(client.message("IF-005", "[MeterInstall]", "011", meter_install_block(now), mpan=mpan,
                                      primary_recipients=[DEMO_REGS], on_behalf_of=on_behalf_of))
        elif interface_id == "IF-024":
            out.append(client.message("IF-024", "[SN-Vacant]", "011", advisory_block(now), mpan=mpan,
                                      primary_recipients=["1300000001"], on_behalf_of=on_behalf_of))
        else:
            raise ValueError(f"no sample messages for {interface_id}; give a FILE instead (IF-005, IF-021, IF-024)")
    return out
