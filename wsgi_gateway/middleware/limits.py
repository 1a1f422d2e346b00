"""Limits: rate limits and quotas for an identified, allowed request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..context import context_of
from ..errors import GatewayError

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..context import RequestContext


class Limiter(Protocol):
    """Counts a request against its limits.

    ``check`` returns the rate-limit response headers to send, or raises
    TooManyRequests (429) when a limit is spent.
    """

    def check(self, ctx: "RequestContext", request: "Request") -> list[tuple[str, str]]: ...


class NoLimits:
    """The limiter of an API without limits."""

    def check(self, ctx: "RequestContext", request: "Request") -> list[tuple[str, str]]:
        return []


class Limits:
    """Applies a :class:`Limiter`; a request over its limit never reaches the upstream.

    :param app: the WSGI app to wrap.
    :param limiter: counts requests and says when a limit is spent.
    """

    def __init__(self, app: Callable, *, limiter: Limiter):
        self.app = app
        self.limiter = limiter

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        try:
            headers = self.limiter.check(ctx, ctx.request(environ))
        except GatewayError as err:
            ctx.decision = "limited"
            return err(environ, start_response)
        if not headers:
            return self.app(environ, start_response)

        def respond(status, response_headers, exc_info=None):
            return start_response(status, [*response_headers, *headers], exc_info)

        return self.app(environ, respond)
