"""Test certificates made with ``cryptography``: a CA, server and client certificates.

EC P-256 keys (fast to make). Each certificate can be written to files for gunicorn and
requests, or encoded as a proxy would forward it.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = timedelta(days=1)


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def escaped_pem(self) -> str:
        """As nginx's ``$ssl_client_escaped_cert``."""
        return quote(self.pem, safe="")

    def b64_der(self) -> str:
        return base64.b64encode(self.der).decode()

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """(cert.pem, key.pem) written in ``folder``."""
        cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
        cert_path.write_text(self.pem)
        key_path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return cert_path, key_path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgi-gateway tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "Test CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca: Issued, cn: str | None = "client-1", *, dns: tuple[str, ...] = (),
          emails: tuple[str, ...] = (), uris: tuple[str, ...] = (), ips: tuple[str, ...] = (),
          not_before: datetime | None = None, not_after: datetime | None = None,
          usage=ExtendedKeyUsageOID.CLIENT_AUTH) -> Issued:
    """A leaf certificate signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    subject = _name(cn) if cn else x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgi-gateway tests")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - DAY)
               .not_valid_after(not_after or now + 7 * DAY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    names = ([x509.DNSName(d) for d in dns] + [x509.RFC822Name(e) for e in emails]
             + [x509.UniformResourceIdentifier(u) for u in uris]
             + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips])
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def server_cert(ca: Issued) -> Issued:
    """A server certificate for 127.0.0.1 and localhost."""
    return issue(ca, "localhost", dns=("localhost",), ips=("127.0.0.1",),
                 usage=ExtendedKeyUsageOID.SERVER_AUTH)
