"""Shared fixtures: a real memcached for the session, real gateways per test."""

from __future__ import annotations

import pytest

from tests.support.processes import Memcached


@pytest.fixture(scope="session")
def memcached_server():
    """A real memcached on a free loopback port, for the whole session."""
    server = Memcached().start()
    yield server
    server.stop()


@pytest.fixture
def memcached(memcached_server):
    """The session's memcached, emptied for this test."""
    memcached_server.flush()
    return memcached_server
