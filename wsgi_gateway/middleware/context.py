"""RequestContext: the outermost layer. Request ID, the error boundary, the request log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..context import ENVIRON_KEY, RequestContext
from ..errors import BodyReadError, GatewayError, InternalError
from ..logs import current_request_id, log_request
from ..mutate.strip import TrustedProxies
from ..requestid import accept_request_id, new_request_id
from .body import GuardedInput, ResponseAborted, guard_input

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
    :param clock: a monotonic clock in seconds, for the request's duration.
    :param observe: called once per request as the request line is written, with
        (ctx, environ, status, seconds, ended): metrics and the audit log
        (:class:`~wsgi_gateway.observe.Observer`); None for nothing.

    Any :class:`~wsgi_gateway.errors.GatewayError` that escapes the inner layers is
    rendered as problem+json; any other exception is answered with a bare 500 problem
    (never a trace) and logged, with its traceback and the request ID, on the request's
    log line. ``wsgi.input`` is wrapped so that a body that cannot be read is a 400
    (:class:`~wsgi_gateway.middleware.body.GuardedInput`). The request line is written
    when the server closes the response, so its duration and byte count are those of
    the whole body; a body that fails after its first bytes went out cuts the
    connection and is logged once, on that line.
    """

    def __init__(self, app: Callable, *, request_id_header: str = "X-Request-Id",
                 trust_incoming: "bool | TrustedProxies" = False, access_log: bool = True,
                 clock: Callable[[], float] = time.perf_counter,
                 observe: Callable | None = None):
        self.app = app
        self.header = request_id_header
        self.environ_key = "HTTP_" + request_id_header.upper().replace("-", "_")
        self.trust_incoming = trust_incoming
        self.access_log = access_log
        self.clock = clock
        self.observe = observe

    def __call__(self, environ, start_response):
        incoming = environ.get(self.environ_key) if self._trusted(environ) else None
        ctx = RequestContext(request_id=accept_request_id(incoming) if incoming else new_request_id(),
                             started=self.clock())
        environ[ENVIRON_KEY] = ctx
        environ[self.environ_key] = ctx.request_id
        current_request_id.set(ctx.request_id)
        body = _Body(self, ctx, environ, _Response(start_response, self.header, ctx.request_id),
                     guard_input(environ))
        try:
            body.result = self.app(environ, body.response.start_response)
        except GatewayError as err:
            body.answer(err)
        except Exception as exc:
            body.answer(InternalError(), failure=exc)
        return body.sendable()

    def _trusted(self, environ: dict) -> bool:
        trust = self.trust_incoming
        return trust if isinstance(trust, bool) else environ.get("REMOTE_ADDR") in trust


class _Body:
    """The response body as the server sees it: passes the inner body on, counts its
    bytes, turns a failure into a problem (before the first byte) or a quiet abort
    (after), and writes the request line when the server closes it."""

    __slots__ = ("layer", "ctx", "environ", "response", "guard", "result", "sent", "error",
                 "failure", "aborted", "closed")

    def __init__(self, layer: RequestContextMiddleware, ctx: RequestContext, environ: dict,
                 response: "_Response", guard: GuardedInput | None):
        self.layer, self.ctx, self.environ = layer, ctx, environ
        self.response, self.guard = response, guard
        self.result = ()
        self.sent = 0
        self.error: GatewayError | None = None
        self.failure: BaseException | None = None
        self.aborted = False
        self.closed = False

    def answer(self, err: GatewayError, failure: BaseException | None = None) -> None:
        """Answer with ``err`` instead (nothing was passed on yet)."""
        self.error, self.failure = err, failure
        status, headers, data = err.render(self.ctx.request_id)
        self.response.replace(status, headers)
        self.result = [data]

    def sendable(self):
        """What the server gets: this object, or the app's file wrapper made to log."""
        wrapper = self.environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(self.result, wrapper):  # keep sendfile
            self.response.flush()
            inner_close = getattr(self.result, "close", None)
            try:
                self.result.close = lambda: self._close(inner_close)
            except AttributeError:  # a wrapper with __slots__: no sendfile, still logged
                return self
            self.sent = None  # sent by the server, unseen: logged as -1
            return self.result
        return self

    def __iter__(self):
        response = self.response
        try:
            for chunk in self.result:
                if response.pending:
                    response.flush()
                self.sent += len(chunk)
                yield chunk
            response.flush()
        except Exception as exc:  # the body failed: answer with a problem, or cut it
            err = exc if isinstance(exc, GatewayError) else InternalError()
            if not response.pending:
                self.error, self.failure, self.aborted = err, exc, True
                raise ResponseAborted() from None
            self.answer(err, None if isinstance(exc, GatewayError) else exc)
            response.flush()
            yield self.result[0]

    def close(self) -> None:
        self._close(getattr(self.result, "close", None))

    def _close(self, inner_close) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if inner_close is not None:
                inner_close()
        finally:
            self._log()
            current_request_id.set(None)

    def _observe(self, ended: float) -> None:
        observe = self.layer.observe
        if observe is not None:
            observe(self.ctx, self.environ, self.response.status, ended - self.ctx.started, ended)

    def _log(self) -> None:
        err = self.error or (self.guard.error if self.guard else None)
        ended = self.layer.clock()
        if err is not None and self.ctx.problem is None:
            self.ctx.problem = err.code
        self._observe(ended)
        if not (self.layer.access_log or self.failure or isinstance(err, BodyReadError)):
            return
        level, message, code, exc_info = self._outcome(err)
        log_request(self.ctx, self.environ, self.response.status,
                    ended - self.ctx.started, self.sent, error=code,
                    exc_info=exc_info, level=level, message=message)

    def _outcome(self, err: GatewayError | None):
        """(level, message, error code, exc_info) of the request line."""
        code = None if err is None else err.code
        if isinstance(err, BodyReadError):
            code = f"{err.code}:{err.cause}"
        failure = self.failure
        unexpected = failure is not None and not isinstance(failure, GatewayError)
        exc_info = (type(failure), failure, failure.__traceback__) if unexpected else None
        level = logging.ERROR if unexpected else logging.INFO
        if not self.aborted:
            return level, "request failed" if unexpected else "request", code, exc_info
        # cut mid-stream; the cause stays readable: aborted:bad_request_body:NoMoreData
        code = "aborted" if unexpected or code is None else f"aborted:{code}"
        return level, "response aborted mid-stream", code, exc_info


class _Response:
    """Holds the inner app's status and headers until its first body chunk, then passes
    them on.

    So an error raised after the inner app called ``start_response``, even while its
    body is first iterated, can still replace the response cleanly (gunicorn would
    append the error's headers to the first ones). An app that uses the ``write``
    callable is passed straight through.
    """

    __slots__ = ("_start_response", "_header", "_request_id", "status", "_headers",
                 "_deferring", "_write")

    @property
    def pending(self) -> bool:
        """Nothing was passed on to the server yet: the response can still be replaced."""
        return self._write is None

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
