"""Prometheus metrics (issue 18 item 1; API contract section 6): what a node counts, read through
``GET /metrics`` by the standard client's parser, on both stores."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dip.tools.client import DipClient
from dip.tools.testing import AdminClient, RunningDip, WebhookReceiver
from tests.helpers import SUP, consumption, onboard_all


def _samples(dip: RunningDip, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = httpx.get(dip.url + "/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_accepted_refused_delivered_and_latency_are_counted(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(metrics_queue_seconds=0.1)
    with AdminClient(dip.url, dip.admin_key) as admin, WebhookReceiver() as hook:
        cast = onboard_all(admin)
        with DipClient(dip.url, cast["SUP"]) as sup:
            assert sup.register_webhook("IF-021", hook.url).status_code == 201
        with DipClient(dip.url, cast["SDS"]) as sds:
            batch = consumption(sds, 3)
            assert sds.send("IF-021", batch).status_code == 201
            assert sds.send("IF-021", batch).status_code == 207  # the same references: refused, MSG1006
        hook.wait_for(lambda calls: sum(len(c.json) for c in calls) >= 3)
        deadline = time.monotonic() + 10
        while True:  # settled after the recipient's answer: poll the counters
            samples = _samples(dip)
            delivered = _value(samples, "dip_deliveries_total", channel="IF-021", outcome="delivered")
            depth = _value(samples, "dip_queue_depth", recipient=SUP, channel="IF-021")
            if delivered >= 3 and (("dip_queue_depth", frozenset({("recipient", SUP), ("channel", "IF-021")}))
                                   in samples) and depth == 0:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.05)
    assert _value(samples, "dip_messages_accepted_total", channel="IF-021") == 3
    assert _value(samples, "dip_messages_refused_total", channel="IF-021", code="MSG1006") == 3
    assert _value(samples, "dip_delivery_latency_seconds_count") >= 3
    assert _value(samples, "dip_batch_seconds_count", channel="IF-021") == 2
    assert _value(samples, "dip_http_requests_total", method="POST", status="201") >= 2


def test_metrics_are_for_allowed_addresses_or_an_operator(dip_factory: Callable[..., RunningDip]) -> None:
    dip = dip_factory(metrics_allow=("10.0.0.0/8",))  # not the loopback the test calls from
    refused = httpx.get(dip.url + "/metrics")
    assert refused.status_code == 403
    assert "dip_http_requests_total" in httpx.get(dip.url + "/metrics", headers={"X-API-Key": dip.admin_key}).text
    assert httpx.get(dip.url + "/metrics", headers={"X-API-Key": "not-a-key"}).status_code == 403
