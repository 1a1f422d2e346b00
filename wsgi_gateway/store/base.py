"""The Store protocol: what the gateway keeps (sessions, counters, caches).

Keys are plain strings chosen by the caller; a store namespaces them and hashes any
that memcached could not take (see :mod:`.keys`), so callers never think about it.
Values are bytes. TTLs are seconds (> 0); memcached keeps whole seconds and may
expire an item up to a second early, so callers that count windows add a margin.

Every failure of the backend surfaces as :class:`~wsgi_gateway.errors.StoreError`;
the caller decides whether that fails open or closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Store(Protocol):
    """A key-value store with TTLs and atomic operations."""

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The present values among ``keys``, in one round trip per server."""
        ...

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, replacing any value."""
        ...

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store only if absent; True when this call stored it."""
        ...

    def incr(self, key: str, delta: int = 1, *, ttl: float, initial: int = 0) -> int:
        """Atomically add ``delta`` and return the new value.

        A missing key starts at ``initial`` and lives ``ttl`` seconds from then; an
        existing key keeps its expiry (a counter's window does not slide).
        """
        ...

    def decr(self, key: str, delta: int = 1) -> int | None:
        """Atomically subtract ``delta`` (never below 0); the new value, None when absent.

        How a refused request gives back the slot its ``incr`` took.
        """
        ...

    def set_everywhere(self, key: str, value: bytes, ttl: float) -> int:
        """Store on every server of a cluster (and in the durable revocations file, when
        one is configured): for markers whose loss would open a door (revocations).
        Returns how many servers kept it; StoreError when none did."""
        ...

    def get_everywhere(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        """Each key's values as every server that answered holds them (plus the durable
        file's), in one ``get_many`` per server: the caller decides (a revocation counts
        if any copy says so). StoreError only when no server answered."""
        ...

    def get_durable(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        """The ``set_everywhere`` markers kept outside the servers (the revocations
        file), without asking any server: what still holds while the store fails.
        Empty without a revocations file."""
        ...

    def gets(self, key: str) -> tuple[bytes | None, object | None]:
        """The value and a compare-and-set token (both None when absent)."""
        ...

    def cas(self, key: str, value: bytes, token: object, ttl: float) -> bool:
        """Store only if unchanged since ``gets`` returned ``token``; True when stored."""
        ...

    def delete(self, key: str) -> bool:
        """Remove; True when the key existed."""
        ...

    def ping(self) -> None:
        """Raise StoreError unless every server answers."""
        ...

    def close(self) -> None:
        """Release connections (they are made again on next use)."""
        ...
