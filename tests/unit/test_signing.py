"""Request signatures (API-CONTRACT.md section 1, "Signatures"; dip.signing).

Every participant request and every DIP callback is signed this way, so a participant's own
implementation must produce byte-identical content hashes, strings to sign and (for RSA)
signatures: ``tests/data/signature-vectors.json`` holds vectors they can check theirs against.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dip import signing
from dip.exceptions import SignatureError

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "signature-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

URL = "https://dip.example.com/dip-channel/IF-005"
BODY = b'[{"payload": {"CommonBlock": {}, "CustomBlock": {}}}]'
NOW = datetime.now(UTC).replace(microsecond=0)  # at collection: certificates made later are backdated 1 h
Identity = tuple[signing.SigningKey, bytes]
HEADER_NAMES = (signing.SIGNATURE, signing.SIGNATURE_DATE, signing.CONTENT_HASH, signing.SIGNATURE_CERTIFICATE)


def _ec_identity() -> Identity:
    key_pem, cert_pem = signing.generate_identity("1000000001")
    return signing.load_private_key_pem(key_pem), cert_pem


def _rsa_identity() -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem, cert_pem = signing.generate_identity("1000000002", key=key)
    return signing.load_private_key_pem(key_pem), cert_pem


@pytest.fixture(scope="module", params=["ec-p256", "rsa-2048"])
def identity(request: pytest.FixtureRequest) -> Identity:
    return _ec_identity() if request.param == "ec-p256" else _rsa_identity()


@pytest.fixture(scope="module")
def ec_identity() -> Identity:
    return _ec_identity()


def _signed(identity: Identity, method: str = "POST", url: str = URL,
            body: bytes = BODY, at: datetime = NOW) -> dict[str, str]:
    key, cert_pem = identity
    return signing.sign_headers(key, cert_pem, method, url, body, now=at)


def _certificate(key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "1000000003")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _rejects(headers: dict[str, str], *, method: str = "POST", url: str = URL, body: bytes = BODY,
             now: datetime = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        signing.verify_request(headers, method, url, body, now)
    return str(caught.value)


# --- round trip ----------------------------------------------------------------------------------------


def test_signed_request_verifies_and_names_the_signer(identity: Identity) -> None:
    _, cert_pem = identity
    headers = _signed(identity)

    signer = signing.verify_request(headers, "POST", URL, BODY, NOW)

    cert = x509.load_pem_x509_certificate(cert_pem)
    assert signer.certificate == cert
    assert signer.fingerprint == cert.fingerprint(hashes.SHA256()).hex()


def test_a_signature_over_any_one_spelling_of_the_url_verifies(identity: Identity) -> None:
    headers = _signed(identity, url=URL)

    assert signing.verify_request(headers, "POST", ["https://other.example/x", URL], BODY, NOW)
    with pytest.raises(SignatureError) as caught:
        signing.verify_request(headers, "POST", ["https://Other.example/x", "https://third.example/y"], BODY, NOW)
    assert "https://other.example/x" in str(caught.value)  # the error names the URL as sent


def test_sign_headers_produce_the_four_headers_in_the_pinned_forms(ec_identity: Identity) -> None:
    _, cert_pem = ec_identity
    headers = _signed(ec_identity, at=datetime(2026, 11, 23, 10, 15, 0, 500_000, tzinfo=UTC))

    assert set(headers) == set(HEADER_NAMES)
    assert headers[signing.SIGNATURE_DATE] == "2026-11-23T10:15:00Z"
    assert headers[signing.CONTENT_HASH] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert base64.b64decode(headers[signing.SIGNATURE_CERTIFICATE]) == cert_pem


def test_certificate_header_uses_lf_line_ends() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n"

    assert base64.b64decode(signing.certificate_header(pem)) == pem.replace(b"\r\n", b"\n")


def test_empty_body_is_hashed_as_zero_bytes() -> None:
    assert signing.content_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_empty_body_request_verifies(identity: Identity) -> None:
    headers = _signed(identity, method="DELETE", url=URL + "/pubconfig/1000000001", body=b"")

    signing.verify_request(headers, "DELETE", URL + "/pubconfig/1000000001", b"", NOW)


def test_url_case_differences_still_verify(identity: Identity) -> None:
    headers = _signed(identity, url="https://DIP.example.com/Dip-Channel/if-005")

    signing.verify_request(headers, "POST", "https://dip.example.com/dip-channel/IF-005", BODY, NOW)


def test_method_case_differences_still_verify(identity: Identity) -> None:
    signing.verify_request(_signed(identity, method="post"), "POST", URL, BODY, NOW)


def test_date_up_to_five_minutes_either_side_verifies(ec_identity: Identity) -> None:
    for skew in (timedelta(minutes=-5), timedelta(minutes=5), timedelta(seconds=-299), timedelta(seconds=299)):
        signing.verify_request(_signed(ec_identity, at=NOW + skew), "POST", URL, BODY, NOW)


def test_header_names_are_matched_case_insensitively_by_a_request_headers_mapping(
    ec_identity: Identity,
) -> None:
    from starlette.datastructures import Headers

    as_received = Headers(headers={name.lower(): value for name, value in _signed(ec_identity).items()})

    signing.verify_request(as_received, "POST", URL, BODY, NOW)


# --- each way a signature fails ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", HEADER_NAMES)
def test_missing_header_is_named(ec_identity: Identity, missing: str) -> None:
    headers = _signed(ec_identity)
    del headers[missing]

    assert _rejects(headers) == f"missing header {missing}"


@pytest.mark.parametrize("missing", HEADER_NAMES)
def test_empty_header_counts_as_missing(ec_identity: Identity, missing: str) -> None:
    headers = _signed(ec_identity)
    headers[missing] = ""

    assert _rejects(headers) == f"missing header {missing}"


def test_tampered_body_fails_the_content_hash(identity: Identity) -> None:
    message = _rejects(_signed(identity), body=BODY.replace(b"CustomBlock", b"CustomBlocK"))

    assert signing.CONTENT_HASH in message
    assert "body" in message


def test_tampered_body_with_matching_hash_fails_the_signature(identity: Identity) -> None:
    tampered = BODY + b" "
    headers = _signed(identity)
    headers[signing.CONTENT_HASH] = signing.content_hash(tampered)

    message = _rejects(headers, body=tampered)

    assert signing.SIGNATURE in message
    assert "does not verify" in message


def test_different_url_fails(identity: Identity) -> None:
    message = _rejects(_signed(identity), url="https://dip.example.com/dip-channel/IF-006")

    assert "does not verify" in message
    assert "https://dip.example.com/dip-channel/if-006" in message


def test_different_method_fails(identity: Identity) -> None:
    message = _rejects(_signed(identity), method="PUT")

    assert "does not verify" in message
    assert "PUT" in message


def test_different_date_header_fails(ec_identity: Identity) -> None:
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE_DATE] = signing.format_date(NOW + timedelta(seconds=1))

    assert "does not verify" in _rejects(headers)


@pytest.mark.parametrize("skew", [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1),
                                  timedelta(hours=2), -timedelta(days=1)])
def test_date_more_than_five_minutes_away_fails(ec_identity: Identity,
                                                skew: timedelta) -> None:
    headers = _signed(ec_identity, at=NOW + skew)

    message = _rejects(headers)

    assert signing.SIGNATURE_DATE in message
    assert "300 seconds" in message


@pytest.mark.parametrize("date", ["yesterday", "2026-11-23T10:15:00"])
def test_unreadable_or_offsetless_date_fails(ec_identity: Identity, date: str) -> None:
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE_DATE] = date

    assert signing.SIGNATURE_DATE in _rejects(headers)


@pytest.mark.parametrize("offset", ["+01:00", "-05:00", "+00:30"])
def test_a_correctly_signed_date_in_another_offset_fails(ec_identity: Identity, offset: str) -> None:
    key = ec_identity[0]
    hours, minutes = int(offset[1:3]), int(offset[4:])
    shift = timedelta(hours=hours, minutes=minutes) * (1 if offset[0] == "+" else -1)
    date = (NOW + shift).replace(tzinfo=None).isoformat() + offset  # the same moment, written in that offset
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE_DATE] = date
    data = signing.string_to_sign("POST", URL, date, headers[signing.CONTENT_HASH]).encode()
    headers[signing.SIGNATURE] = base64.b64encode(signing._raw_sign(key, data)).decode()

    assert "must be in UTC" in _rejects(headers)


def test_expired_certificate_fails() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _certificate(key, NOW - timedelta(days=400), NOW - timedelta(days=1))

    message = _rejects(signing.sign_headers(key, cert_pem, "POST", URL, BODY, now=NOW))

    assert "certificate is not valid now" in message
    assert f"{NOW - timedelta(days=1):%Y-%m-%d}" in message


def test_not_yet_valid_certificate_fails() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _certificate(key, NOW + timedelta(days=1), NOW + timedelta(days=400))

    message = _rejects(signing.sign_headers(key, cert_pem, "POST", URL, BODY, now=NOW))

    assert "certificate is not valid now" in message


def test_signature_by_another_key_than_the_certificates_fails(ec_identity: Identity) -> None:
    _, cert_pem = ec_identity
    other_key, _ = _ec_identity()

    message = _rejects(signing.sign_headers(other_key, cert_pem, "POST", URL, BODY, now=NOW))

    assert "does not verify" in message


def test_garbage_base64_signature_fails(ec_identity: Identity) -> None:
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE] = "not*base64!"

    assert _rejects(headers) == f"{signing.SIGNATURE} is not base64"


def test_garbage_base64_certificate_fails(ec_identity: Identity) -> None:
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE_CERTIFICATE] = "not*base64!"

    assert _rejects(headers) == f"{signing.SIGNATURE_CERTIFICATE} is not base64"


def test_certificate_header_that_is_not_a_certificate_fails(ec_identity: Identity) -> None:
    headers = _signed(ec_identity)
    headers[signing.SIGNATURE_CERTIFICATE] = base64.b64encode(b"hello, I am a certificate").decode()

    assert "not a PEM X.509 certificate" in _rejects(headers)


def test_load_certificate_pem_rejects_a_private_key() -> None:
    key_pem, _ = signing.generate_identity("1000000001")

    with pytest.raises(SignatureError, match=r"not a PEM X\.509 certificate"):
        signing.load_certificate_pem(key_pem)


def test_load_private_key_pem_rejects_other_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(SignatureError, match="RSA or EC"):
        signing.load_private_key_pem(pem)


# --- shared test vectors ---------------------------------------------------------------------------------


def _vector_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(VECTORS["privateKeyPem"].encode("ascii"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_vector_key_and_certificate_belong_together() -> None:
    cert = x509.load_pem_x509_certificate(VECTORS["certificatePem"].encode("ascii"))
    key = _vector_key()

    assert key.key_size == 2048
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.public_numbers() == key.public_key().public_numbers()
    assert cert.not_valid_before_utc == datetime(2020, 1, 1, tzinfo=UTC)
    assert cert.not_valid_after_utc == datetime(2100, 1, 1, tzinfo=UTC)


def test_vectors_include_an_empty_body_and_a_mixed_case_url() -> None:
    cases = VECTORS["cases"]

    assert any(case["body"] == "" for case in cases)
    assert any(case["url"] != case["url"].lower() for case in cases)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["description"])
def test_vector_content_hash_and_string_to_sign(case: dict[str, Any]) -> None:
    body = case["body"].encode("utf-8")

    assert case["contentHash"] == base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    assert signing.content_hash(body) == case["contentHash"]
    assert case["stringToSign"] == f"{case['method']};{case['url'].lower()};{case['date']};{case['contentHash']}"
    assert signing.string_to_sign(case["method"], case["url"], case["date"], case["contentHash"]) == case[
        "stringToSign"
    ]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["description"])
def test_vector_signature_is_reproduced_by_sign_headers(case: dict[str, Any]) -> None:
    at = datetime.fromisoformat(case["date"])

    headers = signing.sign_headers(
        _vector_key(), VECTORS["certificatePem"].encode("ascii"), case["method"], case["url"],
        case["body"].encode("utf-8"), now=at,
    )

    assert headers[signing.SIGNATURE_DATE] == case["date"]
    assert headers[signing.CONTENT_HASH] == case["contentHash"]
    assert headers[signing.SIGNATURE] == case["signature"]
    raw = _vector_key().sign(case["stringToSign"].encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    assert base64.b64encode(raw).decode("ascii") == case["signature"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["description"])
def test_vector_verifies_at_its_date(case: dict[str, Any]) -> None:
    headers = {
        signing.SIGNATURE: case["signature"],
        signing.SIGNATURE_DATE: case["date"],
        signing.CONTENT_HASH: case["contentHash"],
        signing.SIGNATURE_CERTIFICATE: base64.b64encode(VECTORS["certificatePem"].encode("ascii")).decode("ascii"),
    }
    body = case["body"].encode("utf-8")
    at = datetime.fromisoformat(case["date"])

    signer = signing.verify_request(headers, case["method"], case["url"], body, at)

    assert signer.certificate == x509.load_pem_x509_certificate(VECTORS["certificatePem"].encode("ascii"))
    with pytest.raises(SignatureError):
        signing.verify_request(headers, case["method"], case["url"], body + b"x", at)
