"""The IF-021 submission limits of E2E 6.1 (issue 17 item 6): a sixth of a data service's
portfolio an hour and half of it in six hours; soft (reported) or hard (429), switchable per
data service; the portfolio measured by a job; on both stores."""

from __future__ import annotations

import time
from collections.abc import Callable

from dip.accept.submission_limits import HOUR
from dip.store import Store
from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip
from tests.helpers import SDS, consumption, in_store, onboard_all


def _within_one_hour() -> None:
    """Counts are per clock hour: a test that counts starts with at least 30 s of the hour left."""
    left = HOUR / 1e6 - time.time() % (HOUR / 1e6)
    if left < 30:
        time.sleep(left + 0.5)


def _limits(admin: AdminClient, **body: object) -> dict[str, object]:
    answer = admin.http.put(f"/admin/participants/{SDS}/submission-limits", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def test_hard_limits_refuse_past_a_sixth_an_hour_and_half_in_six_hours(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory()
    _within_one_hour()
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
        set_to = _limits(admin, mode="hard", portfolio=60)  # 10 an hour, 30 in six hours
        assert set_to["hourLimit"] == 10 and set_to["sixHourLimit"] == 30
        with DipClient(dip.url, cast["SDS"]) as sds:
            assert sds.send("IF-021", consumption(sds, 6)).status_code == 201
            refused = sds.send("IF-021", consumption(sds, 6))
            assert refused.status_code == 429 and "hourly limit of 10" in refused.text
            wait = int(refused.headers["retry-after"])
            assert 1 <= wait <= 3600
            too_big = sds.send("IF-021", consumption(sds, 11))
            assert too_big.status_code == 429 and "split it" in too_big.text
            assert sds.send("IF-021", consumption(sds, 4)).status_code == 201  # exactly up to the limit
        shown = admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()
        assert [h["messages"] for h in shown["lastHours"]] == [10]  # the refused calls were not counted
        # six hours: with a portfolio of 120 (20 an hour, 60 in six hours) and 45 sent two hours ago
        _limits(admin, mode="hard", portfolio=120)
        hour = int(time.time() * 1_000_000) // HOUR

        async def earlier(store: Store) -> None:
            await store.count_submission(SDS, hour - 2, 45, 2 ** 62)

        in_store(dip, earlier)
        with DipClient(dip.url, cast["SDS"]) as sds:
            past = sds.send("IF-021", consumption(sds, 6))  # 16 this hour, but 61 in six hours
            assert past.status_code == 429 and "six-hour limit of 60" in past.text, past.text
            assert sds.send("IF-021", consumption(sds, 5)).status_code == 201  # 60 in six hours
        shown = admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()
        assert [h["messages"] for h in shown["lastHours"]] == [45, 15]
        # other channels and other senders are not limited
        with DipClient(dip.url, cast["SUP"]) as sup:
            assert sup.send("IF-005", []).status_code != 429


def test_soft_limits_accept_and_say_so_and_off_counts_nothing(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory()
    _within_one_hour()
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
        _limits(admin, mode="soft", portfolio=60)
        with DipClient(dip.url, cast["SDS"]) as sds:
            within = sds.send("IF-021", consumption(sds, 10))
            assert within.status_code == 201 and "x-dip-submission-limit" not in within.headers
            past = sds.send("IF-021", consumption(sds, 2))
            assert past.status_code == 201
            assert "soft limit" in past.headers["x-dip-submission-limit"]
        shown = admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()
        assert shown["mode"] == "soft" and shown["lastHours"][-1]["overSoftLimit"] == 2
        _limits(admin, mode="off")
        with DipClient(dip.url, cast["SDS"]) as sds:
            off = sds.send("IF-021", consumption(sds, 50))
            assert off.status_code == 201 and "x-dip-submission-limit" not in off.headers
        shown = admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()
        assert shown["lastHours"][-1]["messages"] == 12
        assert admin.http.put(f"/admin/participants/{cast['SUP'].participant_id}/submission-limits",
                              json={"mode": "hard"}).status_code == 400  # not a data service
        assert admin.http.put(f"/admin/participants/{SDS}/submission-limits",
                              json={"mode": "sometimes"}).status_code == 400


def test_the_portfolio_is_measured_from_the_mpans_sent(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(jobs_poll_seconds=0.1)
    with AdminClient(dip.url, dip.admin_key) as admin:
        cast = onboard_all(admin)
        with DipClient(dip.url, cast["SDS"]) as sds:
            assert sds.send("IF-021", consumption(sds, 3)).status_code == 201  # three MPANs
        assert admin.http.post("/admin/jobs/portfolio/run").status_code == 202
        deadline = time.monotonic() + 10
        while admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()["measuredPortfolio"] != 3:
            assert time.monotonic() < deadline, "the portfolio job did not measure"
            time.sleep(0.05)
        shown = admin.http.get(f"/admin/participants/{SDS}/submission-limits").json()
        assert shown["mode"] == "soft" and shown["portfolio"] is None and shown["hourLimit"] == 1
