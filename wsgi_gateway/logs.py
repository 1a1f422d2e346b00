"""One logging setup: text or JSON lines, and the request log line.

Every line carries an RFC 3339 UTC time (``2026-12-04T16:35:00.123Z``); a line written
while a request is served carries its request ID, whoever wrote it (the gateway, the
wrapped app, gunicorn). In JSON mode each line is one object, a traceback included
(as the ``exception`` field); :func:`gunicorn_logconfig` gives gunicorn's own loggers
the same format.

The request log carries the request ID, API, method, path without its query, status
(a number), duration and bytes sent (measured when the body has been sent), and the
identity's alias. It never carries a query string, a header value, a token or a secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config.model import LoggingConfig
    from .context import RequestContext

access = logging.getLogger("wsgi_gateway.access")

current_request_id: ContextVar[str | None] = ContextVar("wsgi_gateway_request_id", default=None)
"""The request ID of the request this thread serves; set by the RequestContext layer."""


class _UtcTime(logging.Formatter):
    """RFC 3339 UTC times, the date part formatted once per second (strftime dominated
    the cost of a log line)."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """``created`` (epoch seconds) as RFC 3339 UTC with milliseconds."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    @staticmethod
    def fields(record: logging.LogRecord) -> dict:
        """The record's structured fields, with the current request ID when it has none."""
        fields = getattr(record, "gw", None)
        if fields is None:
            fields = _gunicorn_access(record) if record.name == "gunicorn.access" else {}
            request_id = current_request_id.get()
            if request_id is not None and "request_id" not in fields:
                fields = {"request_id": request_id, **fields}
        return fields


class TextFormatter(_UtcTime):
    """``time level logger message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(self.formatTime(record), record.levelname, record.name,
                         record.getMessage(), self.fields(record))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    @staticmethod
    def line(when: str, level: str, name: str, message: str, fields: Mapping) -> str:
        """One line without a traceback."""
        line = f"{when} {level} {name} {message}"
        if fields:  # quote what a client can influence; the rest is known to be plain
            line += " " + " ".join([f"{k}={v if k in _PLAIN_FIELDS else _text(v)}"
                                    for k, v in fields.items()])
        return line


class JsonFormatter(_UtcTime):
    """One JSON object per line: time, level, logger, message, the request fields, and
    ``exception`` (the traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        out.update(self.fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)

    @staticmethod
    def line(when: str, level: str, name: str, message: str, fields: Mapping) -> str:
        """One line without a traceback."""
        return _ENCODER.encode({"time": when, "level": level, "logger": name, "message": message,
                                **fields})


def configure_logging(config: "LoggingConfig", stream=None) -> None:
    """Send the gateway's logs to ``stream`` (stderr) in the configured format.

    In JSON mode the root logger (the wrapped app's logs, Python warnings) writes JSON
    too, unless something already configured it.
    """
    logger = logging.getLogger("wsgi_gateway")
    for handler in list(logger.handlers):
        if getattr(handler, "_wsgi_gateway", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._wsgi_gateway = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    logger.addHandler(handler)
    _Direct.handler = handler
    logger.setLevel(config.level)
    logger.propagate = False
    if config.format == "json" and stream is None:
        logging.captureWarnings(True)
        if not logging.root.handlers:
            logging.root.addHandler(handler)


def gunicorn_logconfig(config: "LoggingConfig", *, access_lines: bool) -> dict:
    """gunicorn's ``logconfig_dict`` for JSON mode: its error and access loggers, and the
    root logger, write the gateway's JSON lines to stderr.

    :param access_lines: keep gunicorn's own access line (the operator set ``accesslog``);
        otherwise the gateway's request line is the access log and gunicorn's is muted.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "wsgi_gateway.logs.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                              "stream": "ext://sys.stderr"}},
        "root": {"level": config.level, "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "propagate": False},
            "gunicorn.access": {"handlers": ["json"], "propagate": False,
                                "level": "INFO" if access_lines else "WARNING"},
        },
    }


def log_request(ctx: "RequestContext", environ: dict, status: str | None, seconds: float,
                sent: int | None = None, *, error: str | None = None,
                exc_info=None, level: int = logging.INFO, message: str = "request") -> None:
    """Write the request log line for one finished request.

    ``error`` is the problem code answered (or ``aborted`` when the connection was cut
    mid-stream); ``exc_info`` puts a traceback on the line itself, so a failure is
    logged once, with the request ID.
    """
    if not access.isEnabledFor(level):
        return
    identity = ctx.identity
    fields = {
        "request_id": ctx.request_id,              # validated or generated
        "api": ctx.api or "-",                     # a config name
        "method": environ.get("REQUEST_METHOD", "-"),
        "path": environ.get("PATH_INFO", "") or "/",
        "status": int(status[:3]) if status and status[:3].isdigit() else 0,
        "ms": round(seconds * 1000, 2),
        "bytes": sent if sent is not None else -1,
        "identity": identity.alias if identity else "-",
        "auth": identity.method if identity else "-",
        "decision": ctx.decision or "-",
    }
    if ctx.trace is not None:  # W3C trace ID: joins this line to the trace
        fields["trace_id"] = ctx.trace.trace_id
    if ctx.upstream is not None:  # a URL upstream: the target (an operator's own address)
        fields.update(upstream=ctx.upstream.target, upstream_status=ctx.upstream.status,
                      upstream_ms=round(ctx.upstream.seconds * 1000, 2))
    if error is not None:
        fields["error"] = error
    if exc_info is None and level == logging.INFO and _Direct.write(message, fields):
        return
    # makeRecord + handle skips the caller lookup logger.info would do on every request
    access.handle(access.makeRecord(access.name, level, "", 0, message, (), exc_info,
                                    extra={"gw": fields}))


class _Direct:
    """The request line straight to the stream of the handler :func:`configure_logging`
    installed, without a ``LogRecord``: the same text as the handler would write, for a
    third of the cost (the record, the logger and handler dispatch were two thirds of a
    request line's 20 µs).

    Taken only while that handler is the line's only destination, exactly as configured:
    no handler or filter added to the access logger, the ``wsgi_gateway`` logger or the
    handler since. Anything else (a test's caplog, an operator's own handlers, a line
    with a traceback) goes through ``logging`` as before.
    """

    handler: logging.StreamHandler | None = None

    @classmethod
    def write(cls, message: str, fields: dict) -> bool:
        handler = cls.handler
        parent = access.parent
        if handler is None or access.handlers or access.filters or not access.propagate \
                or access.disabled or parent is None or parent.filters or parent.disabled \
                or len(parent.handlers) != 1 or parent.handlers[0] is not handler \
                or handler.filters or handler.level > logging.INFO:
            return False
        formatter = handler.formatter
        if type(formatter) not in (TextFormatter, JsonFormatter):
            return False
        line = formatter.line(formatter.stamp(time.time()), "INFO", access.name, message, fields)
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(line + handler.terminator)
            stream.flush()
        except (OSError, ValueError):
            return False  # logging's own path reports it (Handler.handleError)
        finally:
            handler.release()
        return True


def _gunicorn_access(record: logging.LogRecord) -> dict:
    """gunicorn's access atoms as fields (numeric status), when it passed them."""
    atoms = record.args
    if not isinstance(atoms, Mapping):
        return {}
    status = str(atoms.get("s", ""))
    return {"remote": atoms.get("h", "-"), "method": atoms.get("m", "-"),
            "path": atoms.get("U", "-"), "status": int(status) if status.isdigit() else 0,
            "bytes": _int(atoms.get("B")), "ms": round(_int(atoms.get("D")) / 1000, 2)}


def _int(value: object) -> int:
    text = str(value)
    return int(text) if text.isdigit() else 0


_PLAIN_FIELDS = frozenset({"request_id", "api", "status", "ms", "bytes", "decision", "auth",
                           "error", "upstream", "upstream_status", "upstream_ms", "trace_id"})
_ENCODER = json.JSONEncoder(default=str)
_PLAIN = re.compile(r'[^\s"=\\]+\Z')


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.match(text) and text.isprintable():
        return text
    return json.dumps(text)
