"""The revocations file: a durable copy of the markers written to every store server.

memcached keeps nothing across a restart; a revocation that lived only there would be
undone by restarting every node. With ``store.revocations_file`` set, every
``set_everywhere`` (``sessions revoke``, ``keys revoke``) is also appended to this file,
and every ``get_everywhere`` also answers from it.

One JSON object per line, ``{"key": …, "value": …, "expires": …}`` (the namespaced store
key, the marker's text, a Unix time). Lines are appended with one ``write`` on an
``O_APPEND`` descriptor and ``fsync``-ed, never rewritten; a torn or unreadable line is
skipped. Each process re-reads the file when its device, inode, modification time or size
change, looked at at most once per ``check_every`` second (read with the injected clock),
like the users and keys files. Expired lines are ignored; rewrite the file by hand to
shrink it (revocations are rare: a line is ~150 bytes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from ..errors import StoreError
from .base import Store
from .keys import store_key

log = logging.getLogger("wsgi_gateway.store")


class RevocationsFile:
    """Markers appended to, and read from, one file.

    :param path: the file (created on the first append).
    :param clock: wall-clock seconds: expiry, and how often the file is looked at.
    :param check_every: seconds between two looks at the file's metadata.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time,
                 check_every: float = 1.0):
        self.path, self.clock, self.check_every = path, clock, check_every
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._checked = float("-inf")
        self._markers: dict[str, tuple[str, float]] = {}  # key -> (value, expires)

    def append(self, key: str, value: bytes, expires: float) -> None:
        line = json.dumps({"key": key, "value": value.decode("ascii"), "expires": expires},
                          separators=(",", ":")) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"the revocations file cannot be written: {exc.strerror}") from None
        with self._lock:
            self._checked = float("-inf")  # this process reads its own write at once

    def lookup(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The live markers among ``keys`` (the latest line of each wins)."""
        self._refresh()
        now = self.clock()
        with self._lock:
            found = {key: self._markers.get(key) for key in keys}
        return {key: entry[0].encode() for key, entry in found.items()
                if entry is not None and entry[1] > now}

    def _refresh(self) -> None:
        now = self.clock()
        with self._lock:
            if now - self._checked < self.check_every:
                return
            self._checked = now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # nothing revoked yet
        except OSError as exc:
            log.warning("store: the revocations file cannot be read: %s", exc.strerror)
            return
        signature = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._seen:
            return
        markers = _read(self.path)
        with self._lock:
            self._markers, self._seen = markers, signature


def _read(path: str) -> dict[str, tuple[str, float]]:
    markers: dict[str, tuple[str, float]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    markers[str(entry["key"])] = (str(entry["value"]), float(entry["expires"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line, or a hand edit: skip it
    except OSError as exc:
        log.warning("store: the revocations file cannot be read: %s", exc.strerror)
    return markers


class DurableMarkers:
    """A :class:`~wsgi_gateway.store.base.Store` whose ``*_everywhere`` markers are also
    kept in a :class:`RevocationsFile`; every other call goes to ``inner`` unchanged."""

    def __init__(self, inner: Store, file: RevocationsFile, *, namespace: str):
        self.inner, self.file, self._ns = inner, file, namespace

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def set_everywhere(self, key: str, value: bytes, ttl: float) -> int:
        """The file first (it is the copy that survives); then every server. 0 servers
        is not an error here: the file holds the marker, and the gateway reads it."""
        self.file.append(store_key(self._ns, key), value, self.file.clock() + ttl)
        try:
            return self.inner.set_everywhere(key, value, ttl)
        except StoreError:
            return 0

    def get_everywhere(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        keys = list(keys)
        found = self.inner.get_everywhere(keys)
        for key, values in self.get_durable(keys).items():
            found.setdefault(key, []).extend(values)
        return found

    def get_durable(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        keys = list(keys)
        durable = self.file.lookup(store_key(self._ns, key) for key in keys)
        return {key: [durable[store_key(self._ns, key)]] for key in keys
                if store_key(self._ns, key) in durable}
