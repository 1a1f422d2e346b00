"""The reverse proxy: a WSGI app that forwards to an API's URL targets, streaming.

It stands where the wrapped app stands, inside the Mutate layer, so what reaches a URL
upstream was decided by the same code path as for ``app`` (strip list, credential
stripping, identity headers). Bodies are streamed both ways in 64 KiB pieces: a 1 GiB
upload or download holds one piece in memory, not the body.

Failures are answers: connection refused, reset or a TLS failure → 502
``upstream_unreachable``; a connect or read timeout → 504; a malformed answer → 502
``bad_upstream_response``; every target skipped → 503 at once. Problem details name
the API, never the target (``expose_target`` allows it). A failure after the first
body bytes went out cuts the client connection (the request log says ``aborted``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from http import HTTPStatus

from urllib3.exceptions import (
    ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError, SSLError,
)
from urllib3.util import SKIP_HEADER

from ..config.upstream import UpstreamConfig
from ..context import UpstreamCall, context_of
from ..errors import (
    BadUpstreamResponse, GatewayError, GatewayTimeout, PayloadTooLarge, UpgradeNotSupported,
    UpstreamUnavailable, UpstreamUnreachable,
)
from .forward import raw_path, request_headers, response_headers, upstream_path
from .pool import Pools
from .targets import AllTargetsDown, Target, TargetSet

CHUNK = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")


class ReverseProxy:
    """Forwards an API's requests to its targets.

    :param api: the API's name, for problem details and the trail.
    :param prefix: the API's path prefix (removed upstream with ``strip_path``).
    :param config: the API's upstream config.
    :param targets: balancing and passive health (made from ``config`` by default).
    :param pools: the per-worker connection pools (made from ``config`` by default).
    :param clock: seconds, for the upstream time in the log and trail.
    """

    def __init__(self, api: str, prefix: str, config: UpstreamConfig, *,
                 targets: TargetSet | None = None, pools: Pools | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.api, self.prefix, self.config = api, prefix, config
        self.targets = targets or TargetSet(config.targets, balance=config.balance,
                                            health=config.health)
        self.pools = pools or Pools(config)
        self.clock = clock

    def __call__(self, environ, start_response):
        try:
            return self._forward(environ, start_response)
        except GatewayError as err:
            return err(environ, start_response)

    def _forward(self, environ, start_response):
        length = self._admit(environ)
        body = _RequestBody(environ.get("wsgi.input"), length, self.config.max_body) \
            if length or "HTTP_TRANSFER_ENCODING" in environ else None
        response, target, started = self._send(environ, environ["REQUEST_METHOD"],
                                               raw_path(environ), environ.get("QUERY_STRING", ""),
                                               length, body)
        self._note(environ, target, started, str(response.status), response.status)
        try:
            headers = _answer_headers(response)
        except BadUpstreamResponse:
            response.close()
            response.release_conn()
            self.targets.done(target, ok=False)
            raise
        start_response(f"{response.status} {_reason(response)}", headers)
        return _ResponseBody(self, response, target)

    def _admit(self, environ) -> int | None:
        """The announced body length, after refusing what cannot be forwarded."""
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            raise UpgradeNotSupported("WebSocket upgrades are not proxied (sync WSGI workers "
                                      "cannot hold a two-way stream)")
        length = _content_length(environ)
        if length is not None and length > self.config.max_body:
            raise PayloadTooLarge(f"the request body exceeds {self.config.max_body} bytes")
        return length

    def _send(self, environ, method, raw, query, length, body):
        """The upstream response (headers read), trying another target only when a
        connect failed, the method is idempotent and no body byte was read."""
        tried: list[Target] = []
        while True:
            try:
                target = self.targets.choose(tried)
            except AllTargetsDown as down:
                raise UpstreamUnavailable(f"every upstream target of API {self.api!r} is "
                                          "failing", retry_after=down.retry_after) from None
            tried.append(target)
            started = self.clock()
            try:
                return self._open(environ, target, method, raw, query, length, body), target, started
            except HTTPError as exc:
                self.targets.done(target, ok=False)
                error = self._error(exc, target)
                self._note(environ, target, started, error.code)
                retry = (isinstance(exc, ConnectTimeoutError) and method in IDEMPOTENT
                         and (body is None or not body.started)
                         and len(tried) <= self.config.retries and self.targets.another(tried))
                if not retry:
                    raise error from None
            except BaseException:
                self.targets.done(target, ok=True)  # the client's fault (body), not the target's
                raise

    def _note(self, environ, target: Target, started: float, outcome: str, status: int = 0):
        """The exchange in the trail and (the last one) on the request line."""
        ctx = context_of(environ)
        ctx.upstream = UpstreamCall(target.url, status, self.clock() - started)
        ctx.record("upstream", self.api, outcome, f"{target.url} {ctx.upstream.seconds * 1000:.1f} ms")

    def _open(self, environ, target: Target, method, raw, query, length, body):
        path = upstream_path(raw, self.prefix, target, strip=self.config.strip_path)
        headers = request_headers(environ, target, preserve_host=self.config.preserve_host,
                                  strip_prefix=self.prefix if self.config.strip_path else None)
        headers.setdefault("User-Agent", SKIP_HEADER)  # send the client's, or none
        headers.setdefault("Accept-Encoding", SKIP_HEADER)
        if length is not None:
            headers["Content-Length"] = str(length)
        pool = self.pools.pool(target.origin)
        return pool.urlopen(method, path + ("?" + query if query else ""), body=body,
                            headers=headers, redirect=False, retries=False,
                            preload_content=False, decode_content=False,
                            chunked=body is not None and length is None,
                            assert_same_host=False)

    def _error(self, exc: HTTPError, target: Target) -> GatewayError:
        """The problem for a failed exchange; it names the API, not the target."""
        where = f"API {self.api!r}" + (f" ({target.url})" if self.config.expose_target else "")
        if isinstance(exc, NewConnectionError):
            return UpstreamUnreachable(f"the upstream of {where} refused or failed the connection")
        if isinstance(exc, ConnectTimeoutError):
            return GatewayTimeout(f"the upstream of {where} did not accept the connection in time")
        if isinstance(exc, ReadTimeoutError):
            return GatewayTimeout(f"the upstream of {where} did not answer in time")
        if isinstance(exc, SSLError):
            return UpstreamUnreachable(f"TLS to the upstream of {where} failed")
        return BadUpstreamResponse(f"the upstream of {where} closed the connection or sent "
                                   "a malformed response")


class _RequestBody:
    """The client's body as an iterable of pieces, bounded by ``max_body``.

    ``started`` is set on the first read: after it, the body cannot be sent again.
    """

    def __init__(self, stream, length: int | None, max_body: int):
        self.stream, self.remaining, self.max_body = stream, length, max_body
        self.started = False
        self.sent = 0

    def __iter__(self):
        self.started = True
        while self.remaining is None or self.remaining > 0:
            size = CHUNK if self.remaining is None else min(CHUNK, self.remaining)
            data = self.stream.read(size)
            if not data:
                return
            self.sent += len(data)
            if self.remaining is not None:
                self.remaining -= len(data)
            if self.sent > self.max_body:
                raise PayloadTooLarge(f"the request body exceeds {self.max_body} bytes")
            yield data


class _ResponseBody:
    """The upstream's body, streamed; ``close()`` (the server calls it, also when the
    client went away) returns a fully read connection to the pool and closes any other,
    so a vanished client never leaves an upstream connection half read."""

    def __init__(self, proxy: ReverseProxy, response, target: Target):
        self.proxy, self.response, self.target = proxy, response, target
        self.finished = False
        self.failed = False
        self.closed = False

    def __iter__(self):
        read = self.response.read1
        try:
            while True:
                data = read(CHUNK)
                if not data:
                    self.finished = True
                    return
                yield data
        except HTTPError as exc:
            self.failed = True
            raise self.proxy._error(exc, self.target) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.finished:
            self.response.close()  # unread bytes: the connection cannot be reused
        self.response.release_conn()
        self.proxy.targets.done(self.target, ok=not self.failed)


def _content_length(environ: dict) -> int | None:
    """The announced length; None with chunked framing or no body announced."""
    value = environ.get("CONTENT_LENGTH")
    if not value or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    try:
        return int(value)
    except ValueError:  # gunicorn refuses these before the app runs
        return None


def _reason(response) -> str:
    if response.reason:
        return response.reason
    try:
        return HTTPStatus(response.status).phrase
    except ValueError:
        return "Unknown"


def _answer_headers(response) -> list[tuple[str, str]]:
    """The upstream's headers for the client, each one a WSGI server will send as it
    is (anything else is a malformed answer); a 204 loses any Content-Length (RFC 9110
    §8.6)."""
    headers = response_headers(response.headers.items())
    for name, value in headers:
        if not _TOKEN.match(name) or not _VALUE.match(value):
            raise BadUpstreamResponse("the upstream sent a malformed header")
    if response.status == 204:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    return headers
