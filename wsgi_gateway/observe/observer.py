"""The one end-of-request hook: metrics and the audit line, from the context."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.model import GatewayConfig
    from ..context import RequestContext
    from .audit import AuditLog
    from .metrics import Metrics
    from .otel import Spans

log = logging.getLogger("wsgi_gateway")


class Observer:
    """Called by the RequestContext layer when the server closes a response.

    :param metrics: the metric families, or None when metrics are off.
    :param audit: the audit log, or None when it is off.
    :param spans: OpenTelemetry spans (``tracing.otel``), or None when off.

    A failure here is logged and swallowed: observing must never fail a request that
    was already answered.
    """

    def __init__(self, metrics: "Metrics | None", audit: "AuditLog | None",
                 spans: "Spans | None" = None):
        self.metrics, self.audit, self.spans = metrics, audit, spans

    def __call__(self, ctx: "RequestContext", environ: dict, status: str | None,
                 seconds: float, ended: float) -> None:
        code = int(status[:3]) if status and status[:3].isdigit() else 0
        method = environ.get("REQUEST_METHOD", "-")
        try:
            if self.metrics is not None:
                self.metrics.observe(ctx, method, code, seconds, ended)
            if self.audit is not None:
                self.audit.write(ctx, method, environ.get("PATH_INFO", "") or "/", code, seconds)
            if self.spans is not None:
                self.spans.record(ctx, method, code, seconds, ended)
        except Exception:  # noqa: BLE001 - the response is gone; keep serving
            log.exception("observing the request failed")

    def flush(self) -> None:
        """Write pending metric counts, audit lines and spans now (a scrape, an exit)."""
        if self.metrics is not None:
            self.metrics.flush()
        if self.audit is not None:
            self.audit.flush()
        if self.spans is not None:
            self.spans.flush()

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.audit is not None:
            self.audit.close()
        if self.spans is not None:
            self.spans.close()


def build_observer(config: "GatewayConfig", *, clock: Callable[[], float] = time.time) -> Observer | None:
    """The observer the config asks for, or None (then nothing runs per request)."""
    metrics = audit = spans = None
    if config.metrics.enabled:
        from .metrics import Metrics, default_dir

        metrics = Metrics(config.metrics, config.metrics.multiproc_dir or default_dir())
    if config.audit.enabled:
        from .audit import AuditLog

        audit = AuditLog(config.audit, clock=clock)
    if config.tracing.enabled and config.tracing.otel.enabled:
        spans = _spans(config)
    if metrics is None and audit is None and spans is None:
        return None
    return Observer(metrics, audit, spans)


def _spans(config: "GatewayConfig"):
    """``observe.otel`` is imported only here: with spans off, OpenTelemetry never loads."""
    try:
        from .otel import Spans
    except ImportError as exc:
        from ..errors import ConfigError

        raise ConfigError(f"{config.source}: tracing.otel: needs the [otel] extra "
                          f"(pip install 'wsgi-gateway[otel]'): {exc.name} is missing") from None
    return Spans(config.tracing.otel)
