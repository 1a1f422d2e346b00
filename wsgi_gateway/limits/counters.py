"""Counters in the store: a request's counters taken together, exact or leased.

Every counter is shared by every worker and host. A request's counters (its rate
window and its quota period) and the reads it needs (the previous rate window) go to
the store together, in one round trip (``count_many`` on memcached; one call per
counter on a store without it).

- **Exact** (lease 1): each request is one increment and its result is the request's
  number in the window, so admitting ``n <= limit`` is exact under any concurrency.
- **Leased** (lease ``L`` > 1): a worker takes ``L`` numbers at once and hands them
  out locally; a number above the limit is refused, so a lease never over-admits, but
  numbers a worker leased and did not use by the window's end are lost (at most
  ``L - 1`` per worker and window). A request whose counters all have a live lease
  costs no round trip.

A refused request gives its numbers back (``give_back``: one round trip), so a window
counts the requests it served, never the ones it refused: a client that keeps asking
above its limit is still served the limit (the sliding estimate would otherwise never
fall back under it). A leased worker gives back the rest of its lease with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from cachetools import LRUCache, TLRUCache

from ..store.base import Store

# ``limits.mode: auto``: a limit of at least AUTO_MIN is leased in blocks of
# limit / AUTO_DIVISOR (at most AUTO_MAX_LEASE), so one worker strands at most 0.1 % of
# it per window; a smaller limit is counted exactly.
AUTO_DIVISOR = 1000
AUTO_MIN = 10_000
AUTO_MAX_LEASE = 1000


def auto_lease(limit: int) -> int:
    """The lease ``limits.mode: auto`` uses for a limit of ``limit`` (1: exact)."""
    return min(AUTO_MAX_LEASE, limit // AUTO_DIVISOR) if limit >= AUTO_MIN else 1


class Counters:
    """Numbers from store counters, exact or leased per counter.

    :param store: where the counters live.
    :param max_keys: leases kept per worker (least recently used dropped: its unused
        numbers are lost, which under-admits, never over-admits).
    """

    def __init__(self, store: Store, max_keys: int = 10_000):
        self.store = store
        self._leases: LRUCache = LRUCache(maxsize=max_keys)  # key -> [next, last]
        self._lock = threading.Lock()

    def take(self, wanted: Sequence[tuple[str, float, int]], reads: Sequence[str] = (),
             adds: Sequence[tuple[str, bytes, float]] = ()) -> tuple[list[int], dict[str, bytes], list[bool]]:
        """A number from each ``(key, ttl, lease)`` counter, and the values of
        ``reads`` that are present, in at most one store round trip, which also stores
        each ``(key, value, ttl)`` of ``adds`` unless its key exists (and says, per add,
        whether the key holds a value now)."""
        numbers: list[int] = [0] * len(wanted)
        increments: list[tuple[str, int, float]] = []
        asked: list[int] = []
        with self._lock:
            for index, (key, ttl, lease) in enumerate(wanted):
                held = self._leases.get(key) if lease > 1 else None
                if held is not None and held[0] <= held[1]:
                    numbers[index] = held[0]
                    held[0] += 1
                    continue
                increments.append((key, lease, ttl))
                asked.append(index)
        if not increments and not reads and not adds:
            return numbers, {}, []
        values, found, stored = count_many(self.store, increments, reads, adds)
        with self._lock:
            for index, last in zip(asked, values):
                key, _ttl, lease = wanted[index]
                numbers[index] = last - lease + 1
                if lease > 1:
                    self._leases[key] = [last - lease + 2, last]
        return numbers, found, stored

    def give_back(self, held: Sequence[tuple[str, int]]) -> None:
        """The request holding a number of each ``(key, lease)`` counter was refused:
        those numbers, and the rest of this worker's leases (every later number is
        refused too), go back to the store, in one round trip."""
        decrements: list[tuple[str, int, float]] = []
        for key, lease in held:
            unused = 0
            if lease > 1:
                with self._lock:
                    lease_left = self._leases.pop(key, None)
                if lease_left is not None and lease_left[0] <= lease_left[1]:
                    unused = lease_left[1] - lease_left[0] + 1
            decrements.append((key, -(unused + 1), 1.0))
        if decrements:
            count_many(self.store, decrements, ())


def count_many(store: Store, increments: Sequence[tuple[str, int, float]], reads: Sequence[str],
               adds: Sequence[tuple[str, bytes, float]] = ()) -> tuple[list[int], dict[str, bytes], list[bool]]:
    """``store.count_many`` (one round trip), or one call per counter and per add and
    one ``get_many`` on a store without it (memory, dry run)."""
    batched = getattr(store, "count_many", None)
    if batched is not None:
        return batched(increments, reads, adds)
    values = [store.incr(key, delta, ttl=ttl) if delta >= 0 else store.decr(key, -delta) or 0
              for key, delta, ttl in increments]
    stored = []
    for key, value, ttl in adds:
        store.add(key, value, ttl)  # False: the key holds an earlier value, which is kept
        stored.append(True)
    return values, (store.get_many(reads) if reads else {}), stored


class PreviousWindows:
    """Counts of windows that have ended, kept per worker: they no longer change, so
    the sliding estimate reads each from the store once, not on every request."""

    def __init__(self, clock: Callable[[], float], max_keys: int = 10_000):
        self._cache: TLRUCache = TLRUCache(maxsize=max_keys, timer=clock,
                                           ttu=lambda _key, entry, now: now + entry[1])
        self._lock = threading.Lock()

    def known(self, key: str) -> int | None:
        """The final count under ``key`` when this worker has it."""
        with self._lock:
            entry = self._cache.get(key)
        return None if entry is None else entry[0]

    def remember(self, key: str, raw: bytes | None, keep_for: float) -> int:
        """Keep the count read from the store (absent: 0) for ``keep_for`` seconds."""
        count = int(raw) if raw is not None and raw.isdigit() else 0
        with self._lock:
            self._cache[key] = (count, keep_for)
        return count
