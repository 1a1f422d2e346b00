"""Fixtures for limits, sessions and degraded-mode tests: a clock the test moves, and
in-process gateways built with it (the shared ``in_process`` fixture has no clock)."""

from __future__ import annotations

import math
import time

import pytest
import yaml
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from tests.support.processes import Memcached
from wsgi_gateway import build_app, load_config


class Clock:
    """Wall-clock seconds that move only when the test says (starts on a whole second)."""

    def __init__(self, start: float | None = None):
        self.now = float(math.ceil(time.time()) + 1) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ClockedGateway:
    """A gateway built in process from a config dict, on an injected clock."""

    def __init__(self, tmp_path, config: dict, clock: Clock, name: str = "gw"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.upstream = Recorder()
        self.gateway = build_app(load_config(path), self.upstream, clock=clock)
        self.client = BufferedClient(LintMiddleware(self.gateway))

    def get(self, token: str | None = None, path: str = "/api/x", **kw):
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, headers=headers, **kw)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def clocked(tmp_path, clock):
    """clocked(config_dict, name="gw") → a ClockedGateway on the test's clock."""
    def make(config: dict, name: str = "gw") -> ClockedGateway:
        return ClockedGateway(tmp_path, config, clock, name)
    return make


@pytest.fixture
def private_memcached():
    """A memcached of this test's own, free to kill, freeze and restart."""
    server = Memcached().start()
    yield server
    server.stop()
