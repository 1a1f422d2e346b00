"""API key records: the key format, and create / list / show / revoke / rotate on the Store.

A key, as a client holds it, is ``gwk_<id>_<secret>``: ``id`` is 16 hex digits (64
random bits) and public (logs, the CLI and the store name a key by it); ``secret`` is 32
random bytes in base64url (256 bits). The key has no ``.``, so the ``jwt`` method steps
aside from it, and its prefix lets secret scanners recognise a leaked one.

The store keeps the key's SHA-256, never the key, in a JSON record under
``apikey:<id>``. A fast hash is right here: slow hashes (bcrypt, scrypt, argon2) make
guessing a *low-entropy password* expensive, but nobody can try 2^256 secrets however
fast the hash is, while a slow hash would add tens of milliseconds to every lookup. A
stolen store dump yields no usable key.

memcached cannot list its keys, so each API has an index record ``apikey-index:<api>``
(a JSON list of key ids), updated with gets/cas so concurrent creates never lose one.
Its limits: one memcached item (1 MB by default, about 45,000 keys per API); it can be
evicted or lost with a restart independently of the records, and then ``list`` misses
keys that still work; ids of records gone from the store are pruned when listed.
Authentication never reads the index. memcached is a cache: records themselves vanish
when it restarts or evicts them (such a key is refused, never accepted): keys that must
survive that belong in a ``keys_file``.

A revocation is also a marker, ``apikey-revoked:<id>``, written to every store server
(and the durable revocations file when configured) and read from all of them with the
record: a ``keys_file`` key stays revoked when the node holding its revoked copy
restarts, and a record that a node lost and another still holds unrevoked (a cluster
node that was out) cannot undo it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace

from ..errors import StoreError
from ..store.base import Store
from .digests import PLAIN, CredentialDigests

PREFIX = "gwk_"
KEY_FORMAT = re.compile(r"gwk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}\Z")
KEY_ID = re.compile(r"[0-9a-f]{16}\Z")
SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
FOREVER = 5 * 365 * 86400.0   # store TTL of a key without expiry (memcached needs one)
RETAIN = 30 * 86400.0         # expired and revoked records stay this long, for show/list
CAS_ATTEMPTS = 16
INDEX_MAX_BYTES = 900_000     # below memcached's default 1 MB item size


class KeyStateError(ValueError):
    """The key cannot be changed that way (rotating a revoked key, ...)."""


@dataclass(frozen=True)
class KeyRecord:
    """What the gateway knows about one key (never the key itself).

    ``meta`` is a tuple of (name, value) pairs so records are hashable: an unchanged
    record re-read from the store yields the same cached identity.
    """

    id: str
    sha256: str                          # hex digest of the whole key: HMAC-SHA256 under
    #                                      secret_key in the store, plain SHA-256 in a keys_file
    api: str                             # the API the key is for
    subject: str                         # the identity's subject; kept across rotations
    policies: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    created: float = 0.0
    expires: float | None = None
    revoked: float | None = None
    rotated_to: str | None = None        # the key that replaced this one
    rotated_from: str | None = None
    source: str = "store"                # "store", or "file" for a keys_file key

    def refusal(self, now: float, api: str) -> str | None:
        """Why this key may not be used on ``api`` at ``now`` (None: it may)."""
        if self.revoked is not None:
            return "the API key was revoked"
        if self.expires is not None and now >= self.expires:
            return "the API key has expired"
        if self.api != api:
            return "the API key is not for this API"
        return None

    def state(self, now: float) -> str:
        """active, rotating (replaced, in its grace period), expired or revoked."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "rotating" if self.rotated_to else "active"

    def public(self, now: float) -> dict:
        """The record as shown by the CLI, with its state."""
        return {**asdict(self), "policies": list(self.policies), "meta": dict(self.meta),
                "state": self.state(now)}

    def encode(self) -> bytes:
        return json.dumps({**asdict(self), "meta": dict(self.meta)}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> "KeyRecord | None":
        """The record in ``raw``; None when absent or not a record (never raises)."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            record = cls(**{**{k: v for k, v in data.items() if k in _FIELDS},
                            "policies": tuple(data["policies"]),
                            "meta": tuple(sorted(data["meta"].items()))})
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return record if _well_typed(record) else None


_FIELDS = frozenset(KeyRecord.__dataclass_fields__)


def _well_typed(record: KeyRecord) -> bool:
    """A corrupted record must be refused, never crash a request."""
    texts = (record.id, record.sha256, record.api, record.subject, record.source,
             *record.policies, *(part for pair in record.meta for part in pair))
    return (all(isinstance(t, str) for t in texts) and bool(KEY_ID.match(record.id))
            and bool(SHA256_HEX.match(record.sha256))
            and _number(record.created) and all(t is None or _number(t)
                                                for t in (record.expires, record.revoked))
            and all(t is None or isinstance(t, str) for t in (record.rotated_to, record.rotated_from)))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def new_key() -> tuple[str, str]:
    """A fresh key and its id: ``gwk_<16 hex>_<43 base64url>``."""
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{PREFIX}{key_id}_{secret}", key_id


def key_id_of(key: str) -> str | None:
    """The id inside a well-formed key; None when ``key`` is not in the key format."""
    match = KEY_FORMAT.match(key)
    return match[1] if match else None


APIKEY_DIGEST = "apikey"  # the purpose of a stored key's digest (authn/digests.py)


def key_digest(key: str) -> str:
    """The hex SHA-256 a keys_file entry keeps for ``key`` (the store keys its digests)."""
    return hashlib.sha256(key.encode()).hexdigest()


def record_key(key_id: str) -> str:
    return f"apikey:{key_id}"


def revoked_marker(key_id: str) -> str:
    return f"apikey-revoked:{key_id}"


def index_key(api: str) -> str:
    return f"apikey-index:{api}"


class ApiKeys:
    """Key records on a :class:`~wsgi_gateway.store.base.Store`.

    :param store: the gateway's store (memcached, so every worker sees the same keys).
    :param clock: wall-clock seconds.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 digests: CredentialDigests = PLAIN):
        self.store, self.clock, self.digests = store, clock, digests

    def get(self, key_id: str) -> KeyRecord | None:
        """The stored record of ``key_id`` (revoked when any server holds its revocation
        marker), or None."""
        return self.lookup(key_id)[0]

    def lookup(self, key_id: str) -> tuple[KeyRecord | None, float | None]:
        """The stored record of ``key_id`` (revoked when any copy of its marker says so)
        and the marker's revocation time, in one ``get_many`` per store server."""
        found = self.store.get_everywhere([record_key(key_id), revoked_marker(key_id)])
        record = next((r for r in map(KeyRecord.decode, found.get(record_key(key_id), ())) if r),
                      None)
        revoked = revocation_time(found.get(revoked_marker(key_id), ()))
        if record is not None and revoked is not None and record.revoked is None:
            record = replace(record, revoked=revoked)
        return record, revoked

    def create(self, api: str, *, policies: Iterable[str] = (), meta: Mapping[str, str] | None = None,
               expires_in: float | None = None, subject: str | None = None,
               rotated_from: str | None = None) -> tuple[str, KeyRecord]:
        """A new key for ``api``: the key (show it once) and its stored record."""
        key, key_id = new_key()
        now = self.clock()
        record = KeyRecord(
            id=key_id, sha256=self.digests.digest(APIKEY_DIGEST, key), api=api,
            subject=subject or key_id,
            policies=tuple(dict.fromkeys(policies)), meta=tuple(sorted((meta or {}).items())),
            created=now, expires=None if expires_in is None else now + expires_in,
            rotated_from=rotated_from)
        self._index(api, lambda ids: ids if key_id in ids else [*ids, key_id])
        if not self.store.add(record_key(key_id), record.encode(), self._ttl(record)):
            raise StoreError("a new key id collided with an existing one; create it again")
        return key, record

    show = get  # the CLI's name for it

    def list(self, api: str) -> list[KeyRecord]:
        """The API's keys still in the store, oldest first; prunes vanished ids."""
        ids = _ids(self.store.get(index_key(api)))
        found = self.store.get_many(record_key(i) for i in ids)
        records = [r for r in (KeyRecord.decode(found.get(record_key(i))) for i in ids) if r]
        gone = set(ids) - {r.id for r in records}
        if gone:
            self._index(api, lambda current: [i for i in current if i not in gone])
        return sorted(records, key=lambda r: r.created)

    def durable_revocation(self, key_id: str) -> float | None:
        """The key's revocation from the revocations file alone (no server asked): what
        still holds while the store fails."""
        return revocation_time(self.store.get_durable([revoked_marker(key_id)]).get(
            revoked_marker(key_id), ()))

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke ``key_id`` now: refused on every worker within the cache TTL (≤ 1 s).
        None when the store has no such key.

        The marker goes first, so the revocations file keeps it even when every server
        fails (the record's update then raises StoreError); a marker for an unknown id
        is harmless and expires."""
        now = self.clock()
        self.store.set_everywhere(revoked_marker(key_id), repr(now).encode(), RETAIN)
        return self._update(key_id, lambda r: r if r.revoked else replace(r, revoked=now))

    def revoke_static(self, record: KeyRecord) -> KeyRecord:
        """Revoke a keys_file key: a marker on every store server (and in the revocations
        file), which the method checks. It lives ``FOREVER``; remove the key from the
        file too."""
        revoked = replace(record, revoked=self.clock())
        self.store.set_everywhere(revoked_marker(record.id), repr(revoked.revoked).encode(),
                                  FOREVER)
        return revoked

    def rotate(self, key_id: str, *, grace: float,
               expires_in: float | None = None) -> tuple[str, KeyRecord, KeyRecord]:
        """A new key like ``key_id`` (same API, subject, policies, meta, expiry unless
        ``expires_in``); the old one stays valid ``grace`` seconds more, at most."""
        old = self.get(key_id)
        if old is None:
            raise KeyStateError(f"no key {key_id}")
        now = self.clock()
        if old.state(now) != "active":
            raise KeyStateError(f"key {key_id} is {old.state(now)}"
                                + (f" (replaced by {old.rotated_to})" if old.rotated_to else ""))
        remaining = None if old.expires is None else old.expires - now
        key, new = self.create(old.api, policies=old.policies, meta=dict(old.meta),
                               expires_in=expires_in if expires_in is not None else remaining,
                               subject=old.subject, rotated_from=old.id)
        end = now + grace if old.expires is None else min(old.expires, now + grace)

        def retire(record: KeyRecord) -> KeyRecord:
            if record.state(now) != "active":
                raise KeyStateError(f"key {key_id} changed meanwhile: it is {record.state(now)}")
            return replace(record, expires=end, rotated_to=new.id)

        try:
            updated = self._update(key_id, retire)
            if updated is None:
                raise KeyStateError(f"key {key_id} vanished from the store meanwhile")
        except (KeyStateError, StoreError):
            self.revoke(new.id)  # a revoked key's replacement must not outlive it
            raise
        return key, new, updated

    def _update(self, key_id: str, change: Callable[[KeyRecord], KeyRecord]) -> KeyRecord | None:
        """Apply ``change`` with compare-and-set, so concurrent changes are never lost."""
        for _ in range(CAS_ATTEMPTS):
            raw, token = self.store.gets(record_key(key_id))
            record = KeyRecord.decode(raw)
            if record is None:
                return None
            changed = change(record)
            if changed == record or self.store.cas(record_key(key_id), changed.encode(), token,
                                                   self._ttl(changed)):
                return changed
        raise StoreError("the key record is being changed concurrently; try again")

    def _index(self, api: str, change: Callable[[list[str]], list[str]]) -> None:
        """Update the API's index with compare-and-set (add when it does not exist yet)."""
        key = index_key(api)
        for _ in range(CAS_ATTEMPTS):
            raw, token = self.store.gets(key)
            ids = _ids(raw)
            changed = change(ids)
            if changed == ids:
                return
            data = json.dumps(changed, separators=(",", ":")).encode()
            if len(data) > INDEX_MAX_BYTES:
                raise StoreError(f"the key index of API {api} is full ({len(ids)} keys)")
            stored = (self.store.add(key, data, FOREVER) if raw is None
                      else self.store.cas(key, data, token, FOREVER))
            if stored:
                return
        raise StoreError(f"the key index of API {api} is being changed concurrently; try again")

    def _ttl(self, record: KeyRecord) -> float:
        """How long the store keeps a record: past its end by RETAIN, for show and list."""
        now = self.clock()
        if record.revoked is not None:
            return RETAIN
        if record.expires is None:
            return FOREVER
        return max(record.expires - now, 0.0) + RETAIN


def revocation_time(copies) -> float | None:
    """The earliest revocation among a marker's copies (None: not revoked)."""
    times = []
    for raw in copies:
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            times.append(value)
    return min(times, default=None)


def _ids(raw: bytes | None) -> list[str]:
    try:
        ids = json.loads(raw) if raw is not None else []
    except ValueError:
        return []
    return [i for i in ids if isinstance(i, str) and KEY_ID.match(i)] if isinstance(ids, list) else []
