"""Session records: one per internal session ID, with revocation.

A record (JSON in the store under ``sess:<id>``) keeps the policies last applied, when
the session was first and last used, and metadata rules can read as ``session``. It is
written lazily: a new session's record is added after the rules of its first request
(with the policies they assigned; in the limits' round trip when there is one), then rewritten at most once per ``touch_interval`` or
when its policies change (with ``limits.quota_renewal: first_use`` it is added when
first read instead, so that every worker counts the quota from the same ``created``).
It is read at most once per ``cache_ttl`` (≤ 1 s) per worker, together with the
revocation markers, in one ``get_many``: a revoked session is refused on every worker within a
second. Limits are never stored in it: they are computed from the current policies on
every request, so a changed policy applies at once to existing sessions.

Revocation markers are written to every store server (``set_everywhere``, and to the
durable revocations file when one is configured) and read from all of them
(``get_everywhere``, one ``get_many`` per server that also carries the session record):
a revocation holds as long as one copy does, so one node's restart or eviction does not
undo it.

While the store fails, ``store.on_failure`` decides: ``revocation_checks`` for
self-contained credentials (a verified JWT proves its identity without the store),
``store_credentials`` for identities that live in the store (gateway-issued API keys).

Revoking refuses every credential issued before the revocation (by ``iat``; a
credential without ``iat`` is refused until the marker expires). Credentials issued
later work again: revocation ends sessions, not identities (use the IdP for that).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache

from ..config.limits import SessionsConfig, StoreFailureConfig
from ..errors import InvalidToken, ServiceUnavailable, StoreError
from ..store.base import Store
from ..store.keys import digest_key

log = logging.getLogger("wsgi_gateway.sessions")
REVOCATION_TTL = 30 * 86400.0
STORE_METHODS = frozenset({"apikey", "oidc_login"})  # methods whose identity is a record in the store


class _Unsaved(dict):
    """A new session's record that no store holds yet: :meth:`Sessions.touch` adds it
    (its type says so without a second cache lookup per request)."""

    __slots__ = ()


def session_key(session_id: str) -> str:
    return f"sess:{session_id}"


def revoked_key(session_id: str) -> str:
    return f"revoked:{session_id}"


def identity_revoked_key(issuer: str, subject: str) -> str:
    return digest_key("revoked-id", f"{issuer}\x00{subject}")


class Sessions:
    """Reads, creates, touches and revokes session records.

    :param store: the gateway's store.
    :param config: cache TTL, touch interval, failure behaviour.
    :param clock: seconds: records' times, and how long this worker trusts its copy.
    :param on_failure: open or closed per kind of credential while the store fails.
    """

    def __init__(self, store: Store, config: SessionsConfig, *,
                 clock: Callable[[], float] = time.time,
                 on_failure: StoreFailureConfig = StoreFailureConfig(),
                 create_on_read: bool = False):
        self.store, self.config, self.clock = store, config, clock
        self.on_failure = on_failure
        # with quotas renewed from first use, every worker must agree on ``created`` before
        # counting: the record is added when first read; otherwise it is written lazily
        self.create_on_read = create_on_read
        self._cache: TTLCache = TTLCache(maxsize=10_000, ttl=config.cache_ttl, timer=clock)
        self._lock = threading.Lock()
        self._failing = False

    def resolve(self, ctx) -> dict[str, Any] | None:
        """The session record of the request's identity; raises when it is revoked."""
        identity, session_id = ctx.identity, ctx.session_id
        if session_id is None or identity is None:
            return None
        try:
            record, revoked_at = self._load(session_id, identity)
        except StoreError:
            # the revocations file still holds while the store fails, open or closed
            if _revokes(self._durable_mark(session_id, identity), identity):
                raise InvalidToken("the session was revoked") from None
            return self._store_failed(ctx, identity.method)
        self._recovered()
        if _revokes(revoked_at, identity):
            raise InvalidToken("the session was revoked")
        return record

    def _durable_mark(self, session_id: str, identity) -> float | None:
        found = self.store.get_durable([revoked_key(session_id),
                                        identity_revoked_key(identity.issuer, identity.subject)])
        marks = [float(v) for values in found.values() for v in values if _is_number(v)]
        return max(marks, default=None)

    def _load(self, session_id: str, identity) -> tuple[dict[str, Any], float | None]:
        with self._lock:
            cached = self._cache.get(session_id)
        if cached is not None:
            return cached
        keys = [session_key(session_id), revoked_key(session_id),
                identity_revoked_key(identity.issuer, identity.subject)]
        found = self.store.get_everywhere(keys)
        record = _newest(found.get(keys[0], ()))
        if record is None:
            record = self._new(session_id, identity)
            if self.create_on_read:
                record = self._create(session_id, record)
            else:  # written by touch(), with the policies the rules assign
                record = _Unsaved(record)
        marks = [float(v) for k in keys[1:] for v in found.get(k, ()) if _is_number(v)]
        result = (record, max(marks) if marks else None)
        with self._lock:
            self._cache[session_id] = result
        return result

    def _new(self, session_id: str, identity) -> dict[str, Any]:
        now = self.clock()
        return {"id": session_id, "alias": identity.alias, "issuer": identity.issuer,
                "subject": identity.subject, "client_id": identity.client_id,
                "created": now, "last_seen": now, "policies": [], "meta": {}}

    def _create(self, session_id: str, record: dict[str, Any]) -> dict[str, Any]:
        if not self.store.add(session_key(session_id), _encode(record), self.config.ttl):
            existing = _decode(self.store.get(session_key(session_id)))  # another worker won
            record = existing or record
        return record

    def pending_add(self, ctx) -> tuple[str, bytes, float, dict[str, Any]] | None:
        """A new session's first write, for a caller making a store round trip after the
        rules anyway (the limits' counters): key, value, TTL and the record. Once that
        round trip succeeded, :meth:`added` marks it saved and :meth:`touch` writes
        nothing; should it fail, ``touch`` adds the record as before."""
        record = ctx.session_record
        if type(record) is not _Unsaved or ctx.session_id is None:
            return None
        record = {**record, "last_seen": self.clock(), "policies": list(ctx.policies)}
        return session_key(ctx.session_id), _encode(record), self.config.ttl, record

    def added(self, ctx, record: dict[str, Any]) -> None:
        """The record :meth:`pending_add` gave is in the store (or another worker's was)."""
        ctx.session_record = record
        self._remember(ctx.session_id, record)

    def touch(self, ctx, record: dict[str, Any]) -> None:
        """After the request: record last use and the policies applied (at most every
        ``touch_interval``, or when the policies changed)."""
        session_id = ctx.session_id
        now = self.clock()
        policies = list(ctx.policies)
        unsaved = type(record) is _Unsaved
        if not unsaved and now - record.get("last_seen", 0) < self.config.touch_interval and \
                record.get("policies") == policies:
            return
        record = {**record, "last_seen": now, "policies": policies}
        try:
            if unsaved:  # first sight of the session: add, so a record another worker
                self.store.add(session_key(session_id), _encode(record), self.config.ttl)
            else:        # wrote meanwhile is kept (its ``created`` is the earlier one)
                self.store.set(session_key(session_id), _encode(record), self.config.ttl)
        except StoreError:
            return  # last_seen is informational; the next touch retries
        self._remember(session_id, record)

    def _remember(self, session_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            entry = self._cache.get(session_id)
            if entry is not None:
                self._cache[session_id] = (record, entry[1])

    def revoke(self, session_id: str) -> int:
        """Refuse the session's credentials issued until now, on every worker within 1 s.
        Returns how many store servers hold the marker."""
        return self.store.set_everywhere(revoked_key(session_id), repr(self.clock()).encode(),
                                         REVOCATION_TTL)

    def revoke_identity(self, issuer: str, subject: str) -> int:
        """The same for every session of one identity (every client, every API)."""
        return self.store.set_everywhere(identity_revoked_key(issuer, subject),
                                         repr(self.clock()).encode(), REVOCATION_TTL)

    def show(self, session_id: str) -> dict[str, Any] | None:
        """The stored record, with its revocation time if any (for the CLI)."""
        found = self.store.get_everywhere([session_key(session_id), revoked_key(session_id)])
        record = _newest(found.get(session_key(session_id), ()))
        marks = [float(v) for v in found.get(revoked_key(session_id), ()) if _is_number(v)]
        if record is not None and marks:
            record["revoked_at"] = max(marks)
        return record

    def _store_failed(self, ctx, method: str) -> dict[str, Any] | None:
        concern = "store_credentials" if method in STORE_METHODS else "revocation_checks"
        mode = getattr(self.on_failure, concern)
        if not self._failing:
            self._failing = True
            log.warning("sessions: the store is unavailable; revocation checks are %s, "
                        "store credentials %s",
                        *(("skipped (served)" if m == "open" else "refused with 503") for m in
                          (self.on_failure.revocation_checks, self.on_failure.store_credentials)))
        ctx.record("sessions", "-", f"store unavailable ({concern.replace('_', ' ')})", mode)
        if mode == "closed":
            raise ServiceUnavailable("sessions cannot be checked now", retry_after=1)
        return None

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("sessions: the store is back")


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def _revokes(revoked_at: float | None, identity) -> bool:
    """A revocation at ``revoked_at`` refuses credentials issued until then (by ``iat``;
    one without ``iat`` until the marker expires)."""
    if revoked_at is None:
        return False
    issued = identity.claims.get("iat") if identity.claims else None
    return not isinstance(issued, (int, float)) or issued <= revoked_at


def _newest(copies) -> dict[str, Any] | None:
    """The most recently used of a record's copies (a node that was out and came back
    may hold an older one)."""
    records = [r for r in map(_decode, copies) if r is not None]
    return max(records, key=lambda r: r.get("last_seen", 0) if isinstance(
        r.get("last_seen", 0), (int, float)) else 0, default=None)


def _decode(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_number(raw: bytes | None) -> bool:
    try:
        return raw is not None and float(raw) >= 0
    except ValueError:
        return False
