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


_OURS = ("wsgi_gateway", "gunicorn")


def _loggers() -> dict[str, logging.Logger]:
    return {name: logger for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)}


@pytest.fixture(autouse=True)
def _loggers_restored():
    """Whatever a test does to logging (configure_logging, an in-process ``serve``, a
    dictConfig), the next test finds it as it was: ``propagate = False`` left behind on
    ``wsgi_gateway`` hid later tests' records from ``caplog``, depending on the order.

    The gateway's and gunicorn's loggers get back handlers, level, propagate and
    disabled; every other logger its disabled flag (dictConfig disables existing
    loggers); the root logger its level. The root's handlers are pytest's own."""
    before = _loggers()
    ours = {name: (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
            for name, lg in before.items() if name.split(".")[0] in _OURS}
    disabled = {name: lg.disabled for name, lg in before.items()}
    root_level = logging.root.level
    yield
    for name, (handlers, level, propagate, off) in ours.items():
        logger = before[name]
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, off
    for name, off in disabled.items():
        before[name].disabled = off
    logging.root.setLevel(root_level)


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
