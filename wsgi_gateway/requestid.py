"""Request IDs: accept a well-formed incoming one, else make a new one; and the random
hex every per-request ID (request, trace, span) is cut from."""

from __future__ import annotations

import os
import re
import threading

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}\Z")

_POOL_BYTES = 4096


class _RandomPool:
    """Bytes from ``os.urandom``, fetched 4 KiB at a time and handed out once each: three
    IDs a request cost three system calls before. Emptied in a forked child, so two
    gunicorn workers never hand out the bytes their master fetched."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data = b""
        self._at = 0

    def hex(self, nbytes: int) -> str:
        with self._lock:
            at = self._at
            if at + nbytes > len(self._data):
                self._data, at = os.urandom(_POOL_BYTES), 0
            self._at = at + nbytes
            return self._data[at:at + nbytes].hex()

    def reset(self) -> None:
        self._data, self._at = b"", 0
        self._lock = threading.Lock()


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.reset)


def random_hex(nbytes: int) -> str:
    """``nbytes`` unguessable random bytes as hex (from the OS's generator)."""
    return _pool.hex(nbytes)


def new_request_id() -> str:
    """A fresh, unguessable request ID (128 random bits, hex)."""
    return _pool.hex(16)


def accept_request_id(value: str | None) -> str:
    """``value`` when it is a safe ID (1–128 of ``A-Za-z0-9._:-``), else a new one."""
    if value and _WELL_FORMED.match(value):
        return value
    return new_request_id()
