"""What the request body and the response body may do wrong, made explicit.

:class:`GuardedInput` wraps ``wsgi.input`` once, at the outermost layer: whoever reads
the body (an authenticator hashing it, the wrapped app) gets a
:class:`~wsgi_gateway.errors.BodyReadError` (400) for bad chunked framing, a body
shorter than its ``Content-Length`` or a client that went away, instead of whatever
the server raises (gunicorn raises ``InvalidChunkSize``, ``NoMoreData`` ... which
became 500s with a traceback).

:class:`ResponseAborted` is what the gateway raises to the server when a response
fails after its first bytes went out: an ``ECONNRESET`` the server treats as a
vanished client, closing the connection without a traceback of its own (the gateway
has logged the failure once, with the request ID).
"""

from __future__ import annotations

import errno
import sys

from ..errors import BodyReadError


class ResponseAborted(ConnectionResetError):
    """The response failed mid-stream; the server should drop the connection quietly."""

    def __init__(self):
        super().__init__(errno.ECONNRESET, "response aborted mid-stream (logged by the gateway)")


def _client_fault(exc: BaseException) -> bool:
    """True when a read error is the client's: an OSError, or gunicorn's parse errors.

    gunicorn is not imported here: if it serves us it is loaded, and its errors are
    looked up only when a read fails (never on the hot path).
    """
    if isinstance(exc, OSError):
        return True
    parse = getattr(sys.modules.get("gunicorn.http.errors"), "ParseException", None)
    return parse is not None and isinstance(exc, parse)


class GuardedInput:
    """``wsgi.input`` whose read errors are :class:`BodyReadError`.

    :param stream: the server's input stream.
    :param content_length: the announced length, if any: reaching the end of the
        stream before it is a short body.

    After the first failure every read raises the same error (the stream position is
    unknown). ``error`` holds it for the request log.
    """

    __slots__ = ("_stream", "_remaining", "error")

    def __init__(self, stream, content_length: int | None):
        self._stream = stream
        self._remaining = content_length
        self.error: BodyReadError | None = None

    def read(self, size: int | None = -1) -> bytes:
        data = self._call(self._stream.read, size)
        self._account(data, whole=size is None or size < 0, asked=size != 0)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call(self._stream.readline, size)
        self._account(data, whole=False, asked=size != 0)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def _call(self, read, size):
        if self.error is not None:
            raise self.error
        try:
            return read() if size is None or size < 0 else read(size)
        except Exception as exc:
            if not _client_fault(exc):
                raise
            self.error = BodyReadError(type(exc).__name__)
            raise self.error from None

    def _account(self, data: bytes, *, whole: bool, asked: bool) -> None:
        if self._remaining is None:
            return
        self._remaining -= len(data)
        if self._remaining > 0 and (whole or (asked and not data)):
            self.error = BodyReadError("short body")
            raise self.error


def guard_input(environ: dict) -> GuardedInput | None:
    """Wrap ``environ['wsgi.input']`` in place; the guard, or None without a stream."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return None
    length = environ.get("CONTENT_LENGTH")
    try:
        announced = int(length) if length and "HTTP_TRANSFER_ENCODING" not in environ else None
    except ValueError:
        announced = None
    guard = environ["wsgi.input"] = GuardedInput(stream, announced)
    return guard
