"""RequestContext: the outermost layer. Request ID, the error boundary, the request log."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from ..context import ENVIRON_KEY, RequestContext
from ..errors import GatewayError, InternalError
from ..logs import log_request
from ..requestid import accept_request_id, new_request_id

log = logging.getLogger("wsgi_gateway")


class RequestContextMiddleware:
    """Gives each request its :class:`~wsgi_gateway.context.RequestContext`.

    :param app: the WSGI app to wrap.
    :param request_id_header: the header carrying the request ID, in and out; the ID
        is passed upstream under the same name and returned to the client.
    :param trust_incoming: accept a well-formed incoming ID instead of always
        generating one.
    :param access_log: write one log line per request.

    Any :class:`~wsgi_gateway.errors.GatewayError` that escapes the inner layers is
    rendered as problem+json; any other exception is logged with the request ID and
    answered with a bare 500 problem (never a trace).
    """

    def __init__(self, app: Callable, *, request_id_header: str = "X-Request-Id",
                 trust_incoming: bool = True, access_log: bool = True):
        self.app = app
        self.header = request_id_header
        self.environ_key = "HTTP_" + request_id_header.upper().replace("-", "_")
        self.trust_incoming = trust_incoming
        self.access_log = access_log

    def __call__(self, environ, start_response):
        incoming = environ.get(self.environ_key) if self.trust_incoming else None
        ctx = RequestContext(request_id=accept_request_id(incoming) if incoming else new_request_id())
        environ[ENVIRON_KEY] = ctx
        environ[self.environ_key] = ctx.request_id
        status_seen: list[str] = []

        def respond(status, headers, exc_info=None):
            status_seen[:] = [status]
            headers = [h for h in headers if h[0].lower() != self.header.lower()]
            headers.append((self.header, ctx.request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, respond)
        except GatewayError as err:
            return self._fail(err, environ, respond, status_seen)
        except Exception:
            log.exception("unexpected error request_id=%s", ctx.request_id)
            return self._fail(InternalError(), environ, respond, status_seen)
        finally:
            if self.access_log:
                log_request(ctx, environ, status_seen[0] if status_seen else "-",
                            time.perf_counter() - ctx.started)

    @staticmethod
    def _fail(err: GatewayError, environ, respond, status_seen) -> list[bytes]:
        status, headers, body = err.render(environ[ENVIRON_KEY].request_id)
        # After the inner app called start_response, PEP 3333 lets us replace the
        # response only with exc_info (it re-raises if headers were already sent).
        respond(status, headers, sys.exc_info() if status_seen else None)
        return [body]
