"""What the gateway tells operators and auditors: ``metrics:``, ``audit:``, ``tracing:``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from .typed import Where, parsed
from .units import parse_duration

_CLAIM = re.compile(r"[A-Za-z0-9_:.-]{1,64}")


def _directory(node: object, where: Where) -> str:
    """A directory path, relative to the config; created at start when missing."""
    return str(where.config_path(node, "a directory path"))


def _file(node: object, where: Where) -> str:
    """A file path, relative to the config; its directory must exist."""
    path = where.config_path(node)
    if not path.parent.is_dir():
        raise ValueError(f"the directory of {node!r} does not exist")
    return str(path)


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics, summed over every gunicorn worker (multiprocess mode).

    Off by default. When on, ``path`` (under ``ops.prefix``) answers only peers
    (``REMOTE_ADDR``) in ``allow``; anyone else gets the 404 an unknown path gets.
    ``multiproc_dir`` holds one file per worker; ``serve`` empties it at start and
    marks dead workers, so a restarted worker's counts are not lost and its gauges go.
    """

    enabled: bool = False
    """Serve and record metrics. Default `false`."""
    path: str = "metrics"                 # served at ops.prefix + path: /.gateway/metrics
    """One path segment under `ops.prefix`. Default `metrics`."""
    allow: tuple[str, ...] = ("127.0.0.1", "::1")  # addresses or CIDRs allowed to scrape
    """Addresses or CIDRs allowed to scrape; anyone else gets the 404 problem of an
    unknown path (behind a proxy the peer is the proxy: list what Prometheus connects
    from) Default `[127.0.0.1, ::1]`."""
    multiproc_dir: str | None = field(default=None, metadata={"parse": _directory})
    """Prometheus_client's multiprocess directory: each worker writes its own file there
    and a scrape sums them all. `serve` empties it when it starts (not on reload) and,
    through gunicorn's `child_exit`, drops a dead worker's live gauges; its counters stay
    in the sum, so a killed worker loses nothing. Default a new temporary directory per
    `serve`."""
    # None: a fresh directory under the system temporary directory, per serve
    flush_interval: float = field(default=1.0, metadata={"parse": parsed(parse_duration)})
    """How often a worker writes its counts to its file (a request only keeps a tuple in
    memory, 4096 at most, and a full batch is written at once; a scrape first writes its
    own worker's). A scrape sees other workers at most
    this old; a worker killed with SIGKILL loses at most this much (a graceful exit
    writes first, through gunicorn's `worker_exit`). `0`: every request writes through
    (about 20 mmap writes, some 15 µs) Default `1s`."""
    # how often a worker writes its counts to its file; 0: at once, on every request

    def __post_init__(self):
        if self.flush_interval < 0:
            raise ValueError("metrics.flush_interval cannot be negative")
        if not re.fullmatch(r"[A-Za-z0-9._~-]+", self.path):
            raise ValueError(f"metrics.path {self.path!r}: one path segment, e.g. metrics")
        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"metrics.allow: {cidr!r} is not an address or CIDR") from None


@dataclass(frozen=True)
class AuditConfig:
    """The decision audit log: one JSON object per line (schema: ``observe/audit.py``).

    Every denial is written; allowed requests are sampled by ``sample_allowed`` (0 to 1,
    decided from the request ID, so a replay of the same IDs picks the same lines).
    ``claims`` lists the token claims copied into each line (none by default: claims
    are personal data); ``replay`` can only re-decide rules whose claims were recorded.
    """

    enabled: bool = False
    """One JSON line per decision. Default `false`."""
    file: str | None = field(default=None, metadata={"parse": _file})  # None: standard error
    """Relative to the config; its directory must exist. A `WatchedFileHandler`:
    logrotate may move the file (no `copytruncate` needed) Default standard error."""
    sample_allowed: float = 1.0
    """The share of allowed requests written, chosen from the request ID (reproducible);
    denials, 401s, 429s and 503s are always written. Default `1.0`."""
    claims: tuple[str, ...] = ()
    """The token claims written on each line. Claims are personal data: list only what
    auditors and `replay` need. Default `[]`."""
    flush_interval: float = field(default=0.1, metadata={"parse": parsed(parse_duration)})
    """`file` only: a line waits at most this long (or until 256 lines wait), then the batch
    goes out in one write(2) on the O_APPEND file, so workers' lines never mix. A worker
    killed outright (SIGKILL, OOM) loses what waits; a stop, an exit or a close writes it.
    `0`: every line at once. Default `100ms`."""

    def __post_init__(self):
        if self.flush_interval < 0:
            raise ValueError("audit.flush_interval cannot be negative")
        if not 0.0 <= self.sample_allowed <= 1.0:
            raise ValueError("audit.sample_allowed must be between 0 and 1")
        bad = [c for c in self.claims if not _CLAIM.fullmatch(c)]
        if bad:
            raise ValueError(f"audit.claims: {', '.join(map(repr, bad))} are not claim names")


@dataclass(frozen=True)
class OtelConfig:
    """OpenTelemetry spans: one per request, a child per stage (``observe/otel.py``).

    Off by default; needs the ``[otel]`` extra. The SDK and its export thread start in
    each gunicorn worker, on its first request (never in the master: the batch
    processor's thread does not survive a fork). Spans carry bounded labels only:
    never a token, cookie, path, query or subject.
    """

    enabled: bool = False
    """One span per request with a child per stage, in the W3C trace; needs
    `pip install 'wsgi-gateway[otel]'` and `tracing.enabled`. Default `false`."""
    exporter: Literal["otlp", "console", "none"] = "otlp"
    """`otlp`: OTLP over HTTP/protobuf (imported only when chosen); `console`: one JSON
    span per line; `none`: spans built and dropped. Default `otlp`."""
    endpoint: str | None = None
    """The OTLP/HTTP traces URL (`otlp` only). Default the SDK's (OTEL_EXPORTER_OTLP_* env)."""
    file: str | None = field(default=None, metadata={"parse": _file})
    """`console` only: the file span lines are appended to, relative to the config.
    Default standard output."""
    service_name: str = "wsgi-gateway"
    """The `service.name` resource attribute. Default `wsgi-gateway`."""
    sample: float = 1.0
    """The share of new traces recorded (by trace ID); those go upstream flagged sampled
    (`-01`), the others `-00`. A trusted caller's flag decides for its trace. Default `1.0`."""

    def __post_init__(self):
        if not 0.0 <= self.sample <= 1.0:
            raise ValueError("tracing.otel.sample must be between 0 and 1")
        if self.endpoint is not None and not re.match(r"https?://[^\s/]+", self.endpoint):
            raise ValueError(f"tracing.otel.endpoint {self.endpoint!r}: an http(s) URL")
        if self.file is not None and self.exporter != "console":
            raise ValueError("tracing.otel.file is only for exporter: console")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", self.service_name):
            raise ValueError(f"tracing.otel.service_name {self.service_name!r}: letters, digits, . _ -")


@dataclass(frozen=True)
class TracingConfig:
    """W3C trace context (``traceparent``/``tracestate``).

    An incoming ``traceparent`` is believed only from ``client_headers.trusted_proxies``;
    otherwise the gateway starts a trace. Either way the upstream gets a ``traceparent``
    naming the gateway's span, and the request log line carries the trace ID.
    """

    enabled: bool = True
    """Read or start a W3C trace; `false` passes no `traceparent` of its own. Default
    `true`."""
    otel: OtelConfig = OtelConfig()
    """Optional OpenTelemetry spans per request and stage."""

    def __post_init__(self):
        if self.otel.enabled and not self.enabled:
            raise ValueError("tracing.otel needs tracing.enabled: the spans join its trace")
