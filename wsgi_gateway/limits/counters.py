"""Counters in the store: exact (one atomic incr per request) or leased (blocks of units).

Both are shared by every worker and host. Exact: each request is one ``incr`` and its
result is the request's number in the window, so admitting ``n <= limit`` is exact
under any concurrency. Leased: a worker takes ``lease`` numbers at once and hands them
out locally; a number above the limit is refused, so a lease never over-admits, but
numbers a worker leased and did not use by the window's end are lost.

A refused request gives its number back (``give_back``: one ``decr``), so a window
counts the requests it served, never the ones it refused: a client that keeps asking
above its limit is still served the limit (the sliding estimate would otherwise never
fall back under it). A leased worker gives back the rest of its lease with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cachetools import LRUCache, TLRUCache

from ..store.base import Store


class ExactCounter:
    """One ``incr`` per request."""

    def __init__(self, store: Store):
        self.store = store

    def next(self, key: str, ttl: float) -> int:
        return self.store.incr(key, ttl=ttl)

    def give_back(self, key: str, number: int) -> None:
        """The request holding ``number`` was refused: it no longer counts."""
        self.store.decr(key, 1)


class LeasedCounter:
    """Numbers leased ``lease`` at a time from the store, handed out by this worker."""

    def __init__(self, store: Store, lease: int, max_keys: int = 10_000):
        self.store = store
        self.lease = lease
        self._leases: LRUCache = LRUCache(maxsize=max_keys)  # key -> [next, last]
        self._lock = threading.Lock()

    def next(self, key: str, ttl: float) -> int:
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and lease[0] <= lease[1]:
                lease[0] += 1
                return lease[0] - 1
        last = self.store.incr(key, self.lease, ttl=ttl)
        with self._lock:
            self._leases[key] = [last - self.lease + 2, last]
        return last - self.lease + 1

    def give_back(self, key: str, number: int) -> None:
        """The request holding ``number`` was refused: it and the rest of this worker's
        lease (every later number is refused too) go back to the store."""
        with self._lock:
            lease = self._leases.pop(key, None)
        unused = lease[1] - lease[0] + 1 if lease is not None and lease[0] <= lease[1] else 0
        self.store.decr(key, unused + 1)


class PreviousWindows:
    """Counts of windows that have ended, kept per worker: they no longer change, so
    the sliding estimate reads each from the store once, not on every request."""

    def __init__(self, store: Store, clock: Callable[[], float], max_keys: int = 10_000):
        self.store = store
        self._cache: TLRUCache = TLRUCache(maxsize=max_keys, timer=clock,
                                           ttu=lambda _key, entry, now: now + entry[1])
        self._lock = threading.Lock()

    def count(self, key: str, keep_for: float) -> int:
        """The final count under ``key``, remembered for ``keep_for`` seconds."""
        with self._lock:
            entry = self._cache.get(key)
        if entry is None:
            raw = self.store.get(key)
            entry = (int(raw) if raw is not None and raw.isdigit() else 0, keep_for)
            with self._lock:
                self._cache[key] = entry
        return entry[0]
