"""The command line as an operator and a participant use it: `dip serve --demo`, `dip send`,
`dip catalogue import-openapi`, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dip.tools.testing import free_port
from tests.conftest import REFERENCE

DIP = [sys.executable, "-m", "dip.tools.cli"]


@pytest.fixture
def served(tmp_path: Path, database_url: str | None) -> Iterator[tuple[str, Path, list[str]]]:
    """`dip serve --demo` in its own process; yields (url, data dir, the lines it printed so far)."""
    port = free_port()
    data_dir = tmp_path / "dipdata"
    args = [*DIP, "serve", "--port", str(port), "--data-dir", str(data_dir), "--demo", "--log-level", "warning",
            "--validation-workers", "2"]
    if database_url:
        args += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if k != "DIP_ADMIN_API_KEY"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("dip serve exited:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("DIP ready on"):
            break
    else:
        pytest.fail("dip serve did not print 'DIP ready on' in time:\n" + "".join(lines))
    url = f"http://127.0.0.1:{port}"
    assert lines[-1].strip() == f"DIP ready on {url}"
    try:
        yield url, data_dir, lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIP, *args], capture_output=True, text=True, timeout=120, check=False)


def test_serve_demo_then_send_a_first_message(served: tuple[str, Path, list[str]]) -> None:
    _, data_dir, lines = served
    printed = "".join(lines)
    assert "Send a first message" in printed
    profile = data_dir / "demo" / "SDS.json"
    assert json.loads(profile.read_text())["participantId"] == "1300000001"
    assert (data_dir / "admin-api-key").exists()
    result = run("send", "--profile", str(profile), "--channel", "IF-021", "--generate", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("HTTP 201")
    answer = json.loads(result.stdout.split("\n", 1)[1])
    assert [m["message"] for m in answer["messageArray"]] == ["MSG0000 - Success"] * 3
    # a connection provider sending for the data service
    result = run("send", "--profile", str(data_dir / "demo" / "DCP.json"), "--channel", "IF-021",
                 "--generate", "1", "--on-behalf-of", "1300000001:SDS")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout.split("\n", 1)[1])["messageArray"][0]["DIPConnectionProviderID"] == "1600000001"
    # a file of messages that fails its schema: exit code 1 and the reason
    bad = data_dir / "bad.json"
    bad.write_text('[{"payload": {"CommonBlock": {}, "CustomBlock": {}}}]')
    result = run("send", "--profile", str(profile), "--channel", "IF-021", str(bad))
    assert result.returncode == 1 and "HTTP 400" in result.stdout and "MSG1001" in result.stdout
    # the recipient replays what it was sent (the README tour's step)
    out = data_dir / "replayed.json"
    result = run("replay", "--profile", str(data_dir / "demo" / "MDS.json"), "--channel", "IF-021", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("replayed 4 message(s) in 1 page(s)")
    replayed = json.loads(out.read_text())
    assert len(replayed) == 4 and all(e["payload"]["CommonBlock"]["D0"]["replayIndicator"] for e in replayed)
    # the operator redrives (nothing is dead here)
    result = run("redrive", "--data-dir", str(data_dir), "--url", served[0], "--state", "dead")
    assert result.returncode == 0 and result.stdout.strip() == "redriven 0 deliveries", result.stdout + result.stderr


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="official reference not present")
def test_import_openapi_into_a_running_dip(served: tuple[str, Path, list[str]]) -> None:
    url, data_dir, _ = served
    result = run("catalogue", "import-openapi", str(REFERENCE), "--url", url, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 58
    assert "IF-005: 5 event code(s), schema version(s) 011" in result.stdout
    # the demo IF-021 message is valid under the official schema too
    result = run("send", "--profile", str(data_dir / "demo" / "SDS.json"), "--channel", "IF-021", "--generate", "2")
    assert result.returncode == 0, result.stdout


def test_bad_settings_are_refused_with_a_message(tmp_path: Path) -> None:
    result = run("serve", "--environment", "prod", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "--environment must be one of" in result.stderr
    result = run("serve", "--environment", "PRD", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "--public-base-url (DIP_PUBLIC_BASE_URL) is required outside DEV" in result.stderr
