"""``jwt``: JWT access tokens (and OpenID Connect ID tokens) from trusted providers.

A token is routed to its provider by its ``iss`` (never by trying every key),
verified once, and the resulting identity is kept in a per-worker bounded LRU keyed by
a digest of the token until the token expires: a repeated token costs a hash and a
lookup, not a signature check.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cachetools import LRUCache

from ...config.model import ApiConfig
from ...errors import InvalidToken, ServiceUnavailable
from ...identity import Identity
from ..credentials import CredentialPlaces, token_from
from ..registry import Method, register
from .claims import to_identity
from .jwks import KeysUnavailable, RemoteKeys, StaticKeys
from .keys import load_static_keys
from .verify import TokenRejected, Verifier, parse

NO_EXP_CACHE_SECONDS = 60.0  # a token without exp (when allowed) is re-verified this often


@dataclass(frozen=True)
class JwtOptions:
    """Options of the ``jwt`` method in an API's ``auth`` list."""

    providers: tuple[str, ...] = ()
    """Provider names this API accepts; empty = every provider."""
    source: Literal["bearer", "header", "cookie", "query"] = "bearer"
    """Where the token is read: bearer, header, cookie or query."""
    name: str | None = None
    """The header, cookie or query parameter name."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""
    cache_size: int = 10_000
    """Verified tokens kept per worker."""

    def __post_init__(self):
        if self.source != "bearer" and not self.name:
            raise ValueError(f"source {self.source} needs name: the {self.source} to read")
        if self.source == "bearer" and self.name:
            raise ValueError("source bearer reads Authorization; name is for header/cookie/query")
        if not 0 <= self.cache_size <= 1_000_000:
            raise ValueError("cache_size must be within 0..1000000")


class JwtAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for JWTs.

    :param verifiers: one Verifier per trusted issuer, keyed by that issuer.
    :param options: the method's options.
    :param realm: the ``WWW-Authenticate`` realm.
    :param clock: wall-clock seconds.
    """

    id = "jwt"

    def __init__(self, verifiers: dict[str, Verifier], options: JwtOptions, realm: str,
                 clock: Callable[[], float] = time.time):
        self.verifiers = verifiers
        self.options = options
        self.clock = clock
        self.challenge = f'Bearer realm="{realm}"'
        self.max_size = max(v.provider.max_token_size for v in verifiers.values())
        self.credentials = _places(options)
        self._cache: LRUCache = LRUCache(maxsize=max(options.cache_size, 1))
        self._lock = threading.Lock()

    def authenticate(self, request) -> Identity | None:
        token = token_from(request, self.options.source, self.options.name or "")
        if token is None or "." not in token:
            return None  # no token, or an opaque one (no dots) another method may know
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        try:
            identity, verifier, kid = self._verify(token)
        except TokenRejected as exc:
            raise InvalidToken(str(exc)) from None
        except KeysUnavailable:
            raise ServiceUnavailable("the token's signing keys are unavailable; try again",
                                     retry_after=5) from None
        self._remember(digest, identity, verifier, kid)
        return identity

    def _verify(self, token: str) -> tuple[Identity, Verifier, str | None]:
        parsed = parse(token, self.max_size)
        iss = parsed.claims.get("iss")
        verifier = self.verifiers.get(iss) if isinstance(iss, str) else None
        if verifier is None:
            raise TokenRejected("the token's issuer is not trusted")
        if len(token) > verifier.provider.max_token_size:
            raise TokenRejected("the token is too large")
        verified = verifier.verify(token, parsed)
        return to_identity(verified, verifier.provider), verifier, verified.kid

    def _cached(self, digest: bytes) -> Identity | None:
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None:
            return None
        identity, verifier, kid, until = entry
        index = verifier.keys.keys()
        if self.clock() < until and index is not None and index.publishes(kid):
            return identity
        with self._lock:
            self._cache.pop(digest, None)
        return None

    def _remember(self, digest: bytes, identity: Identity, verifier: Verifier, kid) -> None:
        if self.options.cache_size == 0:
            return
        exp = identity.expires_at
        until = (exp + verifier.provider.clock_skew if isinstance(exp, (int, float))
                 else self.clock() + NO_EXP_CACHE_SECONDS)
        with self._lock:
            self._cache[digest] = (identity, verifier, kid, until)

    def warm(self, timeout: float | None = None) -> None:
        """Load every provider's keys (a starting worker waits up to ``jwks.warmup``)."""
        for verifier in self.verifiers.values():
            verifier.keys.warm(timeout)

    def ready(self) -> str | None:
        reasons = [r for r in (v.keys.ready() for v in self.verifiers.values()) if r]
        return "; ".join(reasons) or None


def _places(options: JwtOptions) -> CredentialPlaces:
    if options.source == "bearer":
        return CredentialPlaces(headers=("Authorization",))
    return CredentialPlaces(**{{"header": "headers", "cookie": "cookies", "query": "query"}[
        options.source]: (options.name,)})


def key_source(provider, build):
    """The key source of ``provider``, one per gateway, shared by every API using it."""
    def make():
        if provider.keys:
            try:
                return StaticKeys(load_static_keys(provider.keys, build.config.source.parent))
            except ValueError as exc:
                from ...errors import ConfigError

                raise ConfigError(f"{build.config.source}: providers[{provider.name}]: {exc}") from None
        return RemoteKeys(provider)

    return build.shared(("keys", provider.name), make)


def _build(options: JwtOptions, build, api: ApiConfig) -> JwtAuthenticator:
    from ...errors import ConfigError

    names = options.providers or tuple(p.name for p in build.config.providers)
    if not names:
        raise ConfigError(f"{build.config.source}: apis[{api.name}]: the jwt method needs "
                          "at least one entry under providers:")
    providers = [build.config.provider(name) for name in names]
    verifiers = {p.issuer: Verifier(p, key_source(p, build), build.clock) for p in providers}
    return JwtAuthenticator(verifiers, options, options.realm or api.name, build.clock)


register(Method("jwt", JwtOptions, _build))
