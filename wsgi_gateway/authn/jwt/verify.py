"""Verifying one JWT for one provider, hardened after RFC 8725.

The order matters: size first, then strict parsing (base64url and JSON, duplicate
members refused), then the header (an allowed algorithm, never ``none``, no ``crit``
or ``b64`` we do not understand, ``jku``/``x5u``/``jwk``/``x5c`` never used), then the
key by ``kid`` from the provider's own set, then the signature (joserfc), then the
claims. Every refusal is a :class:`TokenRejected` with a short, fixed description
that names no claim value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError, SecurityWarning,
)
from joserfc.jwt import JWTClaimsRegistry
from joserfc.jws import JWSRegistry

from ...config.providers import ProviderConfig
from .jwks import KeysUnavailable

# joserfc warns on every use of the "EdDSA" name (RFC 9864 prefers "Ed25519"); IdPs
# still sign with that name, and an operator who allowed it has decided.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*\Z")
_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}
MAX_KID = 256


class TokenRejected(Exception):
    """The token is not acceptable; ``str()`` is the client-safe description."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A compact JWS split and decoded, not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified token: its claims, the kid that signed it and what kind it is."""

    claims: dict[str, Any]
    kid: str | None
    kind: str  # "access" or "id"
    client_id: str


def parse(token: str, max_size: int) -> Parsed:
    """Split and decode without verifying; refuses anything malformed."""
    if len(token) > max_size:
        raise TokenRejected("the token is too large")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.match(p) for p in parts) or not parts[2]:
        raise TokenRejected("the token is malformed")
    return Parsed(_object(parts[0]), _object(parts[1]))


def _object(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates,
                           parse_constant=_no_constants)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise TokenRejected("the token is malformed") from None
    if not isinstance(value, dict):
        raise TokenRejected("the token is malformed")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class Verifier:
    """Verifies tokens for one provider, with its keys and its claim rules.

    :param provider: the provider's config.
    :param keys: its key source (static or remote).
    :param clock: wall-clock seconds, for exp / nbf / iat.
    """

    def __init__(self, provider: ProviderConfig, keys, clock: Callable[[], float]):
        self.provider = provider
        self.keys = keys
        self.clock = clock
        self.algorithms = frozenset(provider.algorithms)
        # joserfc uses the registry's allow-list (its own default is only the
        # "recommended" three); unknown header fields are ignored, not fatal.
        self.registry = JWSRegistry(algorithms=list(provider.algorithms), strict_check_header=False)
        self.claims_registry = JWTClaimsRegistry(
            now=lambda: int(self.clock()), leeway=int(provider.clock_skew),
            iss={"essential": True, "value": provider.issuer},
            exp={"essential": provider.require_exp})
        self.access_typ = frozenset(t.lower() for t in provider.access_token_typ)
        self.audiences = frozenset(provider.audiences)
        self.client_ids = frozenset(provider.client_ids)

    def verify(self, token: str, parsed: Parsed) -> Verified:
        """The verified token; raises TokenRejected or KeysUnavailable."""
        kid = self.verify_signature(token, parsed)
        claims = parsed.claims
        self._check_times(claims)
        kind, client_id = self._check_audience(parsed.header, claims)
        missing = [c for c in self.provider.required_claims if claims.get(c) is None]
        if missing:
            raise TokenRejected("the token lacks a required claim")
        return Verified(claims, kid, kind, client_id)

    def verify_signature(self, token: str, parsed: Parsed) -> str | None:
        """Header, key and signature only (the kid used); for tokens whose claims another
        profile checks (OIDC ID and logout tokens). Raises TokenRejected or KeysUnavailable."""
        alg, kid = self._check_header(parsed.header)
        key = self._key(alg, kid)
        try:
            jws.deserialize_compact(token, key, algorithms=[alg], registry=self.registry)
        except (JoseError, TypeError, ValueError):
            raise TokenRejected("the token's signature is invalid") from None
        return kid

    def check_times(self, claims: dict[str, Any]) -> None:
        """iss, exp, nbf and a future iat, with the provider's clock skew."""
        self._check_times(claims)

    def _check_header(self, header: dict[str, Any]) -> tuple[str, str | None]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRejected("the token's algorithm is not accepted")
        if "crit" in header or "b64" in header:
            raise TokenRejected("the token uses a critical header extension the gateway does not support")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID):
            raise TokenRejected("the token's key id is invalid")
        return alg, kid

    def _key(self, alg: str, kid: str | None):
        kty = _KTY[alg[:2]]
        index = self.keys.keys()
        if index is None:  # never loaded: try now (rate-limited), else 503
            index = self.keys.refresh_for(kid)
        key = index.find(kid, kty)
        if key is None and kid is not None:
            key = self.keys.refresh_for(kid).find(kid, kty)  # may raise KeysUnavailable
        if key is None or key.key_type != kty:
            raise TokenRejected("the token's signing key is unknown")
        return key

    def _check_times(self, claims: dict[str, Any]) -> None:
        try:
            self.claims_registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("the token has expired") from None
        except MissingClaimError:
            raise TokenRejected("the token lacks a required claim") from None
        except InvalidClaimError as exc:
            raise TokenRejected(_TIME_ERRORS.get(exc.claim, "the token has an invalid claim")) from None
        lifetime = self.provider.max_lifetime
        if lifetime is not None and claims.get("exp", 0) - claims.get("iat", 0) > lifetime:
            raise TokenRejected("the token's lifetime is longer than allowed")

    def _check_audience(self, header: dict[str, Any], claims: dict[str, Any]) -> tuple[str, str]:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not all(isinstance(a, str) for a in audiences):
            raise TokenRejected("the token has an invalid claim")
        typ = header.get("typ")
        typ = typ.lower().removeprefix("application/") if isinstance(typ, str) else ""
        client_id = _client_id(claims, self.provider.client_id_claims)
        if "access" in self.provider.token_types and typ in self.access_typ and (
                self.provider.allow_any_audience or self.audiences.intersection(audiences)):
            kind = "access"
        elif "id" in self.provider.token_types and typ in ("", "jwt") and (
                self.client_ids.intersection(audiences)):
            kind = "id"
            client_id = client_id or (audiences[0] if len(audiences) == 1 else "")
        else:
            raise TokenRejected("the token is not for this API")
        if self.client_ids and client_id not in self.client_ids:
            raise TokenRejected("the token's client is not approved")
        return kind, client_id


_TIME_ERRORS = {
    "nbf": "the token is not valid yet",
    "iat": "the token was issued in the future",
    "exp": "the token has an invalid claim",
    "iss": "the token's issuer is not trusted",
}


def _client_id(claims: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
