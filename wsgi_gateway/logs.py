"""One logging setup: text or JSON lines, and the request log line.

The request log carries the request ID, API, method, path without its query,
status, latency and the identity's alias. It never carries a query string, a header
value, a token or a secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config.model import LoggingConfig
    from .context import RequestContext

access = logging.getLogger("wsgi_gateway.access")
_FIELDS = ("request_id", "api", "method", "path", "status", "ms", "identity", "auth", "decision")


class _CachedTime(logging.Formatter):
    """Formats the time once per second: strftime dominated the cost of a log line."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"


class TextFormatter(_CachedTime):
    """``time level logger message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {record.getMessage()}"
        fields = getattr(record, "gw", None)
        if fields:  # quote what a client can influence; the rest is known to be plain
            line += " " + " ".join(f"{k}={v if k in _PLAIN_FIELDS else _text(v)}"
                                   for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(_CachedTime):
    """One JSON object per line: time, level, logger, message, and the request fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "gw", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(config: "LoggingConfig", stream=None) -> None:
    """Send the gateway's logs to ``stream`` (stderr) in the configured format."""
    logger = logging.getLogger("wsgi_gateway")
    for handler in list(logger.handlers):
        if getattr(handler, "_wsgi_gateway", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._wsgi_gateway = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(config.level)
    logger.propagate = False


def log_request(ctx: "RequestContext", environ: dict, status: str, seconds: float) -> None:
    """Write the request log line for one finished request."""
    if not access.isEnabledFor(logging.INFO):
        return
    identity = ctx.identity
    fields = {
        "request_id": ctx.request_id,              # validated or generated
        "api": ctx.api or "-",                     # a config name
        "method": environ.get("REQUEST_METHOD", "-"),
        "path": environ.get("PATH_INFO", "") or "/",
        "status": status.split(" ", 1)[0],
        "ms": round(seconds * 1000, 2),
        "identity": identity.alias if identity else "-",
        "auth": identity.method if identity else "-",
        "decision": ctx.decision or "-",
    }
    # makeRecord + handle skips the caller lookup logger.info would do on every request
    access.handle(access.makeRecord(access.name, logging.INFO, "", 0, "request", (), None,
                                    extra={"gw": fields}))


_PLAIN_FIELDS = frozenset({"request_id", "api", "status", "ms", "decision", "auth"})
_PLAIN = re.compile(r'[^\s"=\\]+\Z')


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.match(text) and text.isprintable():
        return text
    return json.dumps(text)
