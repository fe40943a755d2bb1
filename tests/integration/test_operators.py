"""Operator roles (issue 17; API contract section 5): administrators change, support and
auditors read. The matrix of every operator route x role is made from the application's routes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from dip.config import Settings
from dip.ingress.app import create_app
from dip.tools.testing import AdminClient, RunningDip

READS = {"GET", "HEAD", "OPTIONS"}


def operator_routes() -> list[tuple[str, str]]:
    """Every operation under /admin, from the application's own OpenAPI document."""
    spec = create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
    return sorted((method.upper(), path) for path, operations in spec["paths"].items() if path.startswith("/admin")
                  for method in operations)


ROUTES = operator_routes()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: {"{interface_id}": "IF-021", "{mpan}": "1200000000009"}.get(
        m.group(0), "1900000001"), path)


@pytest.fixture
def staff(dip: RunningDip, admin: AdminClient) -> dict[str, str]:
    keys = {"administrator": dip.admin_key}
    for role in ("support", "auditor"):
        made = admin.http.post("/admin/operators", json={"name": f"A {role}", "role": role})
        assert made.status_code == 201, made.text
        keys[role] = made.json()["apiKey"]
    return keys


def test_the_matrix_covers_every_operator_route() -> None:
    assert len(ROUTES) >= 25 and ("POST", "/admin/operators") in ROUTES and ("GET", "/admin/queues") in ROUTES


@pytest.mark.parametrize("role", ["support", "auditor"])
def test_support_and_auditors_read_every_operator_route_and_change_none(dip: RunningDip, staff: dict[str, str],
                                                                         role: str) -> None:
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": staff[role]}, timeout=30) as client:
        for method, path in ROUTES:
            answer = client.request(method, _concrete(path), json={} if method not in READS else None)
            if method in READS:
                assert answer.status_code not in (401, 403), (method, path, answer.text)
            else:
                assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
                assert f"is {role}: it may read, not change" in answer.text


def test_operators_are_added_listed_and_revoked_and_only_administrators_change(dip: RunningDip,
                                                                             admin: AdminClient,
                                                                             staff: dict[str, str]) -> None:
    made = admin.http.post("/admin/operators", json={"name": "Second administrator", "role": "administrator"})
    second = made.json()
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": second["apiKey"]}) as client:
        assert client.put("/admin/participants/1900000001",
                          json={"name": "Acme", "roles": ["SUP"]}).status_code == 201
    listed = {o["operatorId"]: o for o in admin.http.get("/admin/operators").json()}
    assert listed[second["operatorId"]]["role"] == "administrator" and len(listed) == 3
    assert all("apiKey" not in o for o in listed.values())
    assert admin.http.delete(f"/admin/operators/{second['operatorId']}").status_code == 204
    with httpx.Client(base_url=dip.url, headers={"X-API-Key": second["apiKey"]}) as client:
        assert client.get("/admin/participants/1900000001").status_code == 401
    assert admin.http.delete(f"/admin/operators/{second['operatorId']}").status_code == 404
    for bad in ({"name": "x", "role": "root"}, {"name": "", "role": "support"}, {"role": "support"}):
        assert admin.http.post("/admin/operators", json=bad).status_code == 400
