"""Real upstreams on free ports: gunicorn serving tests/upstream/upstream_app.py (plain
and TLS with a test CA) and the raw-socket server for malformed answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from tests.support.processes import REPO, free_port, wait_for_port
from wsgi_gateway.app import build_app
from wsgi_gateway.config import load_config

from .raw_server import RawUpstream


class BufferedClient(Client):
    """A test client that reads and closes every response (as a server would)."""

    def open(self, *args, buffered: bool = True, **kw):
        return super().open(*args, buffered=buffered, **kw)


class UpstreamServer:
    """tests/upstream/upstream_app.py under gunicorn (gthread: slow endpoints do not
    block each other); ``kill()`` stops it mid-test."""

    def __init__(self, *, tls: tuple | None = None, workers: int = 1):
        self.port = free_port()
        self.tls = tls
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "UpstreamServer":
        args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), "--worker-class", "gthread", "--threads", "8",
                "--timeout", "60", "--no-control-socket", "--log-level", "warning",
                "tests.upstream.upstream_app:app"]
        if self.tls:
            args += ["--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])]
            if len(self.tls) > 2:  # require a client certificate from this CA
                args += ["--ca-certs", str(self.tls[2]), "--cert-reqs", "2"]
        # its own session: kill() takes the workers down with the master at once (a
        # SIGKILLed master alone leaves workers serving until they notice the new parent)
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture(scope="session")
def upstream():
    server = UpstreamServer().start()
    yield server
    server.kill()


@pytest.fixture
def raw_upstream():
    server = RawUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def proxied(tmp_path):
    """proxied(upstream, **api_keys) → a werkzeug Client on a gateway whose one API
    ``svc`` at ``/svc`` forwards to ``upstream`` (a URL or a mapping)."""
    made = []

    def make(upstream, *, path: str = "/svc", extra: str = "", **api) -> Client:
        config = {"apis": [{"name": "svc", "path": path, "upstream": upstream, **api}]}
        text = yaml.safe_dump(config) + textwrap.dedent(extra)
        file = tmp_path / f"gw{len(made)}.yaml"
        file.write_text(text)
        gateway = build_app(load_config(file))
        made.append(gateway)
        client = BufferedClient(LintMiddleware(gateway))
        client.gateway = gateway
        return client

    yield make
    for gateway in made:
        gateway.close()
