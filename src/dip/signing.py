"""DIP request signatures: sign and verify (API contract, "Signatures").

Every participant request and every DIP callback carries:

- ``X-DIP-Content-Hash``: base64 of SHA-256 of the exact body bytes;
- ``X-DIP-Signature-Date``: ISO 8601 UTC; rejected when more than 5 minutes from our clock;
- ``X-DIP-Signature``: base64 signature of ``{METHOD};{url lower-cased};{date};{content hash}``
  (RSA PKCS#1 v1.5 + SHA-256, or ECDSA + SHA-256);
- ``X-DIP-Signature-Certificate``: base64 of the signer's PEM certificate.

One signature covers a whole batch, so verifying costs one public-key operation per request
whatever the batch size; certificates are parsed once and cached by their header value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from dip.exceptions import SignatureError

SIGNATURE = "X-DIP-Signature"
SIGNATURE_DATE = "X-DIP-Signature-Date"
CONTENT_HASH = "X-DIP-Content-Hash"
SIGNATURE_CERTIFICATE = "X-DIP-Signature-Certificate"
API_KEY = "X-API-Key"
MPO = "X-DIP-MPO"

DEFAULT_MAX_SKEW = timedelta(minutes=5)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def content_hash(body: bytes, sha256: bytes | None = None) -> str:
    """base64 SHA-256 of ``body`` (or of the body whose digest ``sha256`` is already known)."""
    return base64.b64encode(sha256 if sha256 is not None else hashlib.sha256(body).digest()).decode("ascii")


def string_to_sign(method: str, url: str, date: str, body_hash: str) -> str:
    return f"{method.upper()};{url.lower()};{date};{body_hash}"


def format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_header(cert_pem: bytes) -> str:
    pem = cert_pem.replace(b"\r\n", b"\n")
    return base64.b64encode(pem).decode("ascii")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex: how registered certificates are keyed."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass
class Signer:
    """The key the DIP signs with now, and its certificate: one object shared by everything that
    signs, so that a rotation (dip.node) changes them everywhere at once."""

    key: SigningKey
    cert_pem: bytes


def fingerprint_of_pem(pem: bytes | str) -> str:
    return fingerprint(load_certificate_pem(pem))


def load_certificate_pem(pem: bytes | str) -> x509.Certificate:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise SignatureError(f"not a PEM X.509 certificate: {exc}") from exc


def load_private_key_pem(pem: bytes, password: bytes | None = None) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a usable PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SignatureError("signing keys must be RSA or EC")
    return key


def _raw_sign(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def sign_bytes(key: SigningKey, data: bytes) -> bytes:
    """A signature over ``data`` (SHA-256; PKCS#1 v1.5 for RSA, ECDSA for EC): what the DIP signs
    of its own records (the activity log's checkpoints and cuts)."""
    return _raw_sign(key, data)


def verifies(cert: x509.Certificate, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``data`` was made with the key of ``cert``."""
    public_key = cert.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def sign_headers(
    key: SigningKey,
    cert_pem: bytes,
    method: str,
    url: str,
    body: bytes,
    now: datetime | None = None,
) -> dict[str, str]:
    """The four X-DIP-* headers for a request (the API key is added by the caller)."""
    date = format_date(now or datetime.now(UTC))
    body_hash = content_hash(body)
    signature = _raw_sign(key, string_to_sign(method, url, date, body_hash).encode("utf-8"))
    return {
        SIGNATURE: base64.b64encode(signature).decode("ascii"),
        SIGNATURE_DATE: date,
        CONTENT_HASH: body_hash,
        SIGNATURE_CERTIFICATE: certificate_header(cert_pem),
    }


@dataclass(frozen=True, slots=True)
class SignerCertificate:
    certificate: x509.Certificate
    fingerprint: str


@lru_cache(maxsize=1024)
def _certificate_from_header(header: str) -> SignerCertificate:
    try:
        pem = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{SIGNATURE_CERTIFICATE} is not base64") from exc
    cert = load_certificate_pem(pem)
    return SignerCertificate(cert, fingerprint(cert))


def _parse_date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SignatureError(f"{SIGNATURE_DATE} '{value[:40]}' is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        # one form for one moment: the date is part of what is signed, and replays are told apart by it
        raise SignatureError(f"{SIGNATURE_DATE} must be in UTC ('Z' or +00:00), as the DIP signs: "
                             f"{format_date(datetime.now(UTC))}")
    return parsed


def verify_request(
    headers: Mapping[str, str],
    method: str,
    url: str | Sequence[str],
    body: bytes,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    body_sha256: bytes | None = None,
) -> SignerCertificate:
    """Check the signature headers of a request; return the signer's certificate.

    ``url`` may be several spellings of the one URL the request went to (as sent, decoded): the
    signature must verify for one of them. Raises SignatureError with a reason a participant can
    act on. Whether the certificate belongs to the caller is the caller's business (see dip.ingress.auth).
    """
    values = {}
    for name in (SIGNATURE, SIGNATURE_DATE, CONTENT_HASH, SIGNATURE_CERTIFICATE):
        value = headers.get(name)
        if not value:
            raise SignatureError(f"missing header {name}")
        values[name] = value
    body_hash = content_hash(body, body_sha256)
    if values[CONTENT_HASH] != body_hash:
        raise SignatureError(f"{CONTENT_HASH} does not match the SHA-256 of the request body")
    signed_at = _parse_date(values[SIGNATURE_DATE])
    if abs(now - signed_at) > max_skew:
        raise SignatureError(
            f"{SIGNATURE_DATE} {values[SIGNATURE_DATE]} is more than "
            f"{int(max_skew.total_seconds())} seconds from the DIP's clock ({format_date(now)})"
        )
    signer = _certificate_from_header(values[SIGNATURE_CERTIFICATE])
    cert = signer.certificate
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        raise SignatureError(
            f"signing certificate is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d})"
        )
    try:
        signature = base64.b64decode(values[SIGNATURE], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{SIGNATURE} is not base64") from exc
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError("certificate key type not supported (use RSA or EC)")
    urls = [url] if isinstance(url, str) else list(url)
    for candidate in urls:
        data = string_to_sign(method, candidate, values[SIGNATURE_DATE], body_hash).encode("utf-8")
        try:
            if isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return signer
    raise SignatureError(f"{SIGNATURE} does not verify for {method.upper()} {urls[0].lower()} with this certificate")


def generate_identity(
    common_name: str, days: int = 730, key: CertificateIssuerPrivateKeyTypes | None = None
) -> tuple[bytes, bytes]:
    """A new EC P-256 key and self-signed certificate (PEM key, PEM cert) for demos and tests."""
    private_key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # usable at once by a peer whose clock is behind
        .not_valid_after(now + timedelta(days=days))
        .sign(private_key, hashes.SHA256())
    )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
