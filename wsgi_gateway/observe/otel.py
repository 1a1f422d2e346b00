"""OpenTelemetry spans: the only module importing ``opentelemetry`` (the ``[otel]`` extra).

One SERVER span per request, named ``METHOD api``, with a child per stage
(authentication, sessions, rules, limits, upstream) built at the request's end from the
stage marks, so the hot path pays nothing more than the marks metrics already take.
The spans join the W3C trace context of ``trace.py``: same trace ID as the request
line and the audit line, the trusted caller's span as parent, and the request span's
ID is the one the upstream received in its ``traceparent`` (its spans hang below ours).

Attributes are bounded labels only: method (unknown ones as ``_OTHER``), status, API,
decision, problem code, authentication method, policies, request ID. Never a token,
cookie, header value, path, query or subject.

Fork safety: the SDK (provider, batch processor and its export thread) is built on
the first request seen by a process, so under gunicorn each worker gets its own
after the fork, whatever ``preload`` says; a process that forked after building it
(a pid change) builds a fresh one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import opentelemetry.trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from ..config.observe import OtelConfig
    from ..context import RequestContext

STAGE_NAMES = {"authn": "authentication", "sessions": "sessions", "rules": "rules",
               "limits": "limits", "upstream": "upstream"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                      "TRACE", "PATCH"})
_ID_MAX = 64  # a request ID longer than this is cut (a trusted caller may send its own)


class _PresetIds(IdGenerator):
    """Hands the SDK the IDs the W3C context already chose (trace ID, our span ID), once,
    in the thread building the request's span; every other span gets random IDs."""

    def __init__(self):
        self._local = threading.local()
        self._random = RandomIdGenerator()

    def preset(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids:
            self._local.ids = None
            return ids[1]
        return self._random.generate_span_id()


def build_exporter(config: "OtelConfig") -> SpanExporter | None:
    """The configured exporter; the OTLP package is imported only when chosen."""
    if config.exporter == "none":
        return None
    if config.exporter == "console":
        out = open(config.file, "a", encoding="utf-8") if config.file else sys.stdout  # noqa: SIM115
        return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else OTLPSpanExporter()


class Spans:
    """Records each finished request as a span tree.

    :param config: ``tracing.otel``.
    :param make_exporter: builds the exporter, in the process that will use it
        (tests pass the SDK's ``InMemorySpanExporter``).
    """

    def __init__(self, config: "OtelConfig", *,
                 make_exporter: Callable[["OtelConfig"], SpanExporter | None] = build_exporter):
        self.config, self.make_exporter = config, make_exporter
        self._pid = None
        self._lock = threading.Lock()
        self.provider = self.tracer = None
        self._ids = _PresetIds()

    def _start(self) -> None:
        """The SDK for this process (first request after a fork)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            provider = TracerProvider(resource=Resource.create({"service.name": self.config.service_name}),
                                      id_generator=self._ids, shutdown_on_exit=True,
                                      sampler=ParentBased(ALWAYS_ON))  # new traces: trace.py decided
            exporter = self.make_exporter(self.config)
            if exporter is not None:
                provider.add_span_processor(BatchSpanProcessor(exporter))
            self.provider, self.tracer = provider, provider.get_tracer("wsgi_gateway")
            self._pid = os.getpid()

    def record(self, ctx: "RequestContext", method: str, status: int, seconds: float,
               ended: float) -> None:
        """The request's span and its stage spans (times from ``ctx.marks``)."""
        trace = ctx.trace
        if trace is None or (ctx.decision is None and (ctx.api is None or ctx.api == "-ops")):
            return  # ops paths (health probes, metrics), unrouted requests: no span
        if self._pid != os.getpid():
            self._start()
        to_ns = time.time_ns() - int(time.perf_counter() * 1e9)  # perf_counter → epoch ns
        parent = None
        if trace.parent_id is None and trace.flags == "00":
            return  # a new trace left unsampled (tracing.otel.sample): the upstream was told so
        if trace.parent_id is not None:
            parent = otel_trace.set_span_in_context(NonRecordingSpan(SpanContext(
                int(trace.trace_id, 16), int(trace.parent_id, 16), is_remote=True,
                trace_flags=TraceFlags(int(trace.flags, 16) & 1))))
        self._ids.preset(int(trace.trace_id, 16), int(trace.span_id, 16))
        method = method if method in _METHODS else "_OTHER"
        root = self.tracer.start_span(f"{method} {ctx.api or '-'}", context=parent,
                                      kind=SpanKind.SERVER, attributes=self._attributes(ctx, method, status),
                                      start_time=to_ns + int(ctx.started * 1e9))
        if not root.is_recording():
            return  # not sampled: no stage spans either (they would be dropped)
        if status == 0 or status >= 500:
            root.set_status(Status(StatusCode.ERROR))
        inside = otel_trace.set_span_in_context(root)
        marks = ctx.marks
        for i, (stage, at) in enumerate(marks):
            until = marks[i + 1][1] if i + 1 < len(marks) else ended
            span = self.tracer.start_span(STAGE_NAMES.get(stage, "other"), context=inside,
                                          start_time=to_ns + int(at * 1e9))
            span.end(end_time=to_ns + int(max(until, at) * 1e9))
        root.end(end_time=to_ns + int(ended * 1e9))

    @staticmethod
    def _attributes(ctx: "RequestContext", method: str, status: int) -> dict:
        """Bounded labels: config names, codes and IDs; never a request's own text."""
        out = {"http.request.method": method, "http.response.status_code": status,
               "gateway.api": ctx.api or "-", "gateway.request_id": (ctx.request_id or "")[:_ID_MAX]}
        if ctx.decision is not None:
            out["gateway.decision"] = ctx.decision
        if ctx.problem is not None:
            out["gateway.reason"] = ctx.problem
        if ctx.identity is not None and ctx.identity.method:
            out["gateway.identity.method"] = ctx.identity.method
        if ctx.policies:
            out["gateway.policies"] = list(ctx.policies)
        if ctx.upstream is not None:
            out["gateway.upstream.status_code"] = ctx.upstream.status
        return out

    def flush(self) -> None:
        if self.provider is not None and self._pid == os.getpid():
            self.provider.force_flush()

    def close(self) -> None:
        if self.provider is not None and self._pid == os.getpid():
            self.provider.shutdown()
            self.provider = None
            self._pid = None
