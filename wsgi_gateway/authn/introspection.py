"""``introspection``: opaque bearer tokens checked with the provider (RFC 7662).

A token the gateway cannot verify itself is sent to the provider's introspection
endpoint (see :mod:`.introspection_client`); an active answer becomes the Identity with
the same normalisation as a JWT's claims. Answers are cached **in the store**, shared by
every worker and host, under a digest of the token (never the token):

- an active answer for ``min(cache_ttl, exp - now)`` (``cache_ttl: 0``: until ``exp``);
- an inactive one for ``negative_ttl``;
- each worker also keeps its decisions for ``local_ttl`` (at most 1 s), never past the
  store entry's own end, so a revocation at the provider lands everywhere within
  ``cache_ttl`` (or by ``exp``, whichever is first);
- concurrent misses for one token in one worker make one call (single flight).

When the provider is down or slow, cached answers keep serving until they end; other
tokens get 503 with ``Retry-After``. When the store fails, every decision comes from
the provider (fail closed: nothing unchecked passes), kept ``local_ttl`` per worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from cachetools import LRUCache

from ..config.model import ApiConfig
from ..config.providers import check_url
from ..config.secrets import Secret, resolve_secret
from ..config.typed import Where, parsed
from ..config.units import parse_duration
from ..errors import InvalidToken, ServiceUnavailable, StoreError
from ..identity import Identity
from ..store.base import Store
from .digests import PLAIN, CredentialDigests
from .credentials import CredentialPlaces, token_from
from .introspection_client import IntrospectionClient, ProviderUnavailable, SingleFlight
from .jwt.claims import claim_at, scopes_of
from .registry import Method, register

log = logging.getLogger("wsgi_gateway.introspection")
NO_EXP_CACHE_SECONDS = 60.0  # an active answer without exp, under cache_ttl: 0
_REFRESH_TYPES = frozenset({"refresh_token", "refresh"})


def _duration(default: float) -> Any:
    return field(default=default, metadata={"parse": parsed(parse_duration)})


def _secret(node: object, where: Where) -> Secret:
    return resolve_secret(node, where.base_dir)


@dataclass(frozen=True)
class IntrospectionOptions:
    """Options of the ``introspection`` method in an API's ``auth`` list."""

    client_id: str
    """The gateway's own client at the provider."""
    client_secret: Secret = field(metadata={"parse": _secret})
    """Its secret, {env: NAME} or {file: PATH}."""
    issuer: str | None = None
    """The expected iss; with discovery, where to look."""
    discovery: bool = False
    """Find the endpoint at <issuer>/.well-known/openid-configuration."""
    endpoint: str | None = None
    """Or the introspection URL itself."""
    client_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    """client_secret_basic: HTTP Basic with the ID and secret form-urlencoded first (RFC
    6749 section 2.3.1); client_secret_post: both in the form body.
    """
    jwt: bool = False
    """Also introspect tokens with dots (JWTs); by default they are left to the jwt method."""
    audiences: tuple[str, ...] = ()
    """The answer's aud must contain one; empty = any."""
    client_ids: tuple[str, ...] = ()
    """Approved clients; empty = any."""
    identity_claim: str = "sub"
    """The member that is the identity; dot notation reaches nested members."""
    scope_claim: str = "scope"
    """A space-delimited string or a list."""
    org_claim: str | None = None
    """Sessions key on this instead of the issuer."""
    clock_skew: float = _duration(30.0)
    """Leeway for exp."""
    cache_ttl: float = _duration(30.0)
    """Active answers are kept in the store min(cache_ttl, exp - now); 0 = until exp. At
    most 1d.
    """
    negative_ttl: float = _duration(10.0)
    """Inactive answers are kept this long; 0 = not cached."""
    local_ttl: float = _duration(1.0)
    """Per worker, in front of the store (at most 1 s)."""
    cache_size: int = 10_000
    """Decisions kept per worker."""
    timeout: float = _duration(2.0)
    """One whole provider call."""
    retry_after: float = _duration(1.0)
    """After a provider failure, calls fail fast this long."""
    max_token_size: int = 8192
    """Bytes; larger tokens are refused unsent."""
    source: Literal["bearer", "header", "cookie", "query"] = "bearer"
    """Where the token is read: bearer, header, cookie or query."""
    name: str | None = None
    """The header, cookie or query parameter name."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""

    def __post_init__(self):
        if bool(self.discovery) == (self.endpoint is not None):
            raise ValueError("give exactly one of endpoint: URL or discovery: true")
        if self.discovery and not self.issuer:
            raise ValueError("discovery: true needs issuer: the provider's issuer URL")
        if self.endpoint:
            check_url(self.endpoint, "endpoint")
        else:
            check_url(self.issuer, "issuer")  # discovery fetches from it
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if self.source != "bearer" and not self.name:
            raise ValueError(f"source {self.source} needs name: the {self.source} to read")
        if self.source == "bearer" and self.name:
            raise ValueError("source bearer reads Authorization; name is for header/cookie/query")
        self._check_bounds()

    def _check_bounds(self) -> None:
        checks = [(0 < self.timeout <= 30, "timeout must be within (0, 30s]"),
                  (self.cache_ttl <= 86400, "cache_ttl must be at most 1d"),
                  (self.negative_ttl <= 3600, "negative_ttl must be at most 1h"),
                  (self.local_ttl <= 1, "local_ttl must be at most 1s"),
                  (self.retry_after <= 60, "retry_after must be at most 60s"),
                  (0 <= self.cache_size <= 1_000_000, "cache_size must be within 0..1000000"),
                  (16 <= self.max_token_size <= 65536, "max_token_size must be within 16..65536")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class Refused(Exception):
    """The answer does not prove an identity for this API (401 with this text)."""


class _Decision(NamedTuple):
    until: float                 # wall-clock end of the store entry it came from
    identity: Identity | None
    refusal: str | None


def to_identity(answer: Mapping[str, Any], options: IntrospectionOptions, now: float,
                issuer: str) -> Identity:
    """The Identity an active answer proves; raises Refused otherwise.

    ``issuer`` is used when the answer names none (the configured issuer, else the
    endpoint), so sessions of different providers never mix.
    """
    if answer.get("active") is not True:
        raise Refused("the token is not active")
    if answer.get("token_type") in _REFRESH_TYPES or answer.get("typ") == "Refresh":
        raise Refused("the token is not an access token")
    iss = answer.get("iss", options.issuer)
    if iss is not None and (not isinstance(iss, str) or (options.issuer and iss != options.issuer)):
        raise Refused("the token's issuer is not trusted")
    exp = answer.get("exp")
    if exp is not None and (isinstance(exp, bool) or not isinstance(exp, (int, float))):
        raise Refused("the token's expiry is malformed")
    if exp is not None and exp + options.clock_skew <= now:
        raise Refused("the token has expired")
    audiences = _audiences(answer.get("aud"))
    if options.audiences and not set(audiences) & set(options.audiences):
        raise Refused("the token is not for this API")
    client_id = answer.get("client_id") if isinstance(answer.get("client_id"), str) else ""
    if options.client_ids and client_id not in options.client_ids:
        raise Refused("the token's client is not approved")
    subject = claim_at(answer, options.identity_claim)
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = str(subject)
    if not isinstance(subject, str) or not subject:
        raise Refused("the token has no usable identity claim")
    org = claim_at(answer, options.org_claim) if options.org_claim else None
    return Identity(
        method="introspection", subject=subject, issuer=iss or issuer, client_id=client_id,
        scopes=scopes_of(claim_at(answer, options.scope_claim)), audiences=audiences,
        expires_at=exp, claims=MappingProxyType(dict(answer)),
        org=org if isinstance(org, str) else "", provider=issuer,
        token_kind="access")


def _audiences(aud: Any) -> tuple[str, ...]:
    if isinstance(aud, str):
        return (aud,)
    return tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()


def cache_until(answer: Mapping[str, Any], options: IntrospectionOptions, now: float) -> float:
    """Until when an answer may be reused (<= now: not at all)."""
    if answer.get("active") is not True:
        return now + options.negative_ttl
    exp = answer.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return now + (options.cache_ttl or NO_EXP_CACHE_SECONDS)
    return min(float(exp), now + options.cache_ttl) if options.cache_ttl else float(exp)


class IntrospectionAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for introspected tokens.

    :param client: asks the provider.
    :param store: where answers are shared by every worker and host.
    :param options: the method's options.
    :param realm: the ``WWW-Authenticate`` realm.
    :param clock: wall-clock seconds.
    """

    id = "introspection"

    def __init__(self, client: IntrospectionClient, store: Store, options: IntrospectionOptions,
                 realm: str, clock: Callable[[], float] = time.time, *,
                 digests: CredentialDigests = PLAIN):
        self.client, self.store, self.options, self.clock = client, store, options, clock
        self.digests = digests  # cache keys keyed by secret_key: no planted answers
        self.challenge = f'Bearer realm="{realm}"'
        self.credentials = _places(options)
        self.issuer = options.issuer or options.endpoint or ""
        scope = hashlib.sha256(f"{self.issuer}\x00{options.client_id}".encode()).hexdigest()[:16]
        self.prefix = f"introspect:{scope}"
        self._local: LRUCache = LRUCache(maxsize=max(options.cache_size, 1))
        self._lock = threading.Lock()
        self._flights = SingleFlight(wait=options.timeout * 2 + 1)
        self._store_failing = False

    def authenticate(self, request) -> Identity | None:
        token = token_from(request, self.options.source, self.options.name or "")
        if token is None or (not self.options.jwt and "." in token):
            return None  # no token, or a JWT the jwt method takes
        if len(token) > self.options.max_token_size:
            raise InvalidToken("the token is too large")
        key = f"{self.prefix}:{self.digests.digest('introspection', token)}"
        decision = self._remembered(key)
        if decision is None:
            try:
                decision = self._flights.run(key, lambda: self._decide(token, key))
            except (ProviderUnavailable, TimeoutError) as exc:
                raise ServiceUnavailable("the token cannot be checked now; try again",
                                         retry_after=getattr(exc, "retry_after", 1)) from None
        if decision.identity is None:
            raise InvalidToken(decision.refusal)
        return decision.identity

    def _decide(self, token: str, key: str) -> _Decision:
        now = self.clock()
        answer, until = self._stored(key, now)
        if answer is None:
            answer = self.client.introspect(token)
            until = cache_until(answer, self.options, now)
            if until > now:
                self._store(key, answer, until, now)
        try:
            decision = _Decision(until, to_identity(answer, self.options, now, self.issuer), None)
        except Refused as exc:
            decision = _Decision(until, None, str(exc))
        self._remember(key, decision, now)
        return decision

    # -- the per-worker decisions ------------------------------------------------------
    def _remembered(self, key: str) -> _Decision | None:
        with self._lock:
            entry = self._local.get(key)
        if entry is None:
            return None
        local_until, decision = entry
        if self.clock() < local_until:
            return decision
        with self._lock:
            self._local.pop(key, None)
        return None

    def _remember(self, key: str, decision: _Decision, now: float) -> None:
        local_until = min(decision.until, now + self.options.local_ttl)
        if local_until > now and self.options.cache_size:
            with self._lock:
                self._local[key] = (local_until, decision)

    # -- the shared store ----------------------------------------------------------------
    def _stored(self, key: str, now: float) -> tuple[dict | None, float]:
        try:
            raw = self.store.get(key)
        except StoreError:
            self._store_failed()
            return None, 0.0
        self._store_back()
        entry = _decode(raw)
        if entry is None or entry[1] <= now:  # absent, foreign, or past its own end
            return None, 0.0
        return entry

    def _store(self, key: str, answer: dict, until: float, now: float) -> None:
        value = json.dumps({"until": until, "answer": answer}, separators=(",", ":")).encode()
        try:
            self.store.set(key, value, until - now)
        except StoreError:
            self._store_failed()

    def _store_failed(self) -> None:
        if not self._store_failing:
            self._store_failing = True
            log.warning("introspection: the store is unavailable; every token is checked "
                        "with the provider (kept %gs per worker)", self.options.local_ttl)

    def _store_back(self) -> None:
        if self._store_failing:
            self._store_failing = False
            log.info("introspection: the store is back")

    def warm(self, timeout: float | None = None) -> None:
        """Discover the endpoint before the first request (bounded by the call timeout)."""
        self.client.warm(timeout)

    def ready(self) -> str | None:
        return self.client.ready()


def _decode(raw: bytes | None) -> tuple[dict, float] | None:
    try:
        entry = json.loads(raw) if raw is not None else None
        answer, until = entry["answer"], float(entry["until"])
    except (ValueError, TypeError, KeyError):
        return None
    return (answer, until) if isinstance(answer, dict) else None


def _places(options: IntrospectionOptions) -> CredentialPlaces:
    if options.source == "bearer":
        return CredentialPlaces(headers=("Authorization",))
    return CredentialPlaces(**{{"header": "headers", "cookie": "cookies", "query": "query"}[
        options.source]: (options.name,)})


def _client(options: IntrospectionOptions, build) -> IntrospectionClient:
    """One client per provider and credentials, shared by every API of the gateway."""
    key = ("introspection", options.issuer, options.endpoint, options.client_id,
           options.client_auth, options.client_secret.source, options.timeout, options.retry_after)
    return build.shared(key, lambda: IntrospectionClient(
        client_id=options.client_id, client_secret=options.client_secret,
        client_auth=options.client_auth, endpoint=options.endpoint,
        issuer=options.issuer if options.discovery else None, timeout=options.timeout,
        retry_after=options.retry_after, clock=build.clock))


def _build(options: IntrospectionOptions, build, api: ApiConfig) -> IntrospectionAuthenticator:
    return IntrospectionAuthenticator(_client(options, build), build.store, options,
                                      options.realm or api.name, build.clock,
                                      digests=CredentialDigests.from_config(build.config))


register(Method("introspection", IntrospectionOptions, _build))
