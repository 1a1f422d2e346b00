"""``memcached``: the store shared by every gunicorn worker and gateway host.

The only module that imports pymemcache. One or several servers form a cluster
through pymemcache's own :class:`~pymemcache.client.hash.HashClient` (rendezvous
hashing). Design points, each from a fault seen in the field:

- **A client per thread, made after the fork.** Clients are built lazily per thread
  and rebuilt when the process id changes, so no socket is shared across gunicorn
  workers.
- **Writes wait for their reply** (``default_noreply=False``): pymemcache's default
  is fire-and-forget, under which a write to a frozen server vanishes and ``add``
  reports a success it never had.
- **Bounded latency.** Connect and operation timeouts are tight, and a server that
  fails once is left alone for ``retry_after`` seconds (HashClient with
  ``retry_attempts=0`` and ``dead_timeout``): while every server is out, calls fail
  at once instead of each waiting for a timeout. In a cluster, a lost node's keys
  move to the others until it returns.
- **One error type.** Any failure is raised as StoreError.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable

from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError

from ..errors import StoreError
from .keys import store_key

_RELATIVE_LIMIT = 30 * 86400  # memcached reads a larger expiry as a Unix timestamp


class MemcachedStore:
    """The :class:`~wsgi_gateway.store.base.Store` protocol on memcached."""

    def __init__(self, servers: Iterable[tuple[str, int]], *, namespace: str = "gw",
                 connect_timeout: float = 0.1, timeout: float = 0.1,
                 retry_after: float = 1.0):
        self.servers = tuple(servers)
        if not self.servers:
            raise ValueError("MemcachedStore needs at least one server")
        self._ns = namespace
        self._options = dict(
            connect_timeout=connect_timeout, timeout=timeout, no_delay=True,
            retry_attempts=0, dead_timeout=retry_after, ignore_exc=False,
            default_noreply=False)
        if len(self.servers) == 1:  # nothing to choose between: skip rendezvous hashing
            self._options["hasher"] = _OnlyNode
        self._local = threading.local()

    @property
    def _client(self) -> HashClient:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.client = HashClient(list(self.servers), **self._options)
            local.pid = os.getpid()
        return local.client

    def _key(self, key: str) -> str:
        return store_key(self._ns, key)

    def get(self, key: str) -> bytes | None:
        with _mapped_errors():
            return self._client.get(self._key(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = {self._key(key): key for key in keys}
        if not wanted:
            return {}
        with _mapped_errors():
            found = self._client.get_many(list(wanted))
        return {wanted[full]: value for full, value in found.items()}

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with _mapped_errors():
            if not self._client.set(self._key(key), value, expire=_expire(ttl)):
                raise StoreError("the store did not keep a write")

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with _mapped_errors():
            return bool(self._client.add(self._key(key), value, expire=_expire(ttl)))

    def incr(self, key: str, delta: int = 1, *, ttl: float, initial: int = 0) -> int:
        full = self._key(key)
        with _mapped_errors():
            client = self._client
            for _ in range(3):  # the key may be created, or expire, between two calls
                value = client.incr(full, delta)
                if value is not None:
                    return int(value)
                if client.add(full, str(initial + delta).encode(), expire=_expire(ttl)):
                    return initial + delta
        raise StoreError("a counter could not be incremented")

    def gets(self, key: str) -> tuple[bytes | None, object | None]:
        with _mapped_errors():
            value, token = self._client.gets(self._key(key))
        return value, token

    def cas(self, key: str, value: bytes, token: object, ttl: float) -> bool:
        if token is None:
            return False
        with _mapped_errors():
            return bool(self._client.cas(self._key(key), value, token, expire=_expire(ttl)))

    def delete(self, key: str) -> bool:
        with _mapped_errors():
            return bool(self._client.delete(self._key(key)))

    def ping(self) -> None:
        """Ask every server for its version; StoreError naming the first that fails."""
        for host, port in self.servers:
            client = self._client.clients.get(f"{host}:{port}")
            try:
                if client is None:
                    raise MemcacheError("marked down")
                client.version()
            except (MemcacheError, OSError) as exc:
                raise StoreError(f"memcached {host}:{port} is unavailable") from exc

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None and self._local.pid == os.getpid():
            client.close()
        self._local = threading.local()


class _OnlyNode:
    """HashClient's hasher for a single server: the node, while it is not marked down.

    rendezvous hashing costs ~20 µs a key in pure Python, for nothing with one server;
    HashClient's dead-server handling (our circuit breaker) still works through it.
    """

    def __init__(self):
        self.nodes: list[str] = []

    def add_node(self, node: str) -> None:
        self.nodes.append(node)

    def remove_node(self, node: str) -> None:
        self.nodes.remove(node)

    def get_node(self, key) -> str | None:
        return self.nodes[0] if self.nodes else None


class _mapped_errors:
    """Context manager turning every pymemcache or socket failure into StoreError."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, (MemcacheError, OSError)):
            raise StoreError() from exc
        return False


def _expire(ttl: float) -> int:
    """memcached's expiry field: whole seconds, absolute past 30 days."""
    if not ttl > 0:
        raise ValueError(f"a TTL must be positive seconds, got {ttl!r}")
    seconds = math.ceil(ttl)
    return seconds if seconds <= _RELATIVE_LIMIT else int(time.time()) + seconds
