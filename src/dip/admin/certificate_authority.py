"""The DIP as the certificate authority for participants' certificates, outside production
(DIP FS 8.4; issue 17; docs/security.md "Certificate service").

In production the DIP issues nothing: participants' certificates come from the external CA the
industry appoints, and the DIP trusts its bundle (``--tls-client-ca``). In the test environments
(DEV, SIT, UAT, ...) the DIP can be that CA: ``dip ca init --environment SIT`` makes a CA key and
certificate named for the environment, ``dip serve --ca-cert --ca-key`` loads them, and operators
issue each participant a certificate from a CSR it sends (its private key never leaves it).

Production and the other environments never share a CA (FS 8.4): a CA is made for one
environment (its name says which), the DIP refuses to start with a CA made for another, and
refuses any CA in PRD.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dip.exceptions import ConfigurationError, SignatureError
from dip.signing import SigningKey, load_certificate_pem, load_private_key_pem

PRODUCTION = "PRD"
MAX_DAYS = 825  # what browsers and most TLS stacks still accept for a leaf certificate
_MIN_RSA_BITS = 2048
_CURVES = (ec.SECP256R1, ec.SECP384R1)


class BadRequestForCertificate(ValueError):
    """A CSR that is not one, is not signed by its own key, or holds a key too weak."""


def ca_name(environment: str) -> str:
    return f"DIP {environment} participant CA"


def make_ca(environment: str, days: int = 3650) -> tuple[bytes, bytes]:
    """A new CA key (EC P-256) and self-signed CA certificate for ``environment`` (PEM, PEM)."""
    if environment == PRODUCTION:
        raise ConfigurationError("the DIP is no certificate authority in production: trust the industry CA's "
                                 "bundle with --tls-client-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name(environment))])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: SigningKey, environment: str) -> None:
        if environment == PRODUCTION:
            raise ConfigurationError("--ca-cert/--ca-key: the DIP is no certificate authority in production "
                                     "(FS 8.4): trust the industry CA's bundle with --tls-client-ca")
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if names != [ca_name(environment)]:
            raise ConfigurationError(f"--ca-cert is {names[0] if names else 'unnamed'!r}, not the {environment} CA "
                                     f"({ca_name(environment)!r}): each environment has a CA of its own (FS 8.4)")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ConfigurationError("--ca-cert is not a CA certificate (basicConstraints CA:TRUE)")
        if cert.public_key() != key.public_key():
            raise ConfigurationError("--ca-key is not the key of --ca-cert")
        self.cert = cert
        self._key = key
        self.pem = cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path, environment: str) -> CertificateAuthority:
        try:
            return cls(load_certificate_pem(cert_path.read_bytes()), load_private_key_pem(key_path.read_bytes()),
                       environment)
        except (OSError, SignatureError) as exc:
            raise ConfigurationError(f"--ca-cert/--ca-key: {exc}") from exc

    def issue(self, csr_pem: str, participant_id: str, days: int) -> x509.Certificate:
        """A client certificate for ``participant_id`` (its common name) with the CSR's key, for
        TLS and for signing requests, valid ``days`` (never past the CA's own end)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise BadRequestForCertificate(f"not a PEM certificate signing request: {exc}") from exc
        if not csr.is_signature_valid:
            raise BadRequestForCertificate("the CSR is not signed by the key it holds")
        public = csr.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            if public.key_size < _MIN_RSA_BITS:
                raise BadRequestForCertificate(f"an RSA key needs {_MIN_RSA_BITS} bits at least")
        elif not (isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, _CURVES)):
            raise BadRequestForCertificate("the key must be RSA (2048 bits or more) or EC P-256/P-384")
        if not 1 <= days <= MAX_DAYS:
            raise BadRequestForCertificate(f"days must be 1 to {MAX_DAYS}")
        now = datetime.now(UTC)
        end = min(now + timedelta(days=days), self.cert.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, participant_id)]))
            .issuer_name(self.cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=isinstance(public, rsa.RSAPublicKey),
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.cert.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(self._key, hashes.SHA256())
        )
