"""Trusted token issuers (``providers:``): where their keys come from, what they may sign."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .secrets import Secret, resolve_secret
from .typed import Where, parsed
from .units import parse_duration

ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA", "Ed25519"})
SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_BASE64 = {"base64url": re.compile(r"[A-Za-z0-9_-]+={0,2}\Z"),
           "base64": re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")}
MIN_HMAC_SECRET = 32  # bytes: RFC 7518 §3.2 (a key at least as long as the HS256 hash)


def _duration(default: float) -> Any:
    return field(default=default, metadata={"parse": parsed(parse_duration)})


def _secret(node: object, where: Where) -> Secret:
    return resolve_secret(node, where.base_dir)


def check_url(url: str, what: str) -> None:
    """https, or http only to a loopback host (for a local IdP); raises ValueError."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise ValueError(f"{what} {url!r} must be an https URL (http only to a loopback host)")


@dataclass(frozen=True)
class StaticKeyConfig:
    """One key given in the config: exactly one of ``pem``, ``pem_file``, ``jwk``,
    ``jwks_file`` or ``secret`` (an HMAC secret from env or file)."""

    kid: str | None = None
    """The key ID tokens name in their kid header."""
    pem: str | None = None
    """A public key, PEM text."""
    pem_file: str | None = None
    """A public key, PEM file (relative to the config)."""
    jwk: Mapping[str, Any] | None = None
    """A public JWK."""
    jwks_file: str | None = None
    """A JWK set file (relative to the config)."""
    secret: Secret | None = field(default=None, metadata={"parse": _secret})
    """An HMAC secret, {env: NAME} or {file: PATH}, at least 32 bytes after decoding (RFC
    7518 section 3.2).
    """
    secret_encoding: Literal["base64url", "base64", "raw"] = "base64url"
    """How secret is decoded, strictly: base64url, base64 or raw."""

    def __post_init__(self):
        given = [n for n in ("pem", "pem_file", "jwk", "jwks_file", "secret")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a key needs exactly one of pem, pem_file, jwk, jwks_file, secret")
        if self.secret is not None:
            self.secret_bytes()  # a bad secret stops the load here, where the line is known

    def secret_bytes(self) -> bytes:
        """The HMAC secret decoded by ``secret_encoding``; ValueError saying how to fix it.

        Decoding is strict (a stray character is an error, not silently dropped as
        Python's base64 does), and the message names ``secret_encoding``, since a
        secret in the other alphabet, or raw, is the usual cause. Never the value.
        """
        raw = self.secret.reveal() if self.secret is not None else b""
        if self.secret_encoding == "raw":
            data = raw
        else:
            data = _decode(raw, self.secret_encoding, self.secret.source if self.secret else "")
        if len(data) < MIN_HMAC_SECRET:
            raise ValueError(f"secret: an HMAC secret must be at least {MIN_HMAC_SECRET} bytes "
                             f"(RFC 7518 §3.2), {self.secret.source} has {len(data)} after "
                             f"secret_encoding {self.secret_encoding}")
        return data

    @property
    def symmetric(self) -> bool:
        return self.secret is not None


def _decode(raw: bytes, encoding: str, source: str) -> bytes:
    other = "base64" if encoding == "base64url" else "base64url"
    fix = (f"set secret_encoding: {other} if the secret uses the other alphabet, or raw if it "
           "is not base64 text")
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError(f"secret: {source} is not {encoding} text (secret_encoding: "
                         f"{encoding}); {fix}") from None
    if not _BASE64[encoding].match(text) or len(text.rstrip("=")) % 4 == 1:
        raise ValueError(f"secret: {source} is not valid {encoding} (secret_encoding: "
                         f"{encoding}); {fix}")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/").rstrip("=")
                                + "=" * (-len(text.rstrip("=")) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"secret: {source} is not valid {encoding} (secret_encoding: "
                         f"{encoding}); {fix}") from None


@dataclass(frozen=True)
class JwksConfig:
    """How a provider's published key set is fetched and cached."""

    timeout: float = _duration(2.0)
    """Connect and read, per fetch."""
    default_ttl: float = _duration(3600.0)
    """How long a key set is kept when the response has no Cache-Control max-age."""
    min_ttl: float = _duration(300.0)
    """max-age is honoured within [min_ttl, max_ttl]."""
    max_ttl: float = _duration(86400.0)
    """The longest a key set is kept."""
    refetch_interval: float = _duration(30.0)
    """A token with an unknown kid refetches the set at most this often."""
    warmup: float = _duration(5.0)
    """How long a starting worker waits for the keys."""

    def __post_init__(self):
        if not 0 < self.timeout <= 30:
            raise ValueError("timeout must be within (0, 30s]")
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ValueError("need 0 < min_ttl <= default_ttl <= max_ttl")


@dataclass(frozen=True)
class ProviderConfig:
    """A trusted issuer of JWT access tokens (or OpenID Connect ID tokens).

    Keys come from exactly one of: OIDC ``discovery``, an explicit ``jwks_uri``, or
    static ``keys``. A token is routed to its provider by its ``iss``.
    """

    name: str
    """Names the provider in logs, in the jwt method's providers list and in token.provider."""
    issuer: str
    """The exact iss of its tokens; with discovery, also where /.well-known/openid-
    configuration is read.
    """
    algorithms: tuple[str, ...]
    """The explicit allow-list of signature algorithms (never none); HS* only with static
    secrets.
    """
    discovery: bool = False
    """Find jwks_uri by OpenID Connect discovery from the issuer."""
    jwks_uri: str | None = None
    """The key set URL (https, or http to a loopback host)."""
    keys: tuple[StaticKeyConfig, ...] = ()
    """Static keys instead of a published key set."""
    audiences: tuple[str, ...] = ()
    """The token's aud must contain one of these."""
    allow_any_audience: bool = False
    """Explicit opt-out of the audience check (not recommended)."""
    client_ids: tuple[str, ...] = ()
    """Approved clients (azp, client_id, or aud for ID tokens); empty = any."""
    token_types: tuple[Literal["access", "id"], ...] = ("access",)
    """Which tokens are accepted: access tokens, and/or OpenID Connect ID tokens (needs
    client_ids).
    """
    access_token_typ: tuple[str, ...] = ("at+jwt", "jwt", "")
    """Accepted typ headers of access tokens; "" = absent."""
    clock_skew: float = _duration(30.0)
    """Leeway for exp, nbf and iat."""
    require_exp: bool = True
    """Refuse a token without exp."""
    max_lifetime: float | None = field(default=None, metadata={"parse": parsed(parse_duration)})
    """Refuse a token whose exp - iat is longer than this."""
    required_claims: tuple[str, ...] = ()
    """Claims every token must carry."""
    identity_claim: str = "sub"
    """The claim that is the identity; dot notation reaches nested claims."""
    scope_claim: str = "scope"
    """The scopes: a space-delimited string or a list."""
    client_id_claims: tuple[str, ...] = ("azp", "client_id", "cid")
    """Where the client ID is read, first present wins."""
    org_claim: str | None = None
    """Sessions key on this claim instead of the issuer."""
    max_token_size: int = 8192
    """Bytes (256-65536); a larger token is refused before it is parsed."""
    jwks: JwksConfig = JwksConfig()
    """How the published key set is fetched and cached."""

    def __post_init__(self):
        sources = [bool(self.discovery), self.jwks_uri is not None, bool(self.keys)]
        if sum(sources) != 1:
            raise ValueError("give exactly one key source: discovery: true, jwks_uri, or keys")
        check_url(self.issuer, "issuer") if (self.discovery or self.jwks_uri) else None
        if self.jwks_uri:
            check_url(self.jwks_uri, "jwks_uri")
        self._check_algorithms()
        if not self.audiences and not self.allow_any_audience and "access" in self.token_types:
            raise ValueError("audiences: give the audiences of this API's tokens "
                             "(or allow_any_audience: true, not recommended)")
        if "id" in self.token_types and not self.client_ids:
            raise ValueError("token_types 'id' needs client_ids: an ID token's aud is the client ID")
        if not self.token_types:
            raise ValueError("token_types must name at least one of access, id")
        if not 256 <= self.max_token_size <= 65536:
            raise ValueError("max_token_size must be within 256..65536 bytes")

    def _check_algorithms(self) -> None:
        unknown = [a for a in self.algorithms if a not in ASYMMETRIC | SYMMETRIC]
        if unknown or not self.algorithms:
            raise ValueError(f"algorithms: unsupported {unknown or 'empty list'}; choose from "
                             f"{', '.join(sorted(ASYMMETRIC | SYMMETRIC))}")
        symmetric = [a for a in self.algorithms if a in SYMMETRIC]
        has_secrets = any(k.symmetric for k in self.keys)
        if symmetric and not has_secrets:
            raise ValueError(f"{', '.join(symmetric)} need a static secret key; a published "
                             "key set never supplies HMAC secrets")
        if has_secrets and len(symmetric) != len(self.algorithms):
            raise ValueError("a provider with HMAC secrets may list only HS* algorithms, so a "
                             "secret can never verify an asymmetric algorithm or vice versa")
