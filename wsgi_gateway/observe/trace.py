"""W3C trace context: believe a caller's ``traceparent`` only when it is a trusted proxy.

A client could otherwise pick the trace ID that joins its request to someone else's
trace, or flood a tracing backend with sampled flags. An untrusted or malformed header
is replaced by a new trace; ``tracestate`` travels only with a believed parent.
The upstream gets a ``traceparent`` whose parent is the gateway's own span.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..context import context_of
from ..requestid import random_hex

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACESTATE_MAX = 512  # W3C: 32 members of at most 256 chars; 512 keeps the common case


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One request's trace: its trace ID, the caller's span (if believed), ours, flags."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    flags: str = "00"
    state: str | None = None

    @property
    def traceparent(self) -> str:
        """The header the upstream gets: our span as its parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace ID, parent span ID, flags) of a valid version-00 header, else None."""
    if not value or len(value) > 256:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or parent == "0" * 16:
        return None
    return trace_id, parent, flags


def start_trace(environ: dict, trusted: bool, new_id: Callable[[int], str] | None = None,
                sample: float = 0.0) -> TraceContext:
    """The request's trace context, from the caller's headers when ``trusted``.

    A new trace is flagged sampled (``-01``) for a ``sample`` share of trace IDs (the
    low 64 bits, as OpenTelemetry's ratio sampler reads them): the gateway records
    those spans (``tracing.otel``), so the upstream is told to record its own."""
    new_id = new_id or random_hex
    parsed = parse_traceparent(environ.get("HTTP_TRACEPARENT")) if trusted else None
    if parsed is None:
        trace_id = new_id(16)
        sampled = sample > 0.0 and int(trace_id[16:], 16) < sample * 0x1_0000_0000_0000_0000
        return TraceContext(trace_id=trace_id, span_id=new_id(8), flags="01" if sampled else "00")
    trace_id, parent, flags = parsed
    state = environ.get("HTTP_TRACESTATE")
    if state is not None and len(state) > _TRACESTATE_MAX:
        state = None
    return TraceContext(trace_id, new_id(8), parent, flags, state)


class TraceMiddleware:
    """Sets ``ctx.trace`` and the ``traceparent``/``tracestate`` the upstream receives.

    :param app: the WSGI app to wrap.
    :param trusted: the peers (``REMOTE_ADDR``) whose trace headers are believed
        (``client_headers.trusted_proxies``): anything with ``__contains__``.
    :param sample: the share of new traces flagged sampled (``tracing.otel.sample``
        when spans are on, else 0: the gateway records nothing).
    """

    def __init__(self, app: Callable, *, trusted, sample: float = 0.0):
        self.app = app
        self.trusted = trusted
        self.sample = sample

    def __call__(self, environ, start_response):
        trace = start_trace(environ, environ.get("REMOTE_ADDR") in self.trusted, sample=self.sample)
        context_of(environ).trace = trace
        environ["HTTP_TRACEPARENT"] = trace.traceparent
        if trace.state is not None:
            environ["HTTP_TRACESTATE"] = trace.state
        else:
            environ.pop("HTTP_TRACESTATE", None)
        return self.app(environ, start_response)
