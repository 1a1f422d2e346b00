"""In-process drivers: the stack under werkzeug's test Client, checked by LintMiddleware."""

from __future__ import annotations

import json
import textwrap

import pytest
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from contrib.demo.echo import app as echo_app
from wsgi_gateway import build_app, load_config


class BufferedClient(Client):
    """A test Client that reads and closes every response (as a server would).

    Requests come from 127.0.0.1 like under a real server (werkzeug sets no REMOTE_ADDR).
    """

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        kwargs.setdefault("environ_base", {"REMOTE_ADDR": "127.0.0.1"})
        return super().open(*args, **kwargs)


class Recorder:
    """A real upstream (the demo echo app) that also counts its calls."""

    def __init__(self, app=echo_app):
        self.app = app
        self.calls = 0
        self.environ = None

    def __call__(self, environ, start_response):
        self.calls += 1
        self.environ = environ
        return self.app(environ, start_response)


@pytest.fixture
def upstream():
    return Recorder()


@pytest.fixture
def make_client(tmp_path, upstream):
    """make_client(yaml) → a Client for the gateway built from that config; every
    gateway made is closed afterwards (its key set refresh threads stopped)."""
    built = []

    def make(text: str, *, app=None, store=None) -> Client:
        path = tmp_path / "gateway.yaml"
        path.write_text(textwrap.dedent(text))
        gateway = build_app(load_config(path), app or upstream, store=store)
        built.append(gateway)
        return BufferedClient(LintMiddleware(gateway))

    yield make
    for gateway in built:
        gateway.close()


def problem(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json"
    body = json.loads(response.get_data())
    assert body["status"] == response.status_code
    return body
