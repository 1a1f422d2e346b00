"""RequestContext: the outermost layer. Request ID, the error boundary, the request log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..context import ENVIRON_KEY, RequestContext
from ..errors import GatewayError, InternalError
from ..logs import log_request
from ..mutate.strip import TrustedProxies
from ..requestid import accept_request_id, new_request_id

log = logging.getLogger("wsgi_gateway")


class RequestContextMiddleware:
    """Gives each request its :class:`~wsgi_gateway.context.RequestContext`.

    :param app: the WSGI app to wrap.
    :param request_id_header: the header carrying the request ID, in and out; the ID
        is passed upstream under the same name and returned to the client.
    :param trust_incoming: accept a well-formed incoming ID instead of always
        generating one: True from anyone, or only from these trusted proxies
        (``REMOTE_ADDR``); False never.
    :param access_log: write one log line per request.

    Any :class:`~wsgi_gateway.errors.GatewayError` that escapes the inner layers is
    rendered as problem+json; any other exception is logged with the request ID and
    answered with a bare 500 problem (never a trace).
    """

    def __init__(self, app: Callable, *, request_id_header: str = "X-Request-Id",
                 trust_incoming: "bool | TrustedProxies" = False, access_log: bool = True):
        self.app = app
        self.header = request_id_header
        self.environ_key = "HTTP_" + request_id_header.upper().replace("-", "_")
        self.trust_incoming = trust_incoming
        self.access_log = access_log

    def __call__(self, environ, start_response):
        incoming = environ.get(self.environ_key) if self._trusted(environ) else None
        ctx = RequestContext(request_id=accept_request_id(incoming) if incoming else new_request_id())
        environ[ENVIRON_KEY] = ctx
        environ[self.environ_key] = ctx.request_id
        response = _Response(start_response, self.header, ctx.request_id)
        try:
            result = self.app(environ, response.start_response)
        except GatewayError as err:
            return self._fail(err, ctx, response)
        except Exception:
            log.exception("unexpected error request_id=%s", ctx.request_id)
            return self._fail(InternalError(), ctx, response)
        else:
            response.flush()
            return result
        finally:
            if self.access_log:
                log_request(ctx, environ, response.status or "-",
                            time.perf_counter() - ctx.started)

    def _trusted(self, environ: dict) -> bool:
        trust = self.trust_incoming
        return trust if isinstance(trust, bool) else environ.get("REMOTE_ADDR") in trust

    @staticmethod
    def _fail(err: GatewayError, ctx: RequestContext, response: "_Response") -> list[bytes]:
        status, headers, body = err.render(ctx.request_id)
        response.replace(status, headers)
        return [body]


class _Response:
    """Holds the inner app's status and headers until it returns, then passes them on.

    So an error raised after the inner app called ``start_response`` can still replace
    the response cleanly (gunicorn would append the error's headers to the first
    ones). An app that calls ``start_response`` late, on the first iteration of its
    body, or uses the ``write`` callable, is passed straight through.
    """

    __slots__ = ("_start_response", "_header", "_request_id", "status", "_headers",
                 "_deferring", "_write")

    def __init__(self, start_response, header: str, request_id: str):
        self._start_response = start_response
        self._header, self._request_id = header, request_id
        self.status: str | None = None
        self._headers: list = []
        self._deferring = True
        self._write = None

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self._write is not None:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: already sent
        self.status, self._headers = status, headers
        if not self._deferring:
            return self._send(exc_info)
        return self.write

    def write(self, data: bytes) -> None:
        self.flush()
        self._write(data)

    def replace(self, status: str, headers: list) -> None:
        """Answer with this response instead (only while nothing was passed on)."""
        if self._write is not None:
            raise  # noqa: PLE0704 - headers already passed on: let the server abort
        self.status, self._headers = status, headers
        self.flush()

    def flush(self) -> None:
        """Pass the held response on; later start_response calls go straight through."""
        self._deferring = False
        if self.status is not None and self._write is None:
            self._send(None)

    def _send(self, exc_info):
        lowered = self._header.lower()
        headers = [h for h in self._headers if h[0].lower() != lowered]
        headers.append((self._header, self._request_id))
        self._write = self._start_response(self.status, headers, exc_info)
        return self._write
