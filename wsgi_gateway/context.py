"""The one per-request state object, kept in the WSGI environ under :data:`ENVIRON_KEY`.

Each middleware records what it learned here (the API, the identity, policies, the
decision trail, headers for the upstream) so later layers and the request log read it
from one place. Nothing per request lives in globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .identity import Identity
    from .limits.windows import Verdict
    from .observe.trace import TraceContext

ENVIRON_KEY = "wsgi_gateway.context"
"""The WSGI environ key holding the :class:`RequestContext`."""


@dataclass(slots=True, eq=False)
class TrailEntry:
    """One step of the decision trail: which layer, what it decided, and why."""

    layer: str
    name: str
    outcome: str
    detail: str = ""


@dataclass(slots=True, eq=False)
class UpstreamCall:
    """A URL upstream's answer: which target, its status, and the seconds until its
    response headers arrived."""

    target: str
    status: int
    seconds: float


@dataclass(slots=True, eq=False)
class RequestContext:
    """What the gateway knows about one request, filled in layer by layer."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    api: str | None = None
    identity: "Identity | None" = None
    session_id: str | None = None
    policies: tuple[str, ...] = ()
    decision: str | None = None
    trail: list[TrailEntry] = field(default_factory=list)
    upstream_headers: dict[str, str] = field(default_factory=dict)
    upstream: UpstreamCall | None = None  # set by the reverse proxy
    #: The session record the Sessions layer resolved (id, created, last_seen, meta).
    session_record: Mapping[str, Any] | None = None
    #: The ``identity`` variable after the rule file's ``map`` (rate keys read it).
    mapped_identity: Mapping[str, Any] | None = None
    #: What the Limits layer counted for this request (the ``limits`` variable).
    limit_verdicts: tuple["Verdict", ...] = ()
    #: The problem code answered (``errors.py``), when the gateway refused or failed.
    problem: str | None = None
    #: The trace context (``observe/trace.py``), when tracing is on.
    trace: "TraceContext | None" = None
    #: (stage, clock) as each timed stage was entered; only when metrics are on.
    marks: list[tuple[str, float]] = field(default_factory=list)
    _request: "Request | None" = None

    def record(self, layer: str, name: str, outcome: str, detail: str = "") -> None:
        """Append a step to the decision trail."""
        self.trail.append(TrailEntry(layer, name, outcome, detail))

    def request(self, environ: dict) -> "Request":
        """The werkzeug view of the request, made once and shared by every layer: a
        :class:`LazyRequest`, so a request whose layers read only the environ (a bearer
        token, a cached decision) never pays for werkzeug's parsing."""
        if self._request is None:
            self._request = LazyRequest(environ)  # type: ignore[assignment]
        return self._request  # type: ignore[return-value]


class LazyRequest:
    """werkzeug's ``Request`` for ``environ``, built on the first attribute read that
    is not ``environ`` itself; every other attribute is the real request's."""

    __slots__ = ("environ", "_request")

    def __init__(self, environ: dict):
        self.environ = environ
        self._request = None

    def __getattr__(self, name: str):
        return getattr(self.werkzeug(), name)

    def __setattr__(self, name: str, value) -> None:
        if name in LazyRequest.__slots__:
            object.__setattr__(self, name, value)
        else:  # e.g. max_content_length: werkzeug's request reads it
            setattr(self.werkzeug(), name, value)

    def werkzeug(self) -> "Request":
        """The real request, built now if no attribute read built it yet."""
        request = self._request
        if request is None:
            from werkzeug.wrappers import Request

            request = self._request = Request(self.environ)
        return request


def peek_context(environ: dict) -> RequestContext | None:
    """The request's context if a layer already made one."""
    return environ.get(ENVIRON_KEY)


def context_of(environ: dict) -> RequestContext:
    """The request's context, made on first use so a middleware also works alone."""
    ctx = environ.get(ENVIRON_KEY)
    if ctx is None:
        from .requestid import new_request_id

        ctx = environ[ENVIRON_KEY] = RequestContext(request_id=new_request_id())
    return ctx
