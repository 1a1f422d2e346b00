"""``apikey``: keys the gateway issued (``wsgi-gateway keys create``), read from a header
(``X-API-Key``), from ``Authorization: Bearer``, or (unsafe) from a query parameter.

A key carries its public id (see :mod:`.apikeys_store` for the format). The id finds
the key's record, in the store or in a static ``keys_file``; the record holds the
key's SHA-256 (compared in constant time), API, subject, policies, metadata, expiry
and revocation. Each worker keeps looked-up records at most ``cache_ttl`` (≤ 1 s), so
a revoked key is refused on every worker within a second; expiry is compared with the
clock on every request, so it lands exactly.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from cachetools import LRUCache

from ..config.model import ApiConfig
from ..config.source import load_yaml
from ..config.typed import Invalid, Where, build_dataclass, parsed
from ..config.units import parse_duration
from ..context import context_of
from ..errors import (
    ConfigError,
    InvalidRequest,
    InvalidToken,
    ServiceUnavailable,
    StoreError,
)
from ..identity import Identity
from ..mutate.headers import environ_key
from ..store.base import Store
from .apikeys_store import (
    APIKEY_DIGEST, KEY_ID, PREFIX, SHA256_HEX, ApiKeys, KeyRecord, key_digest, key_id_of,
)
from .credentials import CredentialPlaces, authorization
from .digests import PLAIN, CredentialDigests
from .registry import Method, register

log = logging.getLogger("wsgi_gateway.apikey")

MAX_KEY_LENGTH = 128              # a key is 64 characters; longer is malformed, not unknown
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+\Z")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an RFC 9110 header name
INVALID = "the API key is invalid"  # unknown id or wrong secret: the same answer for both
DEFAULT_NAMES = {"header": "X-API-Key", "query": "api_key", "bearer": "Authorization"}


def _keys_file(node: object, where: Where) -> str:
    """A keys_file path (YAML or JSON, relative to the config), which must exist."""
    if not where.config_path(node).is_file():
        raise ValueError(f"keys file {node!r} not found (relative to {where.base_dir})")
    return node


@dataclass(frozen=True)
class ApiKeyOptions:
    """Options of the ``apikey`` method in an API's ``auth`` list."""

    source: Literal["header", "bearer", "query"] = "header"
    """Where the key is read: header, bearer (Authorization: Bearer) or query (keys then end
    up in URL logs).
    """
    name: str | None = None
    """The header or query parameter; default X-API-Key / api_key."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""
    keys_file: str | None = field(default=None, metadata={"parse": _keys_file})
    """Static hashed keys, YAML or JSON, relative to the config."""
    cache_ttl: float = field(default=1.0, metadata={"parse": parsed(parse_duration)})
    """How long a worker trusts a looked-up record; at most 1 s."""
    cache_size: int = 10_000
    """Key records kept per worker."""

    def __post_init__(self):
        if self.source == "bearer" and self.name:
            raise ValueError("source bearer reads Authorization; name is for header/query")
        if self.name is not None and not (_TOKEN.match(self.name) if self.source == "header"
                                          else re.fullmatch(r"[A-Za-z0-9_.~-]{1,64}", self.name)):
            raise ValueError(f"name {self.name!r} is not a valid {self.source} name")
        if not 0 <= self.cache_ttl <= 1:
            raise ValueError("cache_ttl must be within 0..1s: a revoked key must be refused "
                             "on every worker within a second")
        if not 1 <= self.cache_size <= 1_000_000:
            raise ValueError("cache_size must be within 1..1000000")

    @property
    def param(self) -> str:
        """The header or query parameter the key is read from."""
        return self.name or DEFAULT_NAMES[self.source]


class ApiKeyAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for API keys.

    :param store: where key records live (memcached: shared by every worker).
    :param options: the method's options.
    :param api: the API's name; a key for another API is refused.
    :param static: keys_file records by id (never written to the store).
    :param policies: the configured policy names; a key's other policies are ignored.
    :param clock: wall-clock seconds (expiry, and the per-worker record cache).
    :param on_store_failure: ``store.on_failure.store_credentials``: ``closed`` (503 while
        the store fails), or ``open``: a key this worker has seen keeps its last known
        record (a revocation made during the outage is missed); other keys get 503.
    """

    id = "apikey"

    def __init__(self, store: Store, options: ApiKeyOptions, api: str, *,
                 static: Mapping[str, KeyRecord] | None = None, policies=frozenset(),
                 clock: Callable[[], float] = time.time, digests: CredentialDigests = PLAIN,
                 on_store_failure: Literal["open", "closed"] = "closed"):
        self.keys = ApiKeys(store, clock=clock, digests=digests)
        self.on_store_failure = on_store_failure
        self.options, self.api, self.clock = options, api, clock
        self.static = dict(static or {})
        self.policies = frozenset(policies)
        realm = options.realm or api
        self.challenge = (f'Bearer realm="{realm}"' if options.source == "bearer"
                          else f'ApiKey realm="{realm}", {options.source}="{options.param}"')
        self.credentials = (CredentialPlaces(query=(options.param,)) if options.source == "query"
                            else CredentialPlaces(headers=(options.param,)))
        self._environ_key = environ_key(options.param)
        self._records: LRUCache = LRUCache(options.cache_size)  # id -> (until, record, identity)
        self._identities: LRUCache = LRUCache(options.cache_size)
        self._lock = threading.Lock()
        self._failing = False

    def authenticate(self, request) -> Identity | None:
        key = self._credential(request)
        if key is None:
            return None
        key_id = key_id_of(key)
        record, identity = self._lookup(key_id) if key_id else (None, None)
        if record is None or not self._digest_matches(record, key):
            self._note(request, key_id, "unknown key or wrong secret")
            raise InvalidToken(INVALID)
        reason = record.refusal(self.clock(), self.api)
        if reason:
            self._note(request, key_id, reason)
            raise InvalidToken(reason)
        return identity

    def _digest_matches(self, record: KeyRecord, key: str) -> bool:
        if record.source == "file":  # written by an operator, not planted in the store
            return hmac.compare_digest(record.sha256, key_digest(key))
        return self.keys.digests.matches(APIKEY_DIGEST, record.sha256, key)

    def ready(self) -> str | None:
        return None  # the store's own readiness is reported by the gateway

    def _credential(self, request) -> str | None:
        """The presented key, None when there is none; InvalidRequest when malformed."""
        if self.options.source == "bearer":
            key = authorization(request.environ, "Bearer")
            if key is None or not key.startswith(PREFIX):
                return None  # another method's bearer token (a JWT, an opaque token)
        else:
            key = self._header_or_query(request)
            if key is None:
                return None
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest("the API key is too long")
        if not _KEY_CHARS.match(key):
            raise InvalidRequest("the API key has characters no API key has")
        return key

    def _header_or_query(self, request) -> str | None:
        if self.options.source == "header":  # from the environ: werkzeug's getlist scans it all
            value = request.environ.get(self._environ_key)
            values = [] if value is None else [value]
        else:
            values = request.args.getlist(self.options.param)
        if not values:
            return None
        if len(values) > 1 or "," in values[0]:  # a server joins repeated headers with commas
            raise InvalidRequest(f"more than one {self.options.param} given")
        return values[0].strip(" \t")

    def _lookup(self, key_id: str) -> tuple[KeyRecord | None, Identity | None]:
        """The key's record and identity: from this worker's cache (≤ cache_ttl old), else
        the store (and the keys_file)."""
        started = self.clock()
        with self._lock:
            cached = self._records.get(key_id)
        if cached is not None and _fresh(cached[0], started, self.options.cache_ttl):
            return cached[1], cached[2]
        try:
            stored, revoked = self.keys.lookup(key_id)
        except StoreError:
            self._store_state(failing=True)
            if cached is not None and cached[1] is not None and self.on_store_failure == "open":
                revoked = self.keys.durable_revocation(key_id)  # the file still holds
                if revoked is not None and cached[1].revoked is None:
                    return replace(cached[1], revoked=revoked), cached[2]
                return cached[1], cached[2]  # the last known record, however old
            raise ServiceUnavailable("API keys cannot be checked now", retry_after=1) from None
        self._store_state(failing=False)
        record = merge_static(self.static.get(key_id), stored, revoked)
        identity = None if record is None else self._identity(record)
        if self.options.cache_ttl > 0:  # read before the store answered: never older than the TTL
            with self._lock:
                self._records[key_id] = (started + self.options.cache_ttl, record, identity)
        return record, identity

    def _identity(self, record: KeyRecord) -> Identity:
        """One Identity per unchanged record, so the rule layer's per-identity cache hits
        after every re-read."""
        with self._lock:
            identity = self._identities.get(record)
        if identity is None:
            identity = to_identity(record, tuple(p for p in record.policies if p in self.policies))
            with self._lock:
                self._identities[record] = identity
        return identity

    def _note(self, request, key_id: str | None, reason: str) -> None:
        if key_id:  # 16 hex digits: safe to show, and it names the key without its secret
            context_of(request.environ).record("authn", self.id, "refused", f"key {key_id}: {reason}")

    def _store_state(self, failing: bool) -> None:
        if failing != self._failing:
            self._failing = failing
            if failing:
                log.warning("apikey: the store is unavailable; API keys are %s",
                            "served from the last record seen (unseen keys: 503)"
                            if self.on_store_failure == "open" else "refused with 503")
            else:
                log.info("apikey: the store is back")


def _fresh(until: float, now: float, ttl: float) -> bool:
    """A cached record is used until ``until``; a wall clock stepped back (NTP) must not
    stretch that past ``ttl``, or a revoked key would keep working."""
    return now < until <= now + ttl


def to_identity(record: KeyRecord, policies: tuple[str, ...]) -> Identity:
    """The identity a key proves. Its session follows ``subject``, which a rotation keeps."""
    claims = {"key_id": record.id, "api": record.api, "sub": record.subject,
              "policies": list(policies), "meta": dict(record.meta), "iat": record.created,
              "source": record.source}
    if record.expires is not None:
        claims["exp"] = record.expires
    return Identity(method="apikey", subject=record.subject, issuer="apikey", client_id=record.id,
                    audiences=(record.api,), expires_at=record.expires,
                    claims=MappingProxyType(claims), policies=tuple(policies))


def merge_static(static: KeyRecord | None, stored: KeyRecord | None,
                 revoked: float | None = None) -> KeyRecord | None:
    """A keys_file key, revoked when the store holds its revocation (``keys revoke``: a
    marker on every server, ``revoked``; or an older gateway's revoked copy)."""
    if static is None:
        return stored
    if revoked is None and stored is not None:
        revoked = stored.revoked
    return static if revoked is None else replace(static, revoked=revoked)


# -- the static keys file ------------------------------------------------------------

def _timestamp(node: object, where: Where) -> float:
    """Unix seconds, or an ISO 8601 time (UTC unless it names a zone)."""
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    moment = node
    if isinstance(node, str):
        try:
            moment = datetime.fromisoformat(node)
        except ValueError:
            moment = None
    elif isinstance(node, date) and not isinstance(node, datetime):
        moment = datetime(node.year, node.month, node.day)
    if not isinstance(moment, datetime):
        raise ValueError(f"expected a time such as 2030-01-01T00:00:00Z or Unix seconds, got {node!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _matching(pattern: re.Pattern, what: str):
    def parse(node: object, where: Where) -> str:
        if not isinstance(node, str) or not pattern.match(node):
            raise ValueError(f"expected {what}, got {node!r}")
        return node
    return parse


@dataclass(frozen=True)
class StaticKeyConfig:
    """One key of a ``keys_file``, as ``wsgi-gateway keys create --static`` prints it."""

    id: str = field(metadata={"parse": _matching(KEY_ID, "the key id (16 lower-case hex digits)")})
    sha256: str = field(metadata={"parse": _matching(SHA256_HEX,
                                                     "the key's SHA-256 (64 lower-case hex)")})
    api: str
    policies: tuple[str, ...] = ()
    subject: str | None = None        # default: the key id
    created: float = field(default=0.0, metadata={"parse": _timestamp})  # sessions read it as iat
    expires: float | None = field(default=None, metadata={"parse": _timestamp})
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class KeysFile:
    """A ``keys_file``: ``keys: [...]``."""

    keys: tuple[StaticKeyConfig, ...] = ()


def load_keys_file(path: Path, apis: set[str], policies: set[str]) -> dict[str, KeyRecord]:
    """The records of a keys file by id; ConfigError naming file, line and key of every fault."""
    node = load_yaml(path)
    problems: list[str] = []
    where = Where(path, "", 1, problems)
    try:
        parsed_file = build_dataclass(KeysFile, node, where)
    except Invalid:
        raise ConfigError(problems) from None
    items, records = node.get("keys", []), {}
    for i, key in enumerate(parsed_file.keys):
        at = where.key(node, "keys").key(items, i)
        if key.id in records:
            at.key(items[i], "id").problem(f"duplicate key id {key.id}")
        if key.api not in apis:
            at.key(items[i], "api").problem(f"unknown API {key.api!r}; defined: {', '.join(sorted(apis))}")
        unknown = [p for p in key.policies if p not in policies]
        if unknown:
            at.key(items[i], "policies").problem(
                f"unknown policies {unknown}; defined: {', '.join(sorted(policies)) or 'none'}")
        records.setdefault(key.id, KeyRecord(
            id=key.id, sha256=key.sha256, api=key.api, subject=key.subject or key.id,
            policies=key.policies, meta=tuple(sorted(key.meta.items())), created=key.created,
            expires=key.expires, source="file"))
    if problems:
        raise ConfigError(problems)
    return records


def static_keys(options: ApiKeyOptions, config) -> dict[str, KeyRecord]:
    """The keys_file records an API's options name (empty without a keys_file)."""
    if not options.keys_file:
        return {}
    path = (config.source.parent / options.keys_file).resolve()
    return load_keys_file(path, {a.name for a in config.apis}, set(config.policies))


def _build(options: ApiKeyOptions, build, api: ApiConfig) -> ApiKeyAuthenticator:
    static = build.shared(("apikey-file", options.keys_file),
                          lambda: static_keys(options, build.config))
    return ApiKeyAuthenticator(build.store, options, api.name, static=static,
                               policies=build.config.policies, clock=build.clock,
                               digests=CredentialDigests.from_config(build.config),
                               on_store_failure=build.config.store.on_failure.store_credentials)


register(Method("apikey", ApiKeyOptions, _build))
