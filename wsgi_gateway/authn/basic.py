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
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
import unicodedata
from collections import Counter
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
from .users_file import User, has_control, load_users

log = logging.getLogger("wsgi_gateway.authn")
MAX_HEADER = 4096            # bytes of Authorization; real credentials are far shorter
FILE_CHECK_INTERVAL = 1.0    # seconds between two looks at the users file
_REALM = re.compile(r'[^"\\\x00-\x1f\x7f]{1,128}\Z')


def _duration(**kw):
    return field(metadata={"parse": parsed(parse_duration)}, **kw)


def _users_file(node: object, where: Where) -> Path:
    """The users file, relative to the config; loaded once so faults stop start-up."""
    if not isinstance(node, str) or not node:
        raise ValueError("expected the path of a users file")
    path = (where.base_dir / node).resolve()
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
    window: float = _duration(default=300.0)
    duration: float = _duration(default=900.0)
    per: tuple[Literal["user", "address"], ...] = ("user", "address")
    # closed: 503 while the store cannot count (a lockout that silently stops counting
    # invites guessing); open: check the password without any lockout
    on_store_failure: Literal["closed", "open"] = "closed"

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
    realm: str | None = None            # WWW-Authenticate realm; default: the API name
    cache_size: int = 10_000            # verified credentials kept per worker; 0 = none
    cache_ttl: float = _duration(default=300.0)
    lockout: LockoutOptions | None = field(default_factory=LockoutOptions)

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


@dataclass(frozen=True)
class Snapshot:
    """One version of the users file. ``dummy`` is checked for unknown users, with the
    file's most common hash parameters, so they cost what a wrong password costs."""

    generation: int
    users: Mapping[str, User]
    dummy: str


def _snapshot(users: Mapping[str, User], generation: int) -> Snapshot:
    common = Counter(u.method for u in users.values()).most_common(1)
    method = common[0][0] if common else "scrypt:32768:8:1"
    return Snapshot(generation, users, f"{method}${secrets.token_hex(8)}${'0' * 128}")


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class UsersTable:
    """The users file as last read, re-read when it changes (looked at once per
    ``interval`` at most). A broken new version is logged and the last good one kept."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 interval: float = FILE_CHECK_INTERVAL):
        self.path, self.clock, self.interval = Path(path), clock, interval
        self._lock = threading.Lock()
        self._signature = _signature(self.path)
        self.current = _snapshot(load_users(self.path), 0)
        self._checked = clock()
        self._bad: tuple | None = None

    def refresh(self) -> Snapshot:
        """The current snapshot, after looking at the file if ``interval`` has passed."""
        now = self.clock()
        if now - self._checked >= self.interval:
            with self._lock:
                if now - self._checked >= self.interval:
                    self._checked = now
                    signature = _signature(self.path)
                    if signature not in (self._signature, self._bad):
                        self._reload(signature)
        return self.current

    def _reload(self, signature: tuple | None) -> None:
        try:
            users = load_users(self.path)
        except ConfigError as err:
            self._bad = signature
            log.error("basic: the users file is broken; the previous version stays: %s",
                      "; ".join(err.problems))
            return
        self._signature, self._bad = signature, None
        self.current = _snapshot(users, self.current.generation + 1)
        log.info("basic: users file %s reloaded (%d users)", self.path, len(users))


class Lockout:
    """Failed-attempt counters and locks in the store, per user and/or address.

    Keys name users by digest (never raw) under the realm, so every gateway sharing the
    store and realm shares the counts. Unknown user names are counted like known ones:
    a lockout must not reveal which names exist.
    """

    def __init__(self, store, options: LockoutOptions, realm: str,
                 clock: Callable[[], float] = time.time):
        self.store, self.options, self.realm, self.clock = store, options, realm, clock
        self._failing = False

    def check(self, user: str, address: str) -> None:
        """Raise 429 when ``user`` or ``address`` is locked (503 if the store fails, closed)."""
        keys = [self._key("lock", scope, value) for scope, value in self._subjects(user, address)]
        found = self._call(self.store.get_many, keys) or {}
        now = self.clock()
        until = max((_until(v, now) for v in found.values()), default=0.0)
        if until > now:
            raise TooManyRequests("too many failed sign-in attempts; try again later",
                                  retry_after=until - now)

    def failed(self, user: str, address: str) -> None:
        """Count one failure for each subject; lock those that reached the limit."""
        for scope, value in self._subjects(user, address):
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
    """

    id = "basic"
    credentials = CredentialPlaces(headers=("Authorization",))

    def __init__(self, users: UsersTable, options: BasicOptions, realm: str,
                 lockout: Lockout | None = None, clock: Callable[[], float] = time.time):
        self.users, self.options, self.lockout = users, options, lockout
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
        if self.lockout is not None:
            self.lockout.check(name, address)   # before any hash: locked means no check
        digest = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        identity = self._cached(digest, table.generation)
        if identity is not None:
            return identity
        user = table.users.get(name)
        self.hash_checks += 1
        # an unknown user checks the dummy hash: the same work as a wrong password
        if not check_password_hash(user.hash if user else table.dummy, password) or not user:
            if self.lockout is not None:
                self.lockout.failed(name, address)
            raise Unauthorized("the user name or password is not valid")
        if self.lockout is not None:
            self.lockout.succeeded(name)
        identity = Identity(method="basic", subject=name, issuer=self.issuer, claims=user.claims)
        self._remember(digest, table.generation, identity)
        return identity

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
    lockout = (Lockout(build.store, options.lockout, realm, build.clock)
               if options.lockout is not None else None)
    return BasicAuthenticator(users, options, realm, lockout, build.clock)


register(Method("basic", BasicOptions, _build))
