"""Builders shared by the integration tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from dip.store import Store
from dip.tools.client import DipClient, Identity, Response
from dip.tools.samples import consumption_block, meter_install_block, mpan_core, sample_appointments, sample_mpans
from dip.tools.testing import AdminClient, RunningDip

T = TypeVar("T")

SUP, REGS, MSS, SDS, MDS, LDSO, DCP, OTHER = (
    "1000000001", "1100000001", "1200000001", "1300000001", "1400000001", "1500000001", "1600000001", "1700000001"
)


REGISTERED_MPANS = 100  # consumption() and meter_install() use MPANs of the first seeds


def onboard_all(admin: AdminClient) -> dict[str, Identity]:
    """The usual cast: one participant per role, each with a key and a certificate, and SUP
    appointed in the MPAN registry to the MPANs the sample messages use."""
    cast = {
        "SUP": admin.onboard(SUP, ["SUP"]),
        "REGS": admin.onboard(REGS, ["REGS"]),
        "MSS": admin.onboard(MSS, ["MSS"]),
        "SDS": admin.onboard(SDS, ["SDS"]),
        "MDS": admin.onboard(MDS, ["MDS"]),
        "DCP": admin.onboard(DCP, ["DCP"]),
    }
    appoint_supplier(admin)
    return cast


def appoint_supplier(admin: AdminClient) -> None:
    """SUP on-board and appointed to the MPANs of the sample messages, so IF-021 (routed by MPAN)
    finds a secondary recipient."""
    admin.put_participant(SUP, ["SUP"]).raise_for_status()
    admin.load_registry(sample_appointments(sample_mpans(REGISTERED_MPANS), {"SUP": SUP})).raise_for_status()


def consumption(client: DipClient, n: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
    import random
    from datetime import UTC, datetime, timedelta

    rng = random.Random(n)
    day = datetime.now(UTC) - timedelta(days=1)
    sender = kwargs.get("on_behalf_of", (client.identity.participant_id,))[0]
    return [
        client.message("IF-021", "[ActivePower]", "011", consumption_block(sender, day, rng), mpan=mpan_core(i),
                       **kwargs)
        for i in range(n)
    ]


def meter_install(client: DipClient, **kwargs: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    kwargs.setdefault("primary_recipients", [REGS])
    return client.message("IF-005", "[MeterInstall]", "011", meter_install_block(datetime.now(UTC)),
                          mpan=mpan_core(7), **kwargs)


def items(response: Response) -> list[dict[str, Any]]:
    body = response.json()
    assert set(body) == {"messageArray", "timestamp"}
    for entry in body["messageArray"]:
        assert set(entry) == {
            "transactionID", "senderUniqueReference", "correlationID", "sentTimestamp", "senderID",
            "recipientID", "DIPConnectionProviderID", "message", "help", "serviceTicketURL",
        }
    result: list[dict[str, Any]] = body["messageArray"]
    return result


def codes(response: Response) -> list[str]:
    return [entry["message"].split(" ", 1)[0] for entry in items(response)]


def body_of(payloads: list[dict[str, Any]]) -> bytes:
    return orjson.dumps([{"payload": p} for p in payloads])


def in_store(dip: RunningDip, query: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``query`` against the running DIP's database through a store of its own."""
    return with_store(dip.settings.database_url, dip.settings.data_dir, query)


def with_store(database_url: str | None, data_dir: Path, query: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``query`` through a store of the test's own on a database (a DIP's, running or not)."""
    import asyncio

    from dip.store import open_store

    async def run() -> T:
        store = open_store(database_url, data_dir)
        await store.open()
        try:
            return await query(store)
        finally:
            await store.close()

    return asyncio.run(run())
