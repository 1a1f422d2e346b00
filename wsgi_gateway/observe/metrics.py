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

import glob
import logging
import os
import tempfile
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from operator import attrgetter, sub
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

PENDING_MAX = 4096  # requests recorded between two flushes, at most (~1 KB each)
_STEP = attrgetter("layer", "name", "outcome", "detail")

_active_dir: str | None = None
log = logging.getLogger("wsgi_gateway")


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


_default_dirs: dict[int, str] = {}


def default_dir() -> str:
    """The directory used when ``metrics.multiproc_dir`` is not set: one per process
    (the master's check build and ``serve`` share it; workers are told its path)."""
    pid = os.getpid()
    if pid not in _default_dirs:
        _default_dirs[pid] = tempfile.mkdtemp(prefix="wsgi-gateway-metrics-")
    return _default_dirs[pid]


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

    registry = CollectorRegistry()
    registry.register(_WorkerFiles(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _WorkerFiles:
    """prometheus_client's multiprocess collector without the files a worker is still
    creating: its MmapedDict creates a file empty and sizes it only then, and a scrape
    in between failed reading 0 bytes (``struct.error``: a 500 from the metrics path,
    seen under gunicorn when the other worker wrote its first metric of a kind). Such
    a file holds no value yet; the next scrape reads it."""

    def __init__(self, directory: str):
        self.directory = directory

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [path for path in glob.glob(os.path.join(self.directory, "*.db")) if _sized(path)]
        return MultiProcessCollector.merge(files, accumulate=True)


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:  # a dead worker's live gauge file, removed meanwhile
        return False


def trail_steps(trail) -> tuple:
    """The trail as (layer, name, outcome, detail) tuples, built in C: the key under
    which metrics and the audit line cache what a trail turns into. The upstream's
    steps are left out: their detail holds the target and its time, new each request
    (the upstream's status and time are read from ``ctx.upstream``)."""
    steps = tuple(map(_STEP, trail))
    if steps and steps[-1][0] == "upstream":
        steps = tuple(step for step in steps if step[0] != "upstream")
    return steps


def _bounded(steps: tuple) -> tuple:
    """The steps without what metrics never label: the detail of an authentication
    step other than ``failed`` (a subject's alias, an API key's id). Run once per
    distinct signature of a batch, not per request."""
    if any(layer == "authn" and outcome != "failed" and detail
           for layer, _name, outcome, detail in steps):
        return tuple((layer, name, outcome, "" if layer == "authn" and outcome != "failed" else detail)
                     for layer, name, outcome, detail in steps)
    return steps


def _limited(policies: tuple, verdicts: tuple) -> tuple:
    """A limited request's policies and the kinds of limit that refused it."""
    return ("+".join(policies) or "-",
            tuple(v.kind for v in verdicts if not v.allowed) or ("store",))


def method_class(method: str) -> str:
    """read, write or other: the method as a bounded label."""
    return _METHOD_CLASS.get(method, "other")


def rule_outcome(outcome: str, note: str) -> str:
    """A rule's trail outcome as a bounded label: true, false, error, value, shadow_mismatch
    (a shadow rule that would have changed the decision), or the allow-all verdict."""
    if note.startswith("shadow:") or "(shadow, not applied)" in note:
        return "shadow_mismatch"
    if outcome in ("true", "false", "True", "False"):  # CEL text, or Python's repr
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
    :param pending_max: requests kept between two flushes; at the bound, the request
        that reaches it flushes (nothing is dropped, memory stays bounded).

    A request appends one tuple of references to what its context already holds
    (about 0.3 µs hot); :meth:`flush` turns the requests since the last flush into
    counter increments and histogram observations in bulk (identical signatures
    counted once, each histogram's values sorted once and cut at its bucket bounds)
    and writes them into the per-worker file: every ``flush_interval`` from a daemon
    thread started on the first request (so never in the master), before this worker
    renders a scrape, when ``pending_max`` requests wait, and when the worker exits
    (``serve``'s ``worker_exit``). A scrape therefore sees other workers' counts at
    most ``flush_interval`` old, and a worker killed with SIGKILL loses at most that
    much. ``flush_interval: 0`` writes through at once (each write is an mmap update:
    about 1.5 µs, some 20 per request).
    """

    def __init__(self, config: "MetricsConfig", directory: str, *, pending_max: int = PENDING_MAX):
        self.config = config
        self.directory = activate(directory)
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name, doc, labels):
            return Counter(name, doc, labels, registry=None)

        def histogram(name, doc, labels):
            return Histogram(name, doc, labels, buckets=_BUCKETS, registry=None)

        self.requests = counter("gateway_requests", "Requests answered, by API, method "
                                "class, status and decision.", ["api", "method", "status", "decision"])
        self.duration = histogram("gateway_request_duration_seconds", "Whole request time, "
                                  "body included.", ["api"])
        self.stage = histogram("gateway_stage_duration_seconds", "Time in each stage "
                               "(authn, sessions, rules, limits, upstream).", ["api", "stage"])
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
        self.upstream_time = histogram("gateway_upstream_seconds", "URL upstream time to "
                                       "response headers.", ["api"])
        self.fetches = counter("gateway_fetches", "Key set fetches and introspection calls "
                               "by source, provider and outcome.", ["source", "provider", "outcome"])
        self.keyset_age = Gauge("gateway_keyset_age_seconds", "Seconds since the key set in "
                                "use was fetched (the oldest of the live workers).", ["provider"],
                                multiprocess_mode="livemax", registry=None)
        #: what fetches keys or asks providers: objects with ``fetch_stats()`` (build_app)
        self.sources: list = []
        self._fetched: dict[tuple, tuple[int, int]] = {}
        # appended by request threads, emptied by popleft in flush: both atomic, no lock
        self._pending: deque[tuple] = deque()
        self.pending_max = max(1, pending_max)
        self._flush_lock = threading.Lock()  # one flush at a time writes the file
        self._increments_of: dict[tuple, tuple[list[tuple], int]] = {}
        self._children: dict[tuple, object] = {}
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._written_failing: int | None = None  # nothing is written before a request

    # -- per request: one tuple -----------------------------------------------------------
    def observe(self, ctx: "RequestContext", method: str, status: int, seconds: float,
                ended: float) -> None:
        """Record one finished request from its context (status 0: none was sent).

        Only references are kept: the context's trail, marks and verdicts are not
        changed once its response is closed, and the context itself is not held.
        """
        pending = self._pending
        pending.append((ctx.api, method, status, ctx.decision, ctx.trail, ctx.policies,
                        ctx.limit_verdicts, ctx.upstream, seconds, ctx.marks, ended))
        if len(pending) >= self.pending_max or self.config.flush_interval <= 0:
            self.flush()
        elif self._flusher is None:
            self._start_flusher()

    # -- in bulk, at a flush --------------------------------------------------------------
    def _aggregate(self, batch: list[tuple]) -> tuple[dict, dict, int | None]:
        """The batch's signature counts, its histogram values by (family, labels), and
        whether its last request met a failing store (None: an empty batch).

        Requests are grouped by API and stage sequence (usually one group per API);
        each group's times then become per-stage durations column by column, in C."""
        counts: dict[tuple, int] = {}
        timings: dict[tuple, list[tuple]] = {}
        upstream_times: dict[str, list[float]] = {}
        signature = None
        for api, method, status, decision, trail, policies, verdicts, upstream, seconds, \
                marks, ended in batch:
            api = api or "-"
            signature = (api, method, status, decision, trail_steps(trail),
                         _limited(policies, verdicts) if decision == "limited" else (),
                         None if upstream is None else upstream.status)
            counts[signature] = counts.get(signature, 0) + 1
            stages, times = tuple(zip(*marks)) or ((), ())
            key = (api, stages)
            (timings.get(key) or timings.setdefault(key, [])).append((seconds, *times, ended))
            if upstream is not None:
                (upstream_times.get(api) or upstream_times.setdefault(api, [])).append(upstream.seconds)
        failing = None if signature is None else self._increments(self._normal(signature))[1]
        return counts, self._durations(timings, upstream_times), failing

    def _durations(self, timings: dict, upstream_times: dict) -> dict[tuple, list[float]]:
        """Histogram values by (family, labels), from rows of (whole, mark..., end)."""
        values: dict[tuple, list[float]] = {}
        for (api, stages), rows in timings.items():
            columns = list(zip(*rows))
            whole = values.setdefault((self.duration, (api,)), [])
            whole += columns[0]
            for i, stage in enumerate(stages, 1):  # a stage lasts until the next mark
                values.setdefault((self.stage, (api, stage)), []).extend(
                    map(sub, columns[i + 1], columns[i]))
        for api, seconds in upstream_times.items():
            values[(self.upstream_time, (api,))] = seconds
        return values

    @staticmethod
    def _normal(signature: tuple) -> tuple:
        """The signature with its trail bounded (:func:`_bounded`): the key of
        :meth:`_increments`, whatever the number of subjects."""
        api, method, status, decision, trail, limited, upstream = signature
        return (api, method, status, decision, _bounded(trail), limited, upstream)

    def _increments(self, signature: tuple) -> tuple[list[tuple], int]:
        """The (family, labels) a (normal) signature counts toward, and whether the
        store failed; worked out once per distinct signature (cleared past 4096)."""
        known = self._increments_of.get(signature)
        if known is not None:
            return known
        api, method, status, decision, trail, limited, upstream = signature
        decision = decision if decision in _DECISIONS else "-"
        out = [(self.requests, (api, method_class(method), str(status), decision))]
        failing = 0
        for layer, name, outcome, detail in trail:
            if layer == "rules":
                out.append((self.rules, (api, name, rule_outcome(outcome, detail))))
            elif layer == "authn":  # the detail of "failed" is a problem code
                reason = detail if outcome == "failed" else "-"
                out.append((self.authn, (api, name, outcome.replace(" ", "_"), reason)))
            elif outcome.startswith("store unavailable ("):
                out.append((self.store_errors, (_STORE_CONCERNS.get(outcome[19:-1], "other"),)))
                failing = 1
        if limited:
            out += [(self.limited, (api, limited[0], kind)) for kind in limited[1]]
        if upstream is not None:
            out.append((self.upstream, (api, str(upstream))))
        if len(self._increments_of) >= 4096:  # rule outcomes x statuses x ...: bounded
            self._increments_of.clear()
        self._increments_of[signature] = (out, failing)
        return out, failing

    # -- to the worker's file -----------------------------------------------------------
    def flush(self) -> None:
        """Write what was recorded since the last flush into this worker's file."""
        with self._flush_lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            counts, values, failing = self._aggregate(batch)
            totals: dict[tuple, float] = {}
            for signature, amount in counts.items():
                for key in self._increments(self._normal(signature))[0]:
                    totals[key] = totals.get(key, 0) + amount
            # histograms before counters: a scrape racing this flush that sees a request
            # counted also sees its durations (the e2e test waits on the request counter)
            for (family, labels), observed in values.items():
                self._observe_all(self._child(family, labels), observed)
            for (family, labels), amount in totals.items():
                self._child(family, labels).inc(amount)
            self._flush_sources()
            if failing is not None and failing != self._written_failing:
                self.store_failing.set(failing)
                self._written_failing = failing

    @staticmethod
    def _observe_all(child, observed: list[float]) -> None:
        """prometheus_client's ``Histogram.observe`` for many values at once: each
        bucket (the first whose bound is >= the value) and the sum written once. Its
        ``_sum``/``_buckets`` are the values it writes itself (pinned <1 in setup.cfg).
        A negative time (a clock step) counts as 0, as ``max(t, 0)`` did."""
        observed.sort()
        below = 0
        first = bisect_left(observed, 0.0)
        if first:
            observed[:first] = [0.0] * first
        child._sum.inc(sum(observed))
        for i, bound in enumerate(_BUCKETS):
            upto = bisect_right(observed, bound)
            if upto > below:
                child._buckets[i].inc(upto - below)
                below = upto
        if len(observed) > below:
            child._buckets[len(_BUCKETS)].inc(len(observed) - below)

    def _flush_sources(self) -> None:
        """Key set fetches and introspection calls since the last flush; key set ages."""
        for source in self.sources:
            kind, provider, done, failed, age = source.fetch_stats()
            before_done, before_failed = self._fetched.get((kind, provider), (0, 0))
            if failed > before_failed:
                self._child(self.fetches, (kind, provider, "failed")).inc(failed - before_failed)
            if done - failed > before_done - before_failed:
                self._child(self.fetches, (kind, provider, "ok")).inc(
                    (done - failed) - (before_done - before_failed))
            self._fetched[(kind, provider)] = (done, failed)
            if age is not None:
                self._child(self.keyset_age, (provider,)).set(age)

    def _child(self, family, labels: tuple):
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def _start_flusher(self) -> None:
        with self._flush_lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._flush_loop, name="metrics-flush",
                                             daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.config.flush_interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - keep flushing; the next may succeed
                log.exception("metrics: flushing to %s failed", self.directory)

    def close(self) -> None:
        """Flush what is pending and stop the flush thread."""
        self._stop.set()
        self.flush()
