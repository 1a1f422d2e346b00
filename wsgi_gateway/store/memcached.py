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
- **A broken connection is retried once, at once.** After memcached restarts, the first
  call on each worker's old socket reads end-of-file; that call is repeated once on a
  new connection, so a restart costs no client a 503. A timeout (a frozen server) is
  never retried: the breaker bounds it.
- **Markers everywhere.** ``set_everywhere`` writes a key to every server and
  ``get_everywhere`` reads it from every server (one ``get_many`` per server): a
  revocation survives the loss of any node but the last. The same read carries a
  sentinel key per server: a server that answers without it holds no gateway data (it
  started, restarted, or was flushed), which is logged once and the sentinel put back.
- **One round trip for a request's counters.** ``count_many`` sends every counter
  increment of a request (rate and quota) and the reads it needs (the previous rate
  window) as memcached meta commands (``ma`` with ``N`` autovivify and a TTL, ``mg``;
  ``ms`` in add mode for a new session's record, see :mod:`..limits.sessions`) in
  one write per server, then reads the replies, on pymemcache's own connection and with
  its own line readers: the increments stay atomic on the server, and a missing counter
  is created by the same command (no ``add`` after a miss, no race between two).
- **One error type.** Any failure is raised as StoreError.

The per-server calls use two attributes of pymemcache 4's HashClient (``clients`` and
its dead-server bookkeeping, ``_dead_clients`` / ``_safely_run_func``), so a failed
server is skipped by the same breaker; setup.cfg pins pymemcache below 5.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from pymemcache.client.base import _readline, _readvalue
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

from ..errors import StoreError
from .keys import store_key

_RELATIVE_LIMIT = 30 * 86400  # memcached reads a larger expiry as a Unix timestamp
SENTINEL = "store-alive"       # on every server; missing: the server lost its data
SENTINEL_TTL = 30 * 86400.0
log = logging.getLogger("wsgi_gateway.store")


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

    def _call(self, op: Callable[[HashClient], object]):
        """``op(client)``, repeated once at once when the connection turns out broken
        (a restarted server: the old socket reads end-of-file); errors as StoreError."""
        with _mapped_errors():
            try:
                return op(self._client)
            except MemcacheUnexpectedCloseError:  # pymemcache closed the socket: reconnects
                return op(self._client)

    def get(self, key: str) -> bytes | None:
        return self._call(lambda c: c.get(self._key(key)))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = {self._key(key): key for key in keys}
        if not wanted:
            return {}
        found = self._call(lambda c: c.get_many(list(wanted)))
        return {wanted[full]: value for full, value in found.items()}

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if not self._call(lambda c: c.set(self._key(key), value, expire=_expire(ttl))):
            raise StoreError("the store did not keep a write")

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self._call(lambda c: c.add(self._key(key), value, expire=_expire(ttl))))

    def incr(self, key: str, delta: int = 1, *, ttl: float, initial: int = 0) -> int:
        full = self._key(key)

        def count(client: HashClient) -> int | None:
            for _ in range(3):  # the key may be created, or expire, between two calls
                value = client.incr(full, delta)
                if value is not None:
                    return int(value)
                if client.add(full, str(initial + delta).encode(), expire=_expire(ttl)):
                    return initial + delta
            return None

        value = self._call(count)
        if value is None:
            raise StoreError("a counter could not be incremented")
        return value

    def count_many(self, increments: Sequence[tuple[str, int, float]],
                   reads: Sequence[str] = (), adds: Sequence[tuple[str, bytes, float]] = (),
                   ) -> tuple[list[int], dict[str, bytes], list[bool]]:
        """Add ``delta`` to each ``(key, delta, ttl)`` counter (a missing one is created
        at ``delta``, living ``ttl`` seconds; a negative delta subtracts, never below 0,
        and leaves a missing counter missing, as 0), read ``reads`` and store each
        ``(key, value, ttl)`` of ``adds`` unless its key exists (``ms`` in add mode), in
        one round trip per server: the counters' new values in order, the reads that
        were present, and per add whether the key now holds a value (this one or an
        earlier one). An add the server refuses (``SERVER_ERROR``: too large, out of
        memory) is a False there, never a failure of the counters beside it."""
        commands: list[tuple[str, bytes]] = []
        for key, delta, ttl in increments:
            full = self._key(key)
            if delta < 0:  # a give-back: never below 0, and a missing counter stays missing
                commands.append((full, f"ma {full} MD D{-delta} v\r\n".encode()))
            else:
                commands.append((full, f"ma {full} N{_expire(ttl)} J{delta} D{delta} v\r\n".encode()))
        for key in reads:
            full = self._key(key)
            commands.append((full, f"mg {full} v\r\n".encode()))
        for key, value, ttl in adds:
            full = self._key(key)
            commands.append((full, b"%s\r\n%s\r\n" % (
                f"ms {full} {len(value)} T{_expire(ttl)} ME".encode(), value)))
        replies = self._call(lambda c: _meta_batch(c, commands))
        values: list[int] = []
        for (_key, delta, _ttl), (status, value) in zip(increments, replies):
            if delta < 0 and status == b"NF":
                values.append(0)  # nothing to give back to: the counter expired
                continue
            if status != b"VA" or value is None or not value.isdigit():
                raise StoreError("a counter could not be incremented")
            values.append(int(value))
        found = {key: value for key, (status, value) in zip(reads, replies[len(increments):])
                 if status == b"VA" and value is not None}
        stored = [status in (b"HD", b"NS")  # stored, or kept the value already there
                  for status, _value in replies[len(increments) + len(reads):]]
        return values, found, stored

    def decr(self, key: str, delta: int = 1) -> int | None:
        value = self._call(lambda c: c.decr(self._key(key), delta))
        return None if value is None else int(value)

    def gets(self, key: str) -> tuple[bytes | None, object | None]:
        value, token = self._call(lambda c: c.gets(self._key(key)))
        return value, token

    def cas(self, key: str, value: bytes, token: object, ttl: float) -> bool:
        if token is None:
            return False
        return bool(self._call(lambda c: c.cas(self._key(key), value, token, expire=_expire(ttl))))

    def delete(self, key: str) -> bool:
        return bool(self._call(lambda c: c.delete(self._key(key))))

    def set_everywhere(self, key: str, value: bytes, ttl: float) -> int:
        full, expire = self._key(key), _expire(ttl)
        kept = self._on_every_server(lambda c: c.set(full, value, expire=expire))
        if not any(kept.values()):
            raise StoreError("no store server kept the write")
        return sum(1 for ok in kept.values() if ok)

    def get_everywhere(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        wanted = {self._key(key): key for key in keys}
        sentinel = self._key(SENTINEL)
        answers = self._on_every_server(lambda c: c.get_many([*wanted, sentinel]))
        if not any(answer is not None for answer in answers.values()):
            raise StoreError("no store server answered")
        found: dict[str, list[bytes]] = {}
        for server, answer in answers.items():
            if answer is None:
                continue
            if sentinel not in answer:
                self._lost_data(server)
            for full, value in answer.items():
                if full in wanted:
                    found.setdefault(wanted[full], []).append(value)
        return found

    def get_durable(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        return {}

    def _on_every_server(self, op: Callable) -> dict[str, object]:
        """``op(server_client)`` on each server, through HashClient's breaker: a server
        that fails (or is left alone) answers None; the others are still asked."""
        hashed = self._client
        if hashed._dead_clients:
            hashed._retry_dead()
        results: dict[str, object] = {}
        for name, client in hashed.clients.items():
            results[name] = None
            if client.server in hashed._dead_clients:
                continue
            for attempt in (1, 2):  # once more on a broken connection, as in _call
                try:
                    results[name] = hashed._safely_run_func(client, lambda: op(client), None)
                    break
                except MemcacheUnexpectedCloseError:
                    continue
                except (MemcacheError, OSError):
                    break
        return results

    def _lost_data(self, server: str) -> None:
        """A server without the sentinel holds none of the gateway's data: say so once
        (the first worker to notice puts the sentinel back)."""
        client = self._client.clients[server]
        try:
            added = client.add(self._key(SENTINEL), b"1", expire=_expire(SENTINEL_TTL), noreply=False)
        except (MemcacheError, OSError):
            return
        if added:
            log.warning("store: memcached %s holds no gateway data (it started, restarted or was "
                        "flushed): its quota counters of the current period and session records "
                        "are gone; revocations are read from the other servers and the "
                        "revocations file", server)

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


def _meta_batch(hashed: HashClient, commands: list[tuple[str, bytes]]) -> list[tuple[bytes, bytes | None]]:
    """Send meta commands grouped by server, one write each, then read every reply
    (``VA`` with its value, or a one-line status such as ``EN``), through HashClient's
    breaker. pymemcache 4 has no meta-command API; its connection and readers are used."""
    groups: dict[str, tuple[object, list[int]]] = {}
    for index, (full, _command) in enumerate(commands):
        client = hashed._get_client(full)
        groups.setdefault(client.server, (client, []))[1].append(index)
    replies: list[tuple[bytes, bytes | None]] = [(b"", None)] * len(commands)

    def send(client, indexes: list[int]) -> None:
        if client.sock is None:
            client._connect()
        client.sock.sendall(b"".join(commands[i][1] for i in indexes))

    def receive(client, indexes: list[int]) -> None:
        buf = b""
        for i in indexes:
            buf, line = _readline(client.sock, buf)
            if line.startswith(b"SERVER_ERROR") and commands[i][1].startswith(b"ms "):
                replies[i] = (b"SE", None)  # the value was read and dropped: one line, in step
                continue
            client._raise_errors(line, b"meta")
            if line.startswith(b"VA "):
                buf, value = _readvalue(client.sock, buf, int(line.split()[1]))
                replies[i] = (b"VA", value)
            else:
                replies[i] = (line[:2], None)

    for step in (send, receive):  # every server gets its commands before any reply is read
        for client, indexes in groups.values():
            try:
                hashed._safely_run_func(client, lambda: step(client, indexes), None)
            except Exception:
                client.close()  # a half-read reply must not be left for the next call
                raise
    return replies


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
