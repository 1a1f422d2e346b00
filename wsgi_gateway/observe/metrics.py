"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

Every worker writes its counters into its own memory-mapped file in one directory;
a scrape, on whichever worker gets it, sums every file. The directory must be chosen
before the first metric value exists, so :func:`activate` points prometheus_client at
it (the only module importing prometheus_client is this one). ``serve`` empties it in
the master at start and, when a worker exits, drops that worker's live gauges
(``mark_process_dead``); its counters and histograms stay in the sum.

Label values are bounded by the config and the code: API names, method classes,
status codes, decisions, authenticator ids, rule names from the rule files, policy
names, problem codes from ``errors.py``. Never a subject, token, path or anything a
client wrote.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.observe import MetricsConfig
    from ..context import RequestContext

_METHOD_CLASS = {"GET": "read", "HEAD": "read", "OPTIONS": "read",
                 "POST": "write", "PUT": "write", "PATCH": "write", "DELETE": "write"}
_DECISIONS = frozenset({"allow", "deny", "invalid", "unauthenticated", "unavailable",
                        "limited", "revoked"})
STAGES = ("authn", "sessions", "rules", "limits", "upstream")
_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
_STORE_CONCERNS = {"rate": "rate_limits", "quota": "quotas",
                   "store credentials": "store_credentials", "revocation checks": "revocation_checks"}

_active_dir: str | None = None


def activate(directory: str) -> str:
    """Make prometheus_client write this process's values under ``directory``.

    prometheus_client picks its value class when it is first imported, from
    ``PROMETHEUS_MULTIPROC_DIR``; setting both here makes the import order irrelevant.
    """
    global _active_dir
    Path(directory).mkdir(parents=True, exist_ok=True)
    if _active_dir != directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from prometheus_client import values

        values.ValueClass = values.MultiProcessValue()
        _active_dir = directory
    return directory


def default_dir() -> str:
    """The directory used when ``metrics.multiproc_dir`` is not set: one per serve."""
    return tempfile.mkdtemp(prefix="wsgi-gateway-metrics-")


def wipe(directory: str) -> None:
    """Empty the directory (master, at start): stale files would add old counts."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for item in path.glob("*.db"):
        item.unlink()


def mark_dead(pid: int, directory: str) -> None:
    """gunicorn ``child_exit``: a dead worker's live gauges leave the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)


def render(directory: str) -> tuple[bytes, str]:
    """The exposition text summed over every worker's file, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def method_class(method: str) -> str:
    """read, write or other: the method as a bounded label."""
    return _METHOD_CLASS.get(method, "other")


def rule_outcome(outcome: str, note: str) -> str:
    """A rule's trail outcome as a bounded label: true, false, error, value, shadow_mismatch
    (a shadow rule that would have changed the decision), or the allow-all verdict."""
    if note.startswith("shadow:") or "(shadow, not applied)" in note:
        return "shadow_mismatch"
    if outcome in ("True", "False"):
        return outcome.lower()
    if outcome.startswith("error"):
        return "error"
    if outcome in ("allow", "deny", "shadow"):
        return outcome
    return "value"  # a map or header value, or policy names: never the value itself


class Metrics:
    """The gateway's metric families, recorded once per request by :meth:`observe`.

    :param config: the ``metrics:`` section.
    :param directory: the multiprocess directory in force.
    """

    def __init__(self, config: "MetricsConfig", directory: str):
        self.config = config
        self.directory = activate(directory)
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name, doc, labels):
            return Counter(name, doc, labels, registry=None)

        self.requests = counter("gateway_requests", "Requests answered, by API, method "
                                "class, status and decision.", ["api", "method", "status", "decision"])
        self.duration = Histogram("gateway_request_duration_seconds", "Whole request time, "
                                  "body included.", ["api"], buckets=_BUCKETS, registry=None)
        self.stage = Histogram("gateway_stage_duration_seconds", "Time in each stage "
                               "(authn, sessions, rules, limits, upstream).", ["api", "stage"],
                               buckets=_BUCKETS, registry=None)
        self.authn = counter("gateway_authn", "Authentication outcomes by method and reason "
                             "(a problem code).", ["api", "method", "outcome", "reason"])
        self.rules = counter("gateway_rule_outcomes", "Rule outcomes by rule name (shadow "
                             "mismatches included).", ["api", "rule", "outcome"])
        self.limited = counter("gateway_limit_rejections", "Requests refused by a rate "
                               "limit or quota, by policy.", ["api", "policy", "kind"])
        self.store_errors = counter("gateway_store_errors", "Requests that met an unavailable "
                                    "store, by concern.", ["concern"])
        self.store_failing = Gauge("gateway_store_failing", "1 while this worker's last "
                                   "store use failed (the breaker is open).", [],
                                   multiprocess_mode="livemax", registry=None)
        self.upstream = counter("gateway_upstream_responses", "URL upstream answers by API "
                                "and status.", ["api", "status"])
        self.upstream_time = Histogram("gateway_upstream_seconds", "URL upstream time to "
                                       "response headers.", ["api"], buckets=_BUCKETS, registry=None)
        self._children: dict[tuple, Callable] = {}

    def _child(self, family, *labels):
        """A labelled child, looked up once per label set (``labels()`` costs µs)."""
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def observe(self, ctx: "RequestContext", method: str, status: int, seconds: float,
                ended: float) -> None:
        """Record one finished request from its context (status 0: none was sent)."""
        api = ctx.api or "-"
        decision = ctx.decision if ctx.decision in _DECISIONS else "-"
        self._child(self.requests, api, method_class(method), str(status), decision).inc()
        self._child(self.duration, api).observe(seconds)
        self._stages(ctx, api, ended)
        failing = 0
        for entry in ctx.trail:
            if entry.layer == "rules":
                self._child(self.rules, api, entry.name, rule_outcome(entry.outcome, entry.detail)).inc()
            elif entry.layer == "authn":  # the detail of "failed" is a problem code
                reason = entry.detail if entry.outcome == "failed" else "-"
                self._child(self.authn, api, entry.name, entry.outcome.replace(" ", "_"), reason).inc()
            elif entry.outcome.startswith("store unavailable ("):
                concern = _STORE_CONCERNS.get(entry.outcome[19:-1], "other")
                self._child(self.store_errors, concern).inc()
                failing = 1
        if decision == "limited":
            self._limited(ctx, api)
        self.store_failing.set(failing)
        if ctx.upstream is not None:
            self._child(self.upstream, api, str(ctx.upstream.status)).inc()
            self._child(self.upstream_time, api).observe(ctx.upstream.seconds)

    def _stages(self, ctx: "RequestContext", api: str, ended: float) -> None:
        marks = ctx.marks
        for i, (stage, at) in enumerate(marks):
            until = marks[i + 1][1] if i + 1 < len(marks) else ended
            self._child(self.stage, api, stage).observe(max(until - at, 0.0))

    def _limited(self, ctx: "RequestContext", api: str) -> None:
        policy = "+".join(ctx.policies) or "-"
        kinds = [v.kind for v in ctx.limit_verdicts if not v.allowed] or ["store"]
        for kind in kinds:
            self._child(self.limited, api, policy, kind).inc()
