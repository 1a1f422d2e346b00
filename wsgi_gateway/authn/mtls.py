"""``mtls``: client certificates, from gunicorn's TLS socket or from a trusted proxy.

Two places, tried in this order:

1. **A trusted proxy's header.** With ``header`` set, a request whose ``REMOTE_ADDR``
   is in ``trusted_proxies`` carries the client certificate in that header (URL-encoded
   PEM, as nginx's ``$ssl_client_escaped_cert``, or base64 DER). It is verified here
   against ``ca_file`` (see :func:`.mtls_x509.verify`). From any other address the
   header is ignored, and ``strip_auth`` removes it before the upstream: a client can
   never supply it.
2. **gunicorn's TLS socket.** When gunicorn terminates TLS with ``cert_reqs`` 1 or 2,
   gunicorn exposes no environ key for the peer certificate: the gateway reads it from
   ``environ["gunicorn.socket"]`` (an ``ssl.SSLSocket``, gunicorn/http/wsgi.py:99) with
   ``getpeercert(binary_form=True)``. ssl already verified it against ``ca_certs`` at
   the handshake; ``ca_file``, when set, narrows it further to those CAs.

Dates are checked on every request (a keep-alive connection can outlive a certificate).
The verified identity is cached per worker by a digest of the certificate.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from cachetools import LRUCache
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..config.model import ApiConfig
from ..config.typed import Where, parsed
from ..config.units import parse_duration
from ..errors import ConfigError, InvalidRequest, InvalidToken
from ..identity import Identity
from ..mutate.headers import environ_key
from .credentials import CredentialPlaces
from .mtls_x509 import (
    CertFields, Malformed, Rejected, check_dates, decode_header, fields_of, load_anchors, verify,
)
from .registry import Method, register

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an RFC 9110 header name
_FINGERPRINT = re.compile(r"[0-9a-f]{64}\Z")


def _ca_file(node: object, where: Where) -> str:
    """A PEM file of trusted CAs (relative to the config), checked when the config loads."""
    path = where.config_path(node)
    load_anchors(path)  # ValueError names the file and the fault
    return str(path)


def _fingerprints(node: object) -> tuple[str, ...]:
    """SHA-256 hex fingerprints; ``AB:CD:…`` (openssl's form) is accepted too."""
    if not isinstance(node, list):
        raise ValueError("expected a list of SHA-256 hex fingerprints")
    out = []
    for item in node:
        value = item.replace(":", "").lower() if isinstance(item, str) else ""
        if not _FINGERPRINT.match(value):
            raise ValueError(f"{item!r} is not a SHA-256 hex fingerprint (64 hex digits)")
        out.append(value)
    return tuple(out)


@dataclass(frozen=True)
class MtlsOptions:
    """Options of the ``mtls`` method in an API's ``auth`` list."""

    header: str | None = None
    """A trusted proxy's header carrying the certificate, e.g. X-Client-Cert; without it
    gunicorn terminates TLS.
    """
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs whose header is believed; needs header."""
    ca_file: str | None = field(default=None, metadata={"parse": _ca_file})
    """PEM file of CA certificates (relative to the config), checked at load; required with
    header; with direct TLS it narrows what gunicorn's ca_certs accepted.
    """
    fingerprints: tuple[str, ...] = field(default=(), metadata={"parse": parsed(_fingerprints)})
    """Allow-list of SHA-256 fingerprints of the DER certificate; empty = any certificate
    the CAs issued.
    """
    identity_from: Literal["subject_cn", "san_dns", "san_email", "san_uri"] = "subject_cn"
    """subject_cn, or the first san_dns, san_email or san_uri (e.g. SPIFFE IDs)."""
    clock_skew: float = field(default=0.0, metadata={"parse": parsed(parse_duration)})
    """Leeway for not_before and not_after."""
    cache_size: int = 10_000
    """Verified certificates kept per worker."""

    def __post_init__(self):
        if self.header is not None and not _TOKEN.match(self.header):
            raise ValueError(f"header {self.header!r} is not a valid header name")
        if self.header and not (self.trusted_proxies and self.ca_file):
            raise ValueError("header needs trusted_proxies (who may send it) and ca_file "
                             "(the CAs its certificates are verified against)")
        if self.trusted_proxies and not self.header:
            raise ValueError("trusted_proxies is for header: name the header the proxy sets")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"trusted_proxies: {cidr!r} is not an address or CIDR "
                                 "(host bits must be zero)") from None
        if not 0 <= self.cache_size <= 1_000_000:
            raise ValueError("cache_size must be within 0..1000000")
        if not 0 <= self.clock_skew <= 300:
            raise ValueError("clock_skew must be within 0..5m")


class MtlsAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for client certificates.

    :param options: the method's options.
    :param anchors: the CA certificates of ``ca_file`` (empty: none configured).
    :param clock: wall-clock seconds (validity dates).
    """

    id = "mtls"
    challenge = None  # TLS has no WWW-Authenticate scheme: the handshake asks for the cert

    def __init__(self, options: MtlsOptions, anchors: tuple[x509.Certificate, ...] = (),
                 clock: Callable[[], float] = time.time):
        self.options, self.anchors, self.clock = options, anchors, clock
        self.credentials = CredentialPlaces(headers=(options.header,) if options.header else ())
        # the proxy's certificate header is the gateway's, even with strip_auth off: a
        # client outside trusted_proxies must never hand the upstream a certificate
        self.owned_headers = (options.header,) if options.header else ()
        self._environ_key = environ_key(options.header) if options.header else None
        self._proxies = tuple(ipaddress.ip_network(c) for c in options.trusted_proxies)
        self._allowed = frozenset(options.fingerprints)
        self._cache: LRUCache = LRUCache(max(options.cache_size, 1))
        self._lock = threading.Lock()

    def authenticate(self, request) -> Identity | None:
        environ = request.environ
        if self._environ_key and self._trusted(environ.get("REMOTE_ADDR")):
            value = environ.get(self._environ_key, "").strip(" \t")
            if not value:
                return None  # the proxy saw no client certificate (nginx sends "")
            if "," in value:
                raise InvalidRequest("more than one client certificate header given")
            return self._identity(b"h" + value.encode("latin-1"), lambda: decode_header(value))
        der = peer_certificate(environ)
        if der is None:
            return None
        return self._identity(b"d" + der, lambda: x509.load_der_x509_certificate(der))

    def ready(self) -> str | None:
        return None  # nothing to load: the CAs are read at start

    def _trusted(self, remote_addr: str | None) -> bool:
        try:
            address = ipaddress.ip_address(remote_addr or "")
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def _identity(self, raw: bytes, load: Callable[[], x509.Certificate]) -> Identity:
        digest = hashlib.sha256(raw).digest()
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None:
            entry = self._verified(load)
            if self.options.cache_size:
                with self._lock:
                    self._cache[digest] = entry
        identity, not_before, not_after = entry
        try:
            check_dates(not_before, not_after, self.clock(), self.options.clock_skew)
        except Rejected as exc:
            raise InvalidToken(str(exc)) from None
        return identity

    def _verified(self, load: Callable[[], x509.Certificate]) -> tuple[Identity, int, int]:
        """(identity, not_before, not_after) of a trusted, allowed certificate."""
        try:
            cert = load()
        except Malformed as exc:
            raise InvalidRequest(str(exc)) from None
        except ValueError:
            raise InvalidRequest("the client certificate is not a valid certificate") from None
        try:
            if self.anchors:
                verify(cert, self.anchors)
            fields = fields_of(cert, cert.public_bytes(Encoding.DER))
            if self._allowed and fields.fingerprint not in self._allowed:
                raise Rejected("the client certificate is not in the allowed list")
            subject = _subject(fields, self.options.identity_from)
        except Rejected as exc:
            raise InvalidToken(str(exc)) from None
        identity = Identity(method="mtls", subject=subject, issuer=fields.issuer,
                            expires_at=float(fields.not_after),
                            claims=MappingProxyType(fields.claims()), token_kind="certificate")
        return identity, fields.not_before, fields.not_after


def peer_certificate(environ: dict) -> bytes | None:
    """The DER certificate the TLS client presented to gunicorn, if it was asked for one.

    gunicorn 27 puts the connection in ``environ["gunicorn.socket"]``
    (gunicorn/http/wsgi.py:99); after ``ssl_wrap_socket`` (gunicorn/sock.py:300, called
    by workers/sync.py:138 and workers/gthread.py:78) it is an ``ssl.SSLSocket`` whose
    context has ``verify_mode = cert_reqs`` (gunicorn/sock.py:286).
    """
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, ssl.SSLSocket) or sock.context.verify_mode == ssl.CERT_NONE:
        return None
    try:
        return sock.getpeercert(binary_form=True)
    except (ValueError, OSError):  # not connected, or the handshake is not done
        return None


def _subject(fields: CertFields, source: str) -> str:
    if source == "subject_cn":
        values: tuple[str, ...] = (fields.subject_cn,) if fields.subject_cn else ()
    else:
        values = getattr(fields, source)
    if not values:
        raise Rejected(f"the client certificate has no {source.replace('_', ' ')}")
    return values[0]


def _build(options: MtlsOptions, build, api: ApiConfig) -> MtlsAuthenticator:
    try:
        anchors = load_anchors(Path(options.ca_file)) if options.ca_file else ()
    except ValueError as exc:
        raise ConfigError(f"{build.config.source}: apis[{api.name}]: mtls: {exc}") from None
    return MtlsAuthenticator(options, anchors, build.clock)

register(Method("mtls", MtlsOptions, _build))
