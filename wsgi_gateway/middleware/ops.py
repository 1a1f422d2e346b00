"""Ops: the gateway's reserved paths (health, ready), never routed nor limited."""

from __future__ import annotations

import json
from collections.abc import Callable

from ..context import context_of
from ..errors import GatewayError, MethodNotAllowed, NotFound, NotReady


class OpsEndpoints:
    """Answers ``<prefix>health`` and ``<prefix>ready`` itself; passes the rest on.

    :param app: the WSGI app to wrap.
    :param prefix: the reserved prefix, e.g. ``/.gateway/``; nothing under it reaches
        an upstream.
    :param readiness: returns the reasons the gateway cannot serve yet (empty when
        ready). Reasons are short and name no host, key or secret.

    ``health``: 200 ``{"status": "ok"}`` while the process answers. ``ready``: 200
    ``{"status": "ready"}``, or a 503 problem (``not_ready``) listing the reasons. Any
    other answer is a problem body like every error of the gateway.
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
        try:
            body = self.answer(path[len(self.prefix):], environ.get("REQUEST_METHOD"))
        except GatewayError as err:
            return err(environ, start_response)
        return _answer(start_response, body)

    def answer(self, endpoint: str, method: str | None) -> dict:
        """The small JSON body of an OK answer; raises the problem otherwise."""
        if endpoint not in ("health", "ready"):
            raise NotFound("no such gateway endpoint")
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(allow=("GET", "HEAD"))
        if endpoint == "health":
            return {"status": "ok"}
        reasons = self.readiness()
        if reasons:
            raise NotReady(reasons)
        return {"status": "ready"}


def _answer(start_response, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                              ("Content-Length", str(len(data)))])
    return [data]
