"""POST /admin/mpan-registry and `dip registry load`, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dip.store import AppointmentRow
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import in_store


def _appointments(dip: RunningDip, mpans: list[str]) -> list[AppointmentRow]:
    return in_store(dip, lambda store: store.appointments(mpans))


def test_load_appointments(dip: RunningDip, admin: AdminClient) -> None:
    body = {"appointments": [
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000001",
         "effectiveFrom": "2024-01-01", "effectiveTo": "2025-12-31"},
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000002", "effectiveFrom": "2026-01-01"},
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000003", "effectiveFrom": "2026-01-01",
         "effectiveTo": None},
    ]}
    response = admin.http.post("/admin/mpan-registry", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["loaded"] == 3
    rows = sorted(_appointments(dip, ["1200000000009"]))
    # the later of two rows with the same key in one load wins
    assert rows == [
        AppointmentRow("1200000000009", "SUP", "2024-01-01", "1000000001", "2025-12-31"),
        AppointmentRow("1200000000009", "SUP", "2026-01-01", "1000000003", None),
    ]


def test_bad_appointments_are_refused_whole_with_every_reason(dip: RunningDip, admin: AdminClient) -> None:
    body = {"appointments": [
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000001", "effectiveFrom": "2024-01-01"},
        {"MPANCore": "12", "role": "sup", "participantId": "x", "effectiveFrom": "2024-02-30",
         "effectiveTo": "2023-01-01"},
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000001", "effectiveFrom": "2024-03-01",
         "effectiveTo": "2024-02-01"},
    ]}
    response = admin.http.post("/admin/mpan-registry", json=body)
    assert response.status_code == 400
    problems = response.json()["detail"]
    assert any("appointments[1].MPANCore" in p for p in problems)
    assert any("appointments[1].role" in p for p in problems)
    assert any("appointments[1].participantId" in p for p in problems)
    assert any("appointments[1].effectiveFrom" in p for p in problems)
    assert any("appointments[2].effectiveTo is before" in p for p in problems)
    assert _appointments(dip, ["1200000000009"]) == []  # nothing of the call was stored
    assert admin.http.post("/admin/mpan-registry", json={"appointments": [{"MPANCore": "1"}]}).status_code == 400
    assert admin.http.post("/admin/mpan-registry", content=b"nope").status_code == 400


def test_cli_loads_a_csv_file_in_batches(dip: RunningDip, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    lines = ["MPANCore,role,participantId,effectiveFrom,effectiveTo"]
    mpans = [f"{1200000000000 + i}" for i in range(250)]
    lines += [f"{m},SUP,1000000001,2024-01-01," for m in mpans]
    lines += [f"{m},LDSO,1500000001,2020-01-01,2030-12-31" for m in mpans]
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "dip.tools.cli", "registry", "load", str(path), "--url", dip.url,
         "--admin-key", dip.admin_key, "--batch-size", "100", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded 500 appointments"
    rows = _appointments(dip, mpans[:2])
    assert sorted(rows) == sorted([
        AppointmentRow(mpans[0], "SUP", "2024-01-01", "1000000001", None),
        AppointmentRow(mpans[0], "LDSO", "2020-01-01", "1500000001", "2030-12-31"),
        AppointmentRow(mpans[1], "SUP", "2024-01-01", "1000000001", None),
        AppointmentRow(mpans[1], "LDSO", "2020-01-01", "1500000001", "2030-12-31"),
    ])


def test_cli_reports_a_refused_file(dip: RunningDip, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"MPANCore": "1", "role": "SUP", "participantId": "1000000001", "effectiveFrom": "2024-01-01"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "dip.tools.cli", "registry", "load", str(path), "--url", dip.url,
         "--admin-key", dip.admin_key, "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1 and "MPANCore" in result.stderr


def test_an_operator_reads_an_mpans_appointments_and_who_held_each_role_on_a_day(admin: AdminClient) -> None:
    history = [
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000001",
         "effectiveFrom": "2024-01-01", "effectiveTo": "2025-12-31"},
        {"MPANCore": "1200000000009", "role": "SUP", "participantId": "1000000002", "effectiveFrom": "2026-01-01"},
        {"MPANCore": "1200000000009", "role": "MDS", "participantId": "1400000001", "effectiveFrom": "2025-06-01"},
        {"MPANCore": "1200000000010", "role": "SUP", "participantId": "1000000003", "effectiveFrom": "2024-01-01"},
    ]
    assert admin.http.post("/admin/mpan-registry", json={"appointments": history}).status_code == 201
    found = admin.http.get("/admin/mpan-registry/1200000000009")
    assert found.status_code == 200, found.text
    assert found.json() == {"MPANCore": "1200000000009", "appointments": [
        {"role": "MDS", "participantId": "1400000001", "effectiveFrom": "2025-06-01", "effectiveTo": None},
        {"role": "SUP", "participantId": "1000000001", "effectiveFrom": "2024-01-01", "effectiveTo": "2025-12-31"},
        {"role": "SUP", "participantId": "1000000002", "effectiveFrom": "2026-01-01", "effectiveTo": None},
    ]}
    on = admin.http.get("/admin/mpan-registry/1200000000009", params={"date": "2025-12-31"}).json()
    assert on["date"] == "2025-12-31" and on["holders"] == {"MDS": ["1400000001"], "SUP": ["1000000001"]}
    assert admin.http.get("/admin/mpan-registry/1200000000009", params={"date": "2025-01-01"}).json()[
        "holders"] == {"SUP": ["1000000001"]}
    assert admin.http.get("/admin/mpan-registry/1200000000009", params={"date": "2026-01-01"}).json()[
        "holders"] == {"MDS": ["1400000001"], "SUP": ["1000000002"]}
    nobody = admin.http.get("/admin/mpan-registry/1999999999999", params={"date": "2026-01-01"})
    assert nobody.status_code == 200 and nobody.json()["appointments"] == [] and nobody.json()["holders"] == {}
    for bad in ("/admin/mpan-registry/12", "/admin/mpan-registry/120000000000x"):
        assert admin.http.get(bad).status_code == 400
    refused = admin.http.get("/admin/mpan-registry/1200000000009", params={"date": "2025-02-30"})
    assert refused.status_code == 400 and "YYYY-MM-DD" in refused.text
