"""``dip simulate`` against a real DIP, on SQLite and PostgreSQL: seeded participants and registry,
real webhooks answering with faults, IF-021 routed by the registry, BP009 correlation round trips,
a change of supplier that reroutes IF-021, and 207 rejections relayed to their senders."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dip.tools import cli
from dip.tools.simulate import MDS, MSS, REGS, SDS, SUPPLIERS, Behaviour, Config, Summary, run
from dip.tools.testing import RunningDip


@pytest.fixture
def dip(dip_factory: Callable[..., RunningDip]) -> RunningDip:
    """A DIP that retries failed webhook calls quickly and gives up on a hung call after 2 s."""
    return dip_factory(retry_initial_seconds=0.2, retry_max_seconds=0.5, delivery_poll_seconds=0.05,
                       webhook_timeout_seconds=2)


def test_the_simulator_drives_every_flow_to_its_end(dip: RunningDip) -> None:
    behaviours = ("SUP=reject:0.2", "LDSO=503:0.2", f"{MDS}=drop:0.05", "slow:0.01")
    summary = run(Config(dip.url, dip.admin_key, mpans=2000, rate=200, seconds=3, seed=7, drain_seconds=20,
                         behaviours=tuple(Behaviour.parse(b) for b in behaviours), progress=False))
    assert summary.problems() == [], summary.render()
    assert summary.unsettled == 0

    # IF-021: every message accepted and delivered to its supplier, its distributor and the MDS
    usage = summary.channels["IF-021"]
    assert usage.sent >= 500 and usage.accepted == usage.sent and not usage.refused
    assert usage.delivered == usage.accepted
    assert usage.received_by_role == {"SUP": usage.accepted, "LDSO": usage.accepted, "MDS": usage.accepted}
    assert summary.participants[MDS].publications >= usage.accepted
    assert sum(p.faults["503"] for p in summary.participants.values() if p.role == "LDSO") > 0, "retried"
    assert summary.latency_ms["p50"] <= summary.latency_ms["max"]

    # BP009: each IF-005 answered by REGS on IF-006 with its correlation ID, received by the MSS
    assert summary.channels["IF-005"].accepted == summary.round_trips_started >= 20
    assert summary.participants[REGS].publications == summary.round_trips_started
    assert summary.round_trips_answered == summary.round_trips_completed == summary.round_trips_started
    assert summary.round_trips_mismatched == 0
    assert summary.participants[MSS].publications == summary.round_trips_completed

    # change of supplier: the IF-001 rewrote the registry, IF-021 for the day moved to the new supplier
    assert summary.changes == 3 and summary.channels["IF-001"].accepted == 3
    assert summary.routed_before == summary.routed_after == 3

    # 207 rejections by the suppliers came back to the senders (SDS for IF-021, REGS for IF-006/IF-001)
    rejected = sum(summary.participants[s].rejected for s in SUPPLIERS)
    assert rejected == summary.rejections > 0
    assert summary.rejections_reported == summary.rejections
    assert summary.participants[SDS].status_messages + summary.participants[REGS].status_messages == rejected
    assert summary.participants[SDS].status_messages > 0


@pytest.mark.parametrize("database_url", [None])  # the command itself: once, on SQLite
def test_dip_simulate_prints_its_summary(dip: RunningDip, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIP_ADMIN_API_KEY", dip.admin_key)
    code = cli.main(["simulate", "--url", dip.url, "--mpans", "500", "--rate", "50", "--seconds", "1",
                     "--behaviour", "reject:0.5", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"DIP simulation against {dip.url}: 1 s at 50 msg/s")
    assert "behaviours: reject:0.5" in out
    assert "changes; IF-021 to the old supplier before: 1, to the new one after: 1" in out
    assert out.rstrip().endswith("problems: none")
    assert cli.main(["simulate", "--url", dip.url, "--behaviour", "sometimes"]) == 2


def test_behaviours_parse() -> None:
    assert Behaviour.parse("accept") == Behaviour(None, "accept", 0.0)
    assert Behaviour.parse("reject") == Behaviour(None, "reject", 0.1)
    assert Behaviour.parse("SUP=reject:0.25") == Behaviour("SUP", "reject", 0.25)
    assert Behaviour.parse("1000000001=slow:2") == Behaviour("1000000001", "slow", 2.0)
    assert Behaviour.parse("503") == Behaviour(None, "503", 1.0)
    for bad in ("sometimes", "reject:2", "slow:-1", "drop:x"):
        with pytest.raises(ValueError, match="behaviour"):
            Behaviour.parse(bad)
    with pytest.raises(ValueError, match="not a simulated role or participant"):
        run(Config("http://127.0.0.1:9", "key", behaviours=(Behaviour.parse("EES=503"),)))


def test_summary_problems_name_what_went_wrong() -> None:
    summary = Summary("http://dip", 1, 1, 1, 1, [], {}, {}, rejections=2, rejections_reported=1, changes=1,
                      routed_before=1, routed_after=0, unsettled=3, round_trips_mismatched=1)
    assert summary.problems() == [
        "1 IF-006 with a correlation ID matching no IF-005",
        "routing after 1 supplier change(s): 1 correct before, 0 after",
        "1 rejection(s) never reached their sender",
        "3 accepted message(s) not delivered to every recipient",
    ]
