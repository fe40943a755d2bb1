"""One webhook call against a real HTTP server: every kind of answer becomes a CallResult."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from dip.egress.outcomes import Outcome
from dip.egress.sender import WebhookSender, interpret
from dip.signing import Signer, generate_identity, load_private_key_pem, verify_request
from dip.tools.testing import WebhookReceiver

KEY_PEM, CERT_PEM = generate_identity("DIP test")
SENT = {"T-1", "T-2"}
BODY = orjson.dumps([{"payload": {"CommonBlock": {"D0": {"transactionID": t}}}} for t in sorted(SENT)])


def call(hook: WebhookReceiver, timeout: float = 5.0, mpo: str | None = None):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        sender = WebhookSender(Signer(load_private_key_pem(KEY_PEM), CERT_PEM), timeout, public_only=False)
        try:
            return await sender.post(hook.url, BODY, SENT, mpo=mpo)
        finally:
            await sender.close()

    return asyncio.run(run())


def test_201_is_delivered_and_the_call_is_signed_by_the_dip() -> None:
    with WebhookReceiver() as hook:
        result = call(hook, mpo="1400000001")
        assert (result.status, result.outcome, result.rejected, result.error) == (201, Outcome.DELIVERED, {}, None)
        request = hook.calls[0]
        assert request.json == orjson.loads(BODY)
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["x-dip-mpo"] == "1400000001"
        signer = verify_request({"X-DIP-Signature": headers["x-dip-signature"],
                                 "X-DIP-Signature-Date": headers["x-dip-signature-date"],
                                 "X-DIP-Content-Hash": headers["x-dip-content-hash"],
                                 "X-DIP-Signature-Certificate": headers["x-dip-signature-certificate"]},
                                "POST", hook.url, request.body, datetime.now(UTC))
        assert signer.certificate.subject.rfc4514_string() == "CN=DIP test"


def item(tid: str, message: str) -> dict[str, object]:
    return {"transactionID": tid, "message": message, "help": "why"}


def test_207_relays_only_the_rejected_known_transactions() -> None:
    with WebhookReceiver() as hook:
        hook.respond(207, body={"messageArray": [item("T-1", "RCP0000 ok"), item("T-2", "RCP1022 bad value"),
                                                 item("T-9", "RCP1001 schema")], "timestamp": "x"})
        result = call(hook)
        assert result.outcome is Outcome.PARTIAL
        assert set(result.rejected) == {"T-2"} and result.rejected["T-2"]["message"] == "RCP1022 bad value"
        assert result.unknown == ("T-9",)


def test_207_with_garbage_rejects_nothing_and_says_why() -> None:
    with WebhookReceiver() as hook:
        hook.respond(207, body=b"<html>oops</html>")
        result = call(hook)
        assert result.outcome is Outcome.PARTIAL and result.rejected == {}
        assert result.error is not None and "207" in result.error


def test_400_without_items_rejects_the_whole_call() -> None:
    with WebhookReceiver() as hook:
        hook.respond(400, body=b"bad")
        result = call(hook)
        assert result.outcome is Outcome.REJECTED and set(result.rejected) == SENT
        hook.respond(400, body={"messageArray": [item("T-1", "RCP1001 schema")], "timestamp": "x"})
        result = call(hook)
        assert set(result.rejected) == {"T-1"}


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (401, Outcome.FAILED), (403, Outcome.FAILED), (404, Outcome.FAILED),
    (413, Outcome.FAILED), (505, Outcome.FAILED), (405, Outcome.FAILED_NOTIFY), (406, Outcome.FAILED_NOTIFY),
    (408, Outcome.RETRY), (500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY), (504, Outcome.RETRY),
])
def test_each_row_of_the_egress_table(status: int, outcome: Outcome) -> None:
    with WebhookReceiver() as hook:
        hook.respond(status)
        result = call(hook)
        assert (result.status, result.outcome) == (status, outcome)
        if status == 200:
            assert result.error is not None and "201 or 207" in result.error


def test_429_with_retry_after() -> None:
    with WebhookReceiver() as hook:
        hook.respond(429, headers={"Retry-After": "17"})
        result = call(hook)
        assert result.outcome is Outcome.RETRY and result.retry_after == 17.0


def test_a_hanging_recipient_is_a_retryable_timeout() -> None:
    with WebhookReceiver() as hook:
        hook.respond(201, delay=2.0)
        result = call(hook, timeout=0.3)
        assert result.status is None and result.outcome is Outcome.RETRY
        assert result.error is not None and "0.3" in result.error and result.seconds < 1.5


def test_a_reset_connection_is_retryable() -> None:
    with WebhookReceiver() as hook:
        hook.respond(201, reset=True)
        result = call(hook)
        assert result.status is None and result.outcome is Outcome.RETRY and result.error


def test_nobody_listening_is_retryable() -> None:
    with WebhookReceiver() as hook:
        url = hook.url
    async def run():  # type: ignore[no-untyped-def]
        sender = WebhookSender(Signer(load_private_key_pem(KEY_PEM), CERT_PEM), 2, public_only=False)
        try:
            return await sender.post(url, BODY, SENT)
        finally:
            await sender.close()
    result = asyncio.run(run())
    assert result.outcome is Outcome.RETRY and result.status is None


def test_public_only_sender_refuses_loopback() -> None:
    with WebhookReceiver() as hook:
        async def run():  # type: ignore[no-untyped-def]
            sender = WebhookSender(Signer(load_private_key_pem(KEY_PEM), CERT_PEM), 2, public_only=True)
            try:
                return await sender.post(hook.url, BODY, SENT)
            finally:
                await sender.close()
        result = asyncio.run(run())
        assert result.outcome is Outcome.FAILED and hook.calls == []
        assert result.error is not None and "not a public address" in result.error


def test_interpret_is_pure_and_total() -> None:
    assert interpret(None, b"", {}, SENT, 0.0, error="refused").outcome is Outcome.RETRY
    weird = interpret(207, orjson.dumps([item("T-1", None), {"transactionID": 5}, "x"]), {}, SENT, 0.0)  # type: ignore[arg-type]
    assert set(weird.rejected) == {"T-1"}
