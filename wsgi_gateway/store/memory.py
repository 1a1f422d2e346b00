"""``memory``: an embedded, thread-safe store for one process (the demo default).

Bounded: at most ``max_items`` entries, least recently used evicted first, expired
entries dropped (cachetools' TLRUCache). Each gunicorn worker has its own, so counters
are per worker; use memcached when that matters.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from cachetools import TLRUCache

from ..errors import StoreError
from .keys import store_key


class _Entry(NamedTuple):
    value: bytes
    expires: float
    version: int


class MemoryStore:
    """The :class:`~wsgi_gateway.store.base.Store` protocol in process memory."""

    def __init__(self, *, namespace: str = "gw", max_items: int = 100_000,
                 clock: Callable[[], float] = time.time):
        self._ns = namespace
        self._clock = clock
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self._items: TLRUCache = TLRUCache(
            maxsize=max_items, ttu=lambda _k, entry, _now: entry.expires, timer=clock)

    def _put(self, key: str, value: bytes, ttl: float) -> None:
        self._items[key] = _Entry(bytes(value), self._clock() + _ttl(ttl), next(self._versions))

    def _live(self, key: str) -> _Entry | None:
        entry = self._items.get(key)
        if entry is not None and entry.expires <= self._clock():
            return None
        return entry

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(store_key(self._ns, key))
        return entry.value if entry else None

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            found = {key: self._live(store_key(self._ns, key)) for key in keys}
        return {key: entry.value for key, entry in found.items() if entry}

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._put(store_key(self._ns, key), value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        full = store_key(self._ns, key)
        with self._lock:
            if self._live(full):
                return False
            self._put(full, value, ttl)
            return True

    def incr(self, key: str, delta: int = 1, *, ttl: float, initial: int = 0) -> int:
        full = store_key(self._ns, key)
        with self._lock:
            entry = self._live(full)
            if entry is None:
                self._put(full, str(initial + delta).encode(), ttl)
                return initial + delta
            try:
                value = int(entry.value) + delta
            except ValueError:
                raise StoreError("cannot increment a non-numeric value") from None
            self._items[full] = entry._replace(value=str(value).encode(),
                                               version=next(self._versions))
            return value

    def decr(self, key: str, delta: int = 1) -> int | None:
        full = store_key(self._ns, key)
        with self._lock:
            entry = self._live(full)
            if entry is None:
                return None
            try:
                value = max(0, int(entry.value) - delta)
            except ValueError:
                raise StoreError("cannot decrement a non-numeric value") from None
            self._items[full] = entry._replace(value=str(value).encode(),
                                               version=next(self._versions))
            return value

    def set_everywhere(self, key: str, value: bytes, ttl: float) -> int:
        self.set(key, value, ttl)  # one process, one copy
        return 1

    def get_everywhere(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        return {key: [value] for key, value in self.get_many(keys).items()}

    def get_durable(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        return {}

    def gets(self, key: str) -> tuple[bytes | None, object | None]:
        with self._lock:
            entry = self._live(store_key(self._ns, key))
        return (entry.value, entry.version) if entry else (None, None)

    def cas(self, key: str, value: bytes, token: object, ttl: float) -> bool:
        full = store_key(self._ns, key)
        with self._lock:
            entry = self._live(full)
            if entry is None or entry.version != token:
                return False
            self._put(full, value, ttl)
            return True

    def delete(self, key: str) -> bool:
        full = store_key(self._ns, key)
        with self._lock:
            existed = self._live(full) is not None
            self._items.pop(full, None)
            return existed

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def _ttl(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError(f"a TTL must be positive seconds, got {ttl!r}")
    return float(ttl)
