"""A store that reads the real one and never writes to it: for ``explain``.

``explain`` runs a request through the real stack so that it answers what the gateway
would (an API key is found, a revoked session is refused, a spent quota is 429), but an
explanation must not count against a client's limits or create sessions. Writes go to
a private in-memory overlay seeded from the real value, so the stack still sees its
own writes within the one request.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import Store
from .memory import MemoryStore


class DryRunStore:
    """Reads from ``real`` (overlaid by this run's own writes); writes only to memory."""

    def __init__(self, real: Store):
        self.real = real
        self.overlay = MemoryStore(namespace="explain")
        self._written: set[str] = set()

    def get(self, key: str) -> bytes | None:
        return self.overlay.get(key) if key in self._written else self.real.get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(keys)
        found = self.real.get_many([k for k in keys if k not in self._written])
        found.update(self.overlay.get_many([k for k in keys if k in self._written]))
        return found

    def _seed(self, key: str, ttl: float) -> None:
        if key not in self._written:
            value = self.real.get(key)
            if value is not None:
                self.overlay.set(key, value, ttl)
            self._written.add(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._written.add(key)
        self.overlay.set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self._seed(key, ttl)
        return self.overlay.add(key, value, ttl)

    def incr(self, key: str, delta: int = 1, *, ttl: float, initial: int = 0) -> int:
        self._seed(key, ttl)
        return self.overlay.incr(key, delta, ttl=ttl, initial=initial)

    def decr(self, key: str, delta: int = 1) -> int | None:
        self._seed(key, 60.0)
        return self.overlay.decr(key, delta)

    def set_everywhere(self, key: str, value: bytes, ttl: float) -> int:
        self.set(key, value, ttl)
        return 1

    def get_everywhere(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        keys = list(keys)
        found = self.real.get_everywhere([k for k in keys if k not in self._written])
        found.update({k: [v] for k, v in self.overlay.get_many(
            [k for k in keys if k in self._written]).items()})
        return found

    def get_durable(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        return self.real.get_durable(keys)

    def gets(self, key: str) -> tuple[bytes | None, object | None]:
        self._seed(key, 60.0)
        return self.overlay.gets(key)

    def cas(self, key: str, value: bytes, token: object, ttl: float) -> bool:
        self._seed(key, ttl)
        return self.overlay.cas(key, value, token, ttl)

    def delete(self, key: str) -> bool:
        existed = self.get(key) is not None
        self._seed(key, 1.0)
        self.overlay.delete(key)
        return existed

    def ping(self) -> None:
        self.real.ping()

    def close(self) -> None:
        self.real.close()
