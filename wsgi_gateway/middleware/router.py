"""Router: which API a request belongs to, by the longest matching path prefix."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..context import context_of
from ..errors import BadRequest, GatewayError, NotFound


class Router:
    """Dispatches each request to the app of the API whose ``path`` prefix matches.

    :param routes: ``(prefix, api_name, app)`` triples. A prefix matches at a path
        segment boundary: ``/v1/orders`` takes ``/v1/orders`` and ``/v1/orders/7``,
        not ``/v1/ordersX``. The longest matching prefix wins.
    :param unmatched: the app for requests no API takes; None answers 404.

    Paths with ``.`` or ``..`` segments, or empty ones (``//``), are refused (400): an
    upstream that resolves or collapses them could be reached under another API's prefix.
    """

    def __init__(self, routes: Iterable[tuple[str, str, Callable]], *,
                 unmatched: Callable | None = None):
        table = [(prefix.rstrip("/"), name, app) for prefix, name, app in routes]
        self.routes = sorted(table, key=lambda route: len(route[0]), reverse=True)
        self.unmatched = unmatched

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        try:
            name, app = self.match(path)
        except GatewayError as err:
            return err(environ, start_response)
        context_of(environ).api = name
        return app(environ, start_response)

    def match(self, path: str) -> tuple[str | None, Callable]:
        """The API name and app for ``path``; raises NotFound or BadRequest."""
        if "/." in path and _has_dot_segment(path):
            raise BadRequest("the path contains '.' or '..' segments")
        if "//" in path:  # /v1//admin would route to /v1 and reach /v1/admin if the upstream collapses it
            raise BadRequest("the path contains an empty segment (//)")
        for prefix, name, app in self.routes:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"
                                            or not prefix):
                return name, app
        if self.unmatched is not None:
            return None, self.unmatched
        raise NotFound("no API is served at this path")


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))
