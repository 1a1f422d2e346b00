"""Client certificates as values: decode a forwarded one, verify it, read its fields.

Knows nothing of WSGI. Verification of a certificate forwarded by a proxy is deliberately
small and stated exactly (see :func:`verify`): the leaf must be *directly* issued by one
of the trusted certificates in ``ca_file`` (each of which is a trust anchor, so an
intermediate CA that issues client certificates is listed there itself); no CRL, OCSP,
name constraints or policy checks are done.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_HEADER_LENGTH = 16_384    # a client certificate is 1-3 KB; larger is malformed
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class Malformed(ValueError):
    """The forwarded value is not a certificate (400)."""


class Rejected(ValueError):
    """A certificate that is not acceptable: expired, untrusted, not allowed (401)."""


def decode_header(value: str) -> x509.Certificate:
    """The certificate in a forwarded header value.

    Two encodings are accepted: URL-encoded PEM (nginx ``$ssl_client_escaped_cert``,
    AWS ALB, Envoy; plain PEM too) and base64 DER (standard alphabet, no line breaks
    needed). Exactly one certificate; anything else is :class:`Malformed`.
    """
    if len(value) > MAX_HEADER_LENGTH:
        raise Malformed("the client certificate header is too large")
    text = unquote(value, errors="strict") if "%" in value else value
    try:
        if text.startswith(PEM_BEGIN):
            if text.count(PEM_BEGIN) != 1:
                raise Malformed("the client certificate header holds more than one certificate")
            return x509.load_pem_x509_certificate(text.encode("ascii"))
        compact = "".join(text.split())
        if not compact or not set(compact) <= _B64:
            raise Malformed("the client certificate header is neither PEM nor base64 DER")
        return x509.load_der_x509_certificate(base64.b64decode(compact, validate=True))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        if isinstance(exc, Malformed):
            raise
        raise Malformed("the client certificate header is not a valid certificate") from None


def load_anchors(path: Path) -> tuple[x509.Certificate, ...]:
    """The trusted CA certificates in a PEM file; ValueError when there are none."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read ca_file {str(path)!r}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"ca_file {str(path)!r} holds no PEM certificate") from None
    for cert in certs:
        if not _is_ca(cert):
            raise ValueError(f"ca_file {str(path)!r}: {cert.subject.rfc4514_string()} is not a CA "
                             "certificate (basicConstraints ca=true)")
    return tuple(certs)


def verify(cert: x509.Certificate, anchors: tuple[x509.Certificate, ...]) -> x509.Certificate:
    """The anchor that issued ``cert``; :class:`Rejected` when none did.

    Checked: the issuer name matches an anchor's subject and the signature verifies with
    its key (``verify_directly_issued_by``), the anchor is a CA, and an extended key
    usage, when present, allows clientAuth. Dates are checked by :func:`check_dates` on
    every request (the result of this function is cached).
    """
    for anchor in anchors:
        if anchor.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(anchor)
        except (InvalidSignature, ValueError, TypeError):
            continue  # another anchor with the same name may hold the right key
        _check_usage(cert)
        return anchor
    raise Rejected("the client certificate is not issued by a trusted CA")


def check_dates(not_before: float, not_after: float, now: float, skew: float) -> None:
    """:class:`Rejected` unless ``now`` is within the validity period (± skew)."""
    if now + skew < not_before:
        raise Rejected("the client certificate is not valid yet")
    if now - skew >= not_after:
        raise Rejected("the client certificate has expired")


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex (``openssl x509 -fingerprint -sha256``)."""
    return hashlib.sha256(der).hexdigest()


def thumbprint_s256(der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url (no padding) of the DER's SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class CertFields:
    """What a rule may read of a client certificate (every value JSON/CEL friendly)."""

    subject: str
    subject_cn: str
    issuer: str
    serial: str
    not_before: int
    not_after: int
    san_dns: tuple[str, ...]
    san_email: tuple[str, ...]
    san_uri: tuple[str, ...]
    fingerprint: str
    x5t_s256: str

    def claims(self) -> dict[str, object]:
        return {"subject": self.subject, "cn": self.subject_cn, "issuer": self.issuer,
                "serial": self.serial, "not_before": self.not_before, "not_after": self.not_after,
                "san": {"dns": list(self.san_dns), "email": list(self.san_email),
                        "uri": list(self.san_uri)},
                "fingerprint": self.fingerprint, "x5t#S256": self.x5t_s256}


def fields_of(cert: x509.Certificate, der: bytes) -> CertFields:
    """The rule-visible fields of ``cert`` (``der`` is its DER encoding)."""
    san = _sans(cert)
    return CertFields(
        subject=cert.subject.rfc4514_string(), subject_cn=_cn(cert.subject),
        issuer=cert.issuer.rfc4514_string(), serial=format(cert.serial_number, "x"),
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        san_dns=tuple(san.get_values_for_type(x509.DNSName)) if san else (),
        san_email=tuple(san.get_values_for_type(x509.RFC822Name)) if san else (),
        san_uri=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san else (),
        fingerprint=fingerprint(der), x5t_s256=thumbprint_s256(der))


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _sans(cert: x509.Certificate):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_usage(cert: x509.Certificate) -> None:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usages):
        raise Rejected("the client certificate is not for client authentication")
