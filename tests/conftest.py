"""Shared fixtures: a real memcached for the session, real gateways per test."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support.gateways import SECRET_ENV, InProcess
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


@pytest.fixture(autouse=True)
def _gateway_logger_restored():
    """Whatever a test does to the ``wsgi_gateway`` logger (configure_logging, an
    in-process ``serve``), the next test finds it as it was: ``propagate = False`` left
    behind hid every later test's records from ``caplog``, depending on the order."""
    logger = logging.getLogger("wsgi_gateway")
    saved = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate, logger.disabled = saved[2], saved[3]


@pytest.fixture(autouse=True)
def _token_secret(monkeypatch):
    """The HMAC secret of the test provider in tests.support.gateways."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def in_process(tmp_path):
    """in_process(config_dict[, name][, clock=]) → an InProcess gateway built from that
    config, on the real clock unless the test passes its own."""
    def make(config: dict, name: str = "gw", *, clock=time.time) -> InProcess:
        return InProcess(tmp_path, config, name, clock)
    return make
