"""``basic``: HTTP Basic authentication (RFC 7617) against a users file of salted hashes.

A password check is slow by design (scrypt, tens of milliseconds), so each worker keeps
recently verified credentials in a bounded TTL cache keyed by HMAC-SHA256 under a key
made at random in this process: the cache holds nothing that helps an attacker offline.
The users file is re-read when its inode, size or mtime change (looked at once per second
at most), which also empties the cache. Failed attempts are counted in the store per user
and per client address; past the limit the user or address is locked out (429) without
any hash being checked, on every worker sharing the store.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cachetools import TTLCache
from werkzeug.security import check_password_hash

from ..config.model import ApiConfig
from ..config.typed import Where, parsed
from ..config.units import parse_duration
from ..errors import (ConfigError, InvalidRequest, StoreError, TooManyRequests,
                      Unauthorized)
from ..identity import Identity
from ..store.keys import digest_key
from .credentials import CredentialPlaces, authorization
from .registry import Method, register
from .users_file import UsersTable, has_control, load_users

log = logging.getLogger("wsgi_gateway.authn")
MAX_HEADER = 4096            # bytes of Authorization; real credentials are far shorter
UNLOCKED_MEMO = 1.0          # a cache hit trusts "not locked" this long (other workers' locks)
_REALM = re.compile(r'[^"\\\x00-\x1f\x7f]{1,128}\Z')


def _duration(**kw):
    return field(metadata={"parse": parsed(parse_duration)}, **kw)


def _users_file(node: object, where: Where) -> Path:
    """The users file, relative to the config; loaded once so faults stop start-up."""
    path = where.config_path(node, "the path of a users file")
    try:
        load_users(path)
    except ConfigError as err:
        raise ValueError("; ".join(err.problems)) from None
    return path


@dataclass(frozen=True)
class LockoutOptions:
    """Failed attempts counted in the store; past ``attempts`` within ``window``, the
    user and/or address is refused for ``duration``."""

    attempts: int = 5
    """Failures allowed within window."""
    window: float = _duration(default=300.0)
    """The period failures are counted over."""
    duration: float = _duration(default=900.0)
    """How long a locked user or address is refused."""
    per: tuple[Literal["user", "address"], ...] = ("user", "address")
    """Count per user name, per client address (REMOTE_ADDR), or both."""
    # closed: 503 while the store cannot count (a lockout that silently stops counting
    # invites guessing); open: check the password without any lockout
    on_store_failure: Literal["closed", "open"] = "closed"
    """closed: 503 while failures cannot be counted (a lockout that silently stops counting
    invites guessing); open: check passwords without lockout.
    """

    def __post_init__(self):
        if not 1 <= self.attempts <= 1000:
            raise ValueError("attempts must be within 1..1000 (lockout: null turns it off)")
        if self.window < 1 or self.duration < 1:
            raise ValueError("window and duration must be at least 1s")
        if not self.per:
            raise ValueError("per: name user, address or both")


@dataclass(frozen=True)
class BasicOptions:
    """Options of the ``basic`` method in an API's ``auth`` list."""

    users_file: Path = field(metadata={"parse": _users_file})
    """The users file (wsgi-gateway users add), relative to the config."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""
    cache_size: int = 10_000
    """Verified credentials kept per worker; 0 = none."""
    cache_ttl: float = _duration(default=300.0)
    """How long a verified credential is kept."""
    lockout: LockoutOptions | None = field(default_factory=LockoutOptions)
    """Failed attempts counted in the store; null turns it off."""

    def __post_init__(self):
        if self.realm is not None and not _REALM.match(self.realm):
            raise ValueError("realm: 1-128 characters, no quotes, backslashes or controls")
        if not 0 <= self.cache_size <= 1_000_000:
            raise ValueError("cache_size must be within 0..1000000")


def parse_basic(environ: Mapping) -> tuple[str, str] | None:
    """(user, password) from ``Authorization: Basic``, NFC-normalised; None for another
    scheme; InvalidRequest (400) when the credential breaks RFC 7617's syntax."""
    value = environ.get("HTTP_AUTHORIZATION")
    if value is None or value.strip(" \t").partition(" ")[0].lower() != "basic":
        return None
    if len(value) > MAX_HEADER:
        raise InvalidRequest("the Basic credential is too large")
    token = authorization(environ, "Basic")  # token68 characters only
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the Basic credential is not valid base64") from None
    name, colon, password = raw.partition(b":")
    if not colon:
        raise InvalidRequest("the Basic credential has no ':' after the user name")
    try:
        name_text, password_text = name.decode("utf-8"), password.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest('the Basic credential is not UTF-8 (charset="UTF-8")') from None
    if has_control(name_text) or has_control(password_text):
        raise InvalidRequest("the Basic credential contains control characters")
    return unicodedata.normalize("NFC", name_text), unicodedata.normalize("NFC", password_text)


class Lockout:
    """Failed-attempt counters and locks in the store, per user and/or address.

    Keys name users by digest (never raw) under the realm, so every gateway sharing the
    store and realm shares the counts. Unknown user names are counted like known ones:
    a lockout must not reveal which names exist. Subjects found unlocked are remembered
    for :data:`UNLOCKED_MEMO` for cache hits only: a password check always asks the store.
    """

    def __init__(self, store, options: LockoutOptions, realm: str,
                 clock: Callable[[], float] = time.time, memo_size: int = 10_000):
        self.store, self.options, self.realm, self.clock = store, options, realm, clock
        self._failing = False
        self._unlocked = TTLCache(maxsize=max(memo_size, 1), ttl=UNLOCKED_MEMO, timer=clock)
        self._lock = threading.Lock()

    def check(self, user: str, address: str, *, exact: bool = True) -> None:
        """Raise 429 when ``user`` or ``address`` is locked (503 if the store fails, closed).

        ``exact=False`` (a cached credential) may trust a recent "not locked".
        """
        subjects = self._subjects(user, address)
        with self._lock:
            if not exact and all(s in self._unlocked for s in subjects):
                return
        found = self._call(self.store.get_many, [self._key("lock", *s) for s in subjects])
        now = self.clock()
        until = max((_until(v, now) for v in (found or {}).values()), default=0.0)
        if until > now:
            raise TooManyRequests("too many failed sign-in attempts; try again later",
                                  retry_after=until - now)
        if found is not None:
            with self._lock:
                self._unlocked.update(dict.fromkeys(subjects, True))

    def failed(self, user: str, address: str) -> None:
        """Count one failure for each subject; lock those that reached the limit."""
        for scope, value in self._subjects(user, address):
            with self._lock:
                self._unlocked.pop((scope, value), None)
            count = self._call(self.store.incr, self._key("fail", scope, value),
                               ttl=self.options.window, quiet=True)
            if count is not None and count >= self.options.attempts:
                until = self.clock() + self.options.duration
                self._call(self.store.set, self._key("lock", scope, value),
                           f"{until:.3f}".encode(), ttl=self.options.duration, quiet=True)

    def succeeded(self, user: str) -> None:
        """A good password clears the user's count (never the address's)."""
        if "user" in self.options.per:
            self._call(self.store.delete, self._key("fail", "user", user), quiet=True)

    def _subjects(self, user: str, address: str) -> list[tuple[str, str]]:
        values = {"user": user, "address": address}
        return [(scope, values[scope]) for scope in self.options.per if values[scope]]

    def _key(self, kind: str, scope: str, value: str) -> str:
        prefix = f"basic:{self.realm}:{kind}:{scope}"
        return digest_key(prefix, value) if scope == "user" else f"{prefix}:{value}"

    def _call(self, fn, *args, quiet: bool = False, **kw):
        """``fn(*args)``; on a store failure None (open, or ``quiet``) or 503 (closed)."""
        try:
            result = fn(*args, **kw)
        except StoreError:
            if not self._failing:
                self._failing = True
                log.warning("basic: the store is unavailable; sign-ins are %s",
                            "refused with 503" if self.options.on_store_failure == "closed"
                            else "checked without lockout")
            if self.options.on_store_failure == "closed" and not quiet:
                raise StoreError("failed sign-in attempts cannot be checked now") from None
            return None
        if self._failing:
            self._failing = False
            log.info("basic: the store is back; counting failed sign-ins again")
        return result


def _until(value: bytes, now: float) -> float:
    try:
        return float(value)
    except ValueError:
        return now + 1.0  # not ours to read: treat as locked, briefly


class BasicAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for HTTP Basic.

    :param users: the users file.
    :param options: the method's options.
    :param realm: the ``WWW-Authenticate`` realm; the identity's issuer is ``basic:<realm>``.
    :param lockout: failed-attempt counting, or None.
    :param clock: wall-clock seconds (cache TTL).
    :param policies: the configured policy names; a user's other policies are ignored.
    """

    id = "basic"
    credentials = CredentialPlaces(headers=("Authorization",))

    def __init__(self, users: UsersTable, options: BasicOptions, realm: str,
                 lockout: Lockout | None = None, clock: Callable[[], float] = time.time,
                 policies: frozenset[str] = frozenset()):
        self.users, self.options, self.lockout = users, options, lockout
        self.policies = frozenset(policies)
        self.issuer = f"basic:{realm}"
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._key = secrets.token_bytes(32)   # per process: digests mean nothing elsewhere
        self._cache = TTLCache(maxsize=max(options.cache_size, 1), ttl=options.cache_ttl or 1,
                               timer=clock)
        self._lock = threading.Lock()
        self.hash_checks = 0                  # password hashes computed (for tests, metrics)

    def authenticate(self, request) -> Identity | None:
        parsed = parse_basic(request.environ)
        if parsed is None:
            return None
        name, password = parsed
        address = request.environ.get("REMOTE_ADDR") or ""
        table = self.users.refresh()
        digest = hmac.digest(self._key, f"{name}\0{password}".encode(), "sha256")
        identity = self._cached(digest, table.generation)
        if self.lockout is not None:  # a lock refuses even a cached, correct password
            self.lockout.check(name, address, exact=identity is None)  # exact before a hash
        if identity is None:
            identity = self._verify(table, name, password, address)
            self._remember(digest, table.generation, identity)
        return identity

    def _verify(self, table, name: str, password: str, address: str) -> Identity:
        """Check the password, or the dummy hash for an unknown user (the same work)."""
        user = table.users.get(name)
        self.hash_checks += 1
        if not check_password_hash(user.hash if user else table.dummy, password) or not user:
            if self.lockout is not None:
                self.lockout.failed(name, address)
            raise Unauthorized("the user name or password is not valid")
        if self.lockout is not None:
            self.lockout.succeeded(name)
        return Identity(method="basic", subject=name, issuer=self.issuer, claims=user.claims,
                        policies=tuple(p for p in user.policies if p in self.policies))

    def _cached(self, digest: bytes, generation: int) -> Identity | None:
        if not (self.options.cache_size and self.options.cache_ttl):
            return None
        with self._lock:
            entry = self._cache.get(digest)
            if entry is not None and entry[0] != generation:  # the file changed since
                self._cache.clear()
                return None
        return entry[1] if entry is not None else None

    def _remember(self, digest: bytes, generation: int, identity: Identity) -> None:
        if self.options.cache_size and self.options.cache_ttl:
            with self._lock:
                self._cache[digest] = (generation, identity)

    def ready(self) -> str | None:
        return None


def _build(options: BasicOptions, build, api: ApiConfig) -> BasicAuthenticator:
    realm = options.realm or api.name
    try:
        users = UsersTable(options.users_file, build.clock)
    except ConfigError as err:
        raise ConfigError([f"{build.config.source}: apis[{api.name}]: {p}"
                           for p in err.problems]) from None
    lockout = (Lockout(build.store, options.lockout, realm, build.clock, options.cache_size)
               if options.lockout is not None else None)
    return BasicAuthenticator(users, options, realm, lockout, build.clock,
                              frozenset(build.config.policies))


register(Method("basic", BasicOptions, _build))
