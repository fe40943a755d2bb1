"""Probes and the metrics port (issue 18 item 3 and item 1; API contract section 6): liveness,
readiness that looks at the database and the delivery loop, and /metrics, /healthz and /readyz on
a port of their own (a delivery-only node's), on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from dip.ingress.ops_server import OpsServer
from dip.tools.testing import RunningDip


def _on_node(dip: RunningDip, coroutine: object) -> object:
    assert dip.node.loop is not None
    return asyncio.run_coroutine_threadsafe(coroutine, dip.node.loop).result(10)  # type: ignore[arg-type]


def test_ready_until_the_delivery_loop_stops(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory()
    assert httpx.get(dip.url + "/healthz").status_code == 200
    ready = httpx.get(dip.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "problems": []}
    assert dip.node.worker is not None
    _on_node(dip, dip.node.worker.stop())
    stopped = httpx.get(dip.url + "/readyz")
    assert stopped.status_code == 503 and stopped.json()["problems"] == ["the delivery loop is not running"]
    assert httpx.get(dip.url + "/healthz").status_code == 200  # still alive: the orchestrator decides


def test_not_ready_when_the_database_does_not_answer(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory()
    url = dip.settings.database_url
    if url is None:
        pytest.skip("PostgreSQL: the database refuses connections here")
    name = url.rsplit("/", 1)[1]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))  # for superusers too
    try:
        asyncio.run(admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        answer = httpx.get(dip.url + "/readyz", timeout=10)
        assert answer.status_code == 503 and "the database does not answer" in answer.json()["problems"][0]
    finally:
        asyncio.run(admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    answer = httpx.get(dip.url + "/readyz", timeout=10)
    assert answer.status_code == 200, answer.text  # back once the database is


def test_the_metrics_port_serves_metrics_and_probes(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(metrics_allow=("10.0.0.0/8",))
    ops = OpsServer(dip.node, "127.0.0.1", 0)
    _on_node(dip, ops.start())
    try:
        base = f"http://127.0.0.1:{ops.port}"
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").json()["status"] == "ready"
        assert httpx.get(base + "/metrics").status_code == 403  # loopback is not in --metrics-allow here
        answer = httpx.get(base + "/metrics", headers={"X-API-Key": dip.admin_key})
        assert answer.status_code == 200 and "dip_messages_accepted_total" in answer.text
    finally:
        _on_node(dip, ops.stop())
