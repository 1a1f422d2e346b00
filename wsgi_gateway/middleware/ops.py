"""Ops: the gateway's reserved paths (health, ready), never routed nor limited."""

from __future__ import annotations

import json
from collections.abc import Callable

from ..context import context_of


class OpsEndpoints:
    """Answers ``<prefix>health`` and ``<prefix>ready`` itself; passes the rest on.

    :param app: the WSGI app to wrap.
    :param prefix: the reserved prefix, e.g. ``/.gateway/``; nothing under it reaches
        an upstream.
    :param readiness: returns the reasons the gateway cannot serve yet (empty when
        ready). Reasons are short and name no host, key or secret.

    ``health``: 200 while the process answers. ``ready``: 200, or 503 with the reasons.
    """

    def __init__(self, app: Callable, *, prefix: str = "/.gateway/",
                 readiness: Callable[[], list[str]] = list):
        self.app = app
        self.prefix = prefix
        self.readiness = readiness

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(self.prefix):
            return self.app(environ, start_response)
        context_of(environ).api = "-ops"
        endpoint = path[len(self.prefix):]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(environ, start_response, "405 Method Not Allowed",
                           {"status": "method not allowed"}, [("Allow", "GET, HEAD")])
        if endpoint == "health":
            return _answer(environ, start_response, "200 OK", {"status": "ok"})
        if endpoint == "ready":
            reasons = self.readiness()
            if reasons:
                return _answer(environ, start_response, "503 Service Unavailable",
                               {"status": "unavailable", "reasons": reasons}, [("Retry-After", "1")])
            return _answer(environ, start_response, "200 OK", {"status": "ready"})
        return _answer(environ, start_response, "404 Not Found", {"status": "not found"})


def _answer(environ, start_response, status: str, body: dict, headers=()) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                            ("Content-Length", str(len(data))), *headers])
    return [data]
