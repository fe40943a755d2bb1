"""A certificate authority made in the test: a server certificate for 127.0.0.1 and client
certificates for participants, for real TLS handshakes (issue 17's mutual TLS)."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class TestCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    __test__ = False

    @classmethod
    def make(cls, name: str = "Test DIP client CA") -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
                .not_valid_after(now + timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, server: bool = False, expired: bool = False) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM) signed by this CA: a server certificate for 127.0.0.1, or a
        client certificate (which also serves the participant's request signatures); ``expired``:
        one whose validity ended yesterday."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC) - (timedelta(days=31) if expired else timedelta(0))
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
                   .not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem(key), cert.public_bytes(serialization.Encoding.PEM)


def client_context(server_ca: Path, cert: bytes | None, key: bytes | None, folder: Path) -> ssl.SSLContext:
    """A client's TLS context: trusts ``server_ca``, presents ``cert`` when given."""
    context = ssl.create_default_context(cafile=str(server_ca))
    if cert is not None and key is not None:
        (folder / "client.pem").write_bytes(cert)
        (folder / "client.key").write_bytes(key)
        context.load_cert_chain(str(folder / "client.pem"), str(folder / "client.key"))
    return context
