"""The metrics path and the stage marks: the two WSGI pieces of ``observe``."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..context import ENVIRON_KEY, context_of
from ..errors import NotFound
from .metrics import render


class MetricsEndpoint:
    """Answers ``path`` with the metrics summed over every worker, to allowed peers only.

    :param app: the WSGI app to wrap (the ops layer).
    :param path: the full path, e.g. ``/.gateway/metrics``.
    :param allow: the peers (``REMOTE_ADDR``) that may scrape: anything with
        ``__contains__`` (a :class:`~wsgi_gateway.mutate.strip.TrustedProxies`).
    :param directory: the multiprocess directory.
    :param flush: writes this worker's pending counts before the files are read.

    Anyone else gets the 404 problem an unknown path gets: the path is not advertised.
    """

    def __init__(self, app: Callable, *, path: str, allow, directory: str,
                 flush: Callable[[], None] = lambda: None):
        self.app, self.path, self.allow, self.directory = app, path, allow, directory
        self.flush = flush  # this worker's pending counts first: its own are then exact

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        if environ.get("REMOTE_ADDR") not in self.allow:
            return NotFound("no API is served at this path")(environ, start_response)
        self.flush()
        body, content_type = render(self.directory)
        start_response("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store"),
                                  ("Content-Length", str(len(body)))])
        return [body]


def StageMark(app: Callable, stage: str, clock: Callable[[], float] = time.perf_counter):  # noqa: N802
    """Notes the time a stage is entered (``ctx.marks``), for the per-stage histograms.

    Inserted by ``build_app`` before each timed layer only when metrics are on; a stage
    lasts until the next mark (or the end of the response, for the last). A closure,
    not a class with ``__call__``: Python calls a plain function faster (0.25 against
    0.34 µs a layer here, five layers a request).
    """
    key = ENVIRON_KEY

    def mark(environ, start_response):
        (environ.get(key) or context_of(environ)).marks.append((stage, clock()))
        return app(environ, start_response)

    mark.stage = stage  # type: ignore[attr-defined]
    return mark
