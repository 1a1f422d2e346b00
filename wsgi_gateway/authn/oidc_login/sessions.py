"""Server-side browser sessions: the cookie holds a random handle, the store holds the rest.

The record is named by a keyed digest of the handle (``secret_key``; previous keys
still find old records) and is sealed whole (AES-GCM, bound to the record's name):
the provider's tokens are unreadable and the claims (the identity the rules see)
cannot be edited by whoever can write to the store. Idle and absolute timeouts are checked on the injected
clock at every load, not left to memcached's rounding expiry.

A worker keeps its own copy of a session for at most ``cache_ttl`` (≤ 1 s), so a
signed-in request costs one store read at most once a second per worker, and a
logout anywhere is seen everywhere within that second.

Back-channel logout names a provider session (``sid``) or a user (``sub``): small
index records list the session records of each, updated with compare-and-set.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from cachetools import LRUCache

from ...store import Store
from .sealing import Sealer, Unsealable

HANDLE_PURPOSE = "oidc-session"
MAX_INDEXED = 50  # sessions remembered per sid / sub for back-channel logout


@dataclass(frozen=True)
class Tokens:
    """What the provider gave, kept sealed at rest."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    access_expires: float | None  # absolute, seconds


@dataclass(frozen=True)
class Session:
    """One signed-in browser."""

    key: str                         # the store key (a digest; never the handle)
    claims: Mapping[str, Any]
    tokens: Tokens
    created: float
    last_seen: float
    cas: object = field(default=None, compare=False)  # the store's token as read, if any

    @property
    def subject(self) -> str:
        return str(self.claims.get("sub", ""))


class BrowserSessions:
    """Create, load, refresh and end browser sessions. Store faults raise StoreError.

    :param store: the shared store.
    :param sealer: names records and seals tokens.
    :param namespace: this login client's key prefix.
    :param idle, absolute: timeouts in seconds.
    :param touch_interval: ``last_seen`` is rewritten at most this often.
    :param cache_ttl: a worker's copy lives this long.
    :param clock: wall-clock seconds.
    """

    def __init__(self, store: Store, sealer: Sealer, namespace: str, *, idle: float,
                 absolute: float, touch_interval: float, cache_ttl: float,
                 clock: Callable[[], float]):
        self.store, self.sealer, self.ns = store, sealer, namespace
        self.idle, self.absolute, self.touch_interval = idle, absolute, touch_interval
        self.cache_ttl, self.clock = cache_ttl, clock
        self._cache: LRUCache = LRUCache(maxsize=10_000)
        self._lock = threading.Lock()

    # -- the handle ---------------------------------------------------------------
    def create(self, claims: Mapping[str, Any], tokens: Tokens) -> tuple[str, Session]:
        """A new session under a new handle (never a handle the browser brought)."""
        handle = secrets.token_urlsafe(32)  # 256 bits
        now = self.clock()
        key = self._key(self.sealer.digests.digest(HANDLE_PURPOSE, handle))
        session = Session(key, MappingProxyType(dict(claims)), tokens, now, now)
        self._write(session)
        for index in self._indexes(session):
            self._index_add(index, key)
        return handle, session

    def load(self, handle: str) -> Session | None:
        """The live session of ``handle``, else None (unknown, ended or timed out)."""
        if not handle or len(handle) > 64:
            return None
        names = [self._key(d) for d in self.sealer.digests.lookups(HANDLE_PURPOSE, handle)]
        now = self.clock()
        with self._lock:
            cached = self._cache.get(names[0])
        if cached is not None and 0 <= now - cached[1] < self.cache_ttl:  # not if stepped back
            session = cached[0]
        else:
            session = self._read(names)
            with self._lock:
                self._cache[names[0]] = (session, now)
        if session is None:
            return None
        if self.expired(session, now):
            self.end(session)
            return None
        if now - session.last_seen >= self.touch_interval and session.cas is not None:
            # compare-and-set: a copy read before a logout elsewhere never brings it back
            touched = replace(session, last_seen=now, cas=None)
            if self._write(touched, cas=session.cas):
                self._remember(touched)
        return session

    def _read(self, names: list[str]) -> Session | None:
        for name in names:  # then the names under each previous secret_key
            raw, token = self.store.gets(name)
            if raw is not None:  # with its token: its last use is written like any other's
                return self._decode(name, raw, token)
        return None

    def reload(self, session: Session) -> Session | None:
        """The session as the store has it now (after another worker's refresh)."""
        raw, token = self.store.gets(session.key)
        fresh = self._decode(session.key, raw, token) if raw is not None else None
        self._remember(fresh, key=session.key)
        return fresh

    def update_tokens(self, session: Session, tokens: Tokens,
                      claims: Mapping[str, Any] | None = None) -> Session | None:
        """Store refreshed tokens (and claims from a new ID token); None when the session
        was ended meanwhile (a logout during the refresh wins).

        Only a deletion may win: a compare-and-set lost to another worker's write of
        ``last_seen`` is retried on the record as it is now, because the provider has
        already rotated the refresh token and the old one must not stay in the store."""
        new_claims = MappingProxyType(dict(claims)) if claims is not None else None
        current: Session | None = session
        for _ in range(5):
            updated = replace(current, tokens=tokens, cas=None,
                              claims=new_claims if new_claims is not None else current.claims)
            if self._write(updated, cas=current.cas):
                self._remember(updated)
                return updated
            current = self.reload(session)
            if current is None:
                return None
        return None

    def end(self, session: Session) -> None:
        """Delete the record: the handle is dead on every worker within ``cache_ttl``."""
        self.store.delete(session.key)
        self._remember(None, key=session.key)

    def end_all(self, issuer: str, *, sid: str | None = None, sub: str | None = None) -> int:
        """End every session of a provider session or user (back-channel logout)."""
        ended = 0
        index = self._index("sid", issuer, sid) if sid else self._index("sub", issuer, sub or "")
        raw = self.store.get(index)
        for key in json.loads(raw) if raw else []:
            ended += bool(self.store.delete(key))
            self._remember(None, key=key)
        return ended

    def expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle or now - session.created > self.absolute

    def first_use(self, name: str, ttl: float) -> bool:
        """True the first time ``name`` is seen within ``ttl`` (single-use tokens)."""
        key = f"{self.ns}:once:{self.sealer.digests.digest('oidc-once', name)}"
        return self.store.add(key, b"1", max(ttl, 1) + 5)

    # -- refresh lease ------------------------------------------------------------
    def take_lease(self, session: Session, ttl: float) -> bool:
        """True when this caller may refresh the session now (one at a time everywhere)."""
        return self.store.add(session.key + ":lease", b"1", ttl)

    def release_lease(self, session: Session) -> None:
        self.store.delete(session.key + ":lease")

    # -- records ------------------------------------------------------------------
    def _key(self, digest: str) -> str:
        return f"{self.ns}:s:{digest}"

    def _write(self, session: Session, cas: object = None) -> bool:
        t = session.tokens
        record = {"claims": dict(session.claims), "created": session.created,
                  "last_seen": session.last_seen, "access_expires": t.access_expires,
                  "tokens": [t.access_token, t.refresh_token, t.id_token]}
        sealed = self.sealer.seal(json.dumps(record, separators=(",", ":")).encode(), session.key)
        remaining = min(self.idle, self.absolute - (self.clock() - session.created))
        value, ttl = sealed, max(remaining, 1) + 5
        if cas is not None:
            return self.store.cas(session.key, value, cas, ttl)
        self.store.set(session.key, value, ttl)
        return True

    def _decode(self, key: str, raw: bytes, cas: object = None) -> Session | None:
        try:
            record = json.loads(self.sealer.open(raw, key))
            access, refresh, id_token = record["tokens"]
            tokens = Tokens(access, refresh, id_token, record["access_expires"])
            return Session(key, MappingProxyType(record["claims"]), tokens,
                           float(record["created"]), float(record["last_seen"]), cas)
        except (Unsealable, ValueError, KeyError, TypeError):
            return None  # unreadable or moved: as if absent (the browser signs in again)

    def _remember(self, session: Session | None, *, key: str | None = None) -> None:
        with self._lock:
            self._cache[key or session.key] = (session, self.clock())

    # -- back-channel indexes ------------------------------------------------------
    def _indexes(self, session: Session) -> list[str]:
        iss, sid = str(session.claims.get("iss", "")), session.claims.get("sid")
        out = [self._index("sub", iss, session.subject)]
        if isinstance(sid, str) and sid:
            out.insert(0, self._index("sid", iss, sid))
        return out

    def _index(self, kind: str, issuer: str, value: str) -> str:
        return f"{self.ns}:{kind}:{self.sealer.digests.digest('oidc-' + kind, issuer + chr(0) + value)}"

    def _index_add(self, index: str, key: str) -> None:
        for _ in range(5):  # compare-and-set: concurrent logins of one user both land
            raw, token = self.store.gets(index)
            keys = [k for k in (json.loads(raw) if raw else []) if k != key]
            value = json.dumps([key, *keys][:MAX_INDEXED]).encode()
            if token is None:
                if self.store.add(index, value, self.absolute + 5):
                    return
            elif self.store.cas(index, value, token, self.absolute + 5):
                return
