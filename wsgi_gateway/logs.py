"""One logging setup: text or JSON lines, and the request log line.

The request log carries the request ID, API, method, path without its query,
status, latency and the identity's alias. It never carries a query string, a header
value, a token or a secret.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config.model import LoggingConfig
    from .context import RequestContext

access = logging.getLogger("wsgi_gateway.access")
_FIELDS = ("request_id", "api", "method", "path", "status", "ms", "identity", "decision")


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...``"""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "gw", None)
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        return line


class JsonFormatter(logging.Formatter):
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
        "request_id": ctx.request_id,
        "api": ctx.api or "-",
        "method": environ.get("REQUEST_METHOD", "-"),
        "path": environ.get("PATH_INFO", "") or "/",
        "status": status.split(" ", 1)[0],
        "ms": round(seconds * 1000, 2),
        "identity": identity.alias if identity else "-",
        "decision": ctx.decision or "-",
    }
    access.info("request", extra={"gw": fields})


def _text(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text
