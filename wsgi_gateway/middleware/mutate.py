"""Mutate: the last layer before the upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..authn.credentials import CredentialPlaces
from ..context import context_of
from ..mutate.headers import drop_cookies, drop_headers, drop_query, environ_key, inject_headers
from ..mutate.strip import ClientHeaderStrip


class Mutate:
    """Shapes what the upstream receives.

    :param app: the upstream WSGI app.
    :param strip_auth: remove the client's credentials before the upstream.
    :param credentials: where the API's methods read credentials (headers, cookies,
        query parameters); all of them are removed when ``strip_auth`` is set.
        ``Authorization`` always is.
    :param drop: client headers never forwarded, e.g. ``X-Forwarded-User``.
    :param strip: the gateway-wide list (identity, injected and proxy headers), the same
        object on every route; None for a Mutate used alone.

    Every header the gateway injects (``ctx.upstream_headers``) is first removed from
    the client's request, so a client can never supply it.
    """

    def __init__(self, app: Callable, *, strip_auth: bool = True,
                 credentials: CredentialPlaces = CredentialPlaces(), drop: Iterable[str] = (),
                 strip: ClientHeaderStrip | None = None):
        self.app = app
        self.strip = strip
        places = credentials | CredentialPlaces(headers=("Authorization",)) if strip_auth \
            else CredentialPlaces()
        self.drop_keys = tuple(dict.fromkeys(environ_key(h) for h in [*places.headers, *drop]))
        self.cookies = frozenset(places.cookies)
        self.query = frozenset(places.query)

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        if self.strip is not None:
            self.strip.apply(environ)
        drop_headers(environ, self.drop_keys)
        if self.cookies and "HTTP_COOKIE" in environ:
            drop_cookies(environ, self.cookies)
        if self.query and environ.get("QUERY_STRING"):
            drop_query(environ, self.query)
        if ctx.upstream_headers:
            drop_headers(environ, map(environ_key, ctx.upstream_headers))
            inject_headers(environ, ctx.upstream_headers)
        if self.strip is not None and self.strip.cookies:
            start_response = _without_set_cookies(start_response, self.strip.cookies)
        return self.app(environ, start_response)


def _without_set_cookies(start_response: Callable, names: frozenset[str]) -> Callable:
    """An upstream may not set the gateway's own cookies (a browser session's handle): it
    could put the browser into a session of its choosing, or sign it out."""
    def filtered(status, headers, exc_info=None):
        kept = [(k, v) for k, v in headers if k.lower() != "set-cookie"
                or v.split("=", 1)[0].strip() not in names]
        return start_response(status, kept, exc_info) if exc_info else start_response(status, kept)
    return filtered
