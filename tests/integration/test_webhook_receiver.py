"""dip.tools.testing.WebhookReceiver: the recording webhook server the delivery tests rely on."""

from __future__ import annotations

import httpx
import pytest

from dip.tools.testing import WebhookReceiver

BATCH = [{"payload": {"CommonBlock": {"S1": {"senderDIPID": "1300000001"}, "D0": {"transactionID": "T-1"}}}}]


def test_records_calls_and_accepts_by_default() -> None:
    with WebhookReceiver() as hook:
        response = httpx.post(hook.url, json=BATCH, headers={"X-DIP-Signature": "s"})
        assert response.status_code == 201
        assert response.json()["messageArray"][0]["transactionID"] == "T-1"
        assert response.json()["messageArray"][0]["message"] == "MSG0000 - Success"
        calls = hook.wait_for(lambda calls: len(calls) == 1, timeout=5)
        assert calls[0].json == BATCH and calls[0].headers["X-DIP-Signature"] == "s" and calls[0].path == "/hook"


def test_scripted_answers_then_default() -> None:
    with WebhookReceiver() as hook:
        hook.respond(503, times=2, headers={"Retry-After": "7"})
        hook.respond(207, body={"messageArray": [], "timestamp": "x"})
        statuses = [httpx.post(hook.url, json=BATCH) for _ in range(4)]
        assert [r.status_code for r in statuses] == [503, 503, 207, 201]
        assert statuses[0].headers["Retry-After"] == "7"
        hook.always(400, body=b"not json at all")
        response = httpx.post(hook.url, json=BATCH)
        assert response.status_code == 400 and response.content == b"not json at all"


def test_delay_and_reset() -> None:
    with WebhookReceiver() as hook:
        hook.respond(201, delay=1.0)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(hook.url, json=BATCH, timeout=0.2)
        hook.respond(201, reset=True)
        with pytest.raises(httpx.TransportError):
            httpx.post(hook.url, json=BATCH, timeout=5)
        assert len(hook.wait_for(lambda calls: len(calls) == 2, timeout=5)) == 2


def test_wait_for_gives_up_at_the_deadline() -> None:
    with WebhookReceiver() as hook, pytest.raises(TimeoutError):
        hook.wait_for(lambda calls: len(calls) > 0, timeout=0.2)
