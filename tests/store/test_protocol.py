"""Every store implements the whole Store protocol (a method added to the protocol and
forgotten in one backend is found here, not by a 500 in production)."""

from __future__ import annotations

import inspect

import pytest

from wsgi_gateway.store.base import Store
from wsgi_gateway.store.dryrun import DryRunStore
from wsgi_gateway.store.memcached import MemcachedStore
from wsgi_gateway.store.memory import MemoryStore

PROTOCOL = sorted(name for name, _ in inspect.getmembers(Store, inspect.isfunction)
                  if not name.startswith("_"))


@pytest.mark.parametrize("backend", [MemoryStore, MemcachedStore, DryRunStore], ids=lambda c: c.__name__)
def test_backend_implements_every_protocol_method(backend):
    missing = [name for name in PROTOCOL if not callable(getattr(backend, name, None))]
    assert PROTOCOL and not missing, f"{backend.__name__} lacks {missing}"
