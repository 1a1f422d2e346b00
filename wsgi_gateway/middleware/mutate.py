"""Mutate: the last layer before the upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..context import context_of
from ..mutate.headers import drop_headers, environ_key, inject_headers

CREDENTIAL_HEADERS = ("Authorization",)


class Mutate:
    """Shapes what the upstream receives.

    :param app: the upstream WSGI app.
    :param strip_auth: remove the client's credentials (``Authorization``, and what
        ``credential_headers`` adds) before the upstream.
    :param credential_headers: more headers that carry credentials for this API.
    :param drop: client headers never forwarded, e.g. ``X-Forwarded-User``.

    Every header the gateway injects (``ctx.upstream_headers``) is first removed from
    the client's request, so a client can never supply it.
    """

    def __init__(self, app: Callable, *, strip_auth: bool = True,
                 credential_headers: Iterable[str] = (), drop: Iterable[str] = ()):
        self.app = app
        stripped = [*CREDENTIAL_HEADERS, *credential_headers] if strip_auth else []
        self.drop_keys = tuple(dict.fromkeys(environ_key(h) for h in [*stripped, *drop]))

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        drop_headers(environ, self.drop_keys)
        if ctx.upstream_headers:
            drop_headers(environ, map(environ_key, ctx.upstream_headers))
            inject_headers(environ, ctx.upstream_headers)
        return self.app(environ, start_response)
