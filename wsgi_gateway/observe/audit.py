"""The decision audit log: one JSON object per line, per decision.

Schema version 1 (``"v": 1``; a field is only ever added within a version):

=============  =====================================================================
``v``          1
``time``       RFC 3339 UTC, milliseconds: when the response ended
``request_id`` the request ID (as on the request log line)
``trace_id``   the W3C trace ID, or null when tracing is off
``api``        the API's name
``method``     the HTTP method
``path``       the path, never the query string
``status``     the status answered (0: none was sent)
``decision``   allow, deny, invalid, unauthenticated, revoked, limited, unavailable
``reason``     the problem code answered (``errors.py``), or null
``identity``   ``{alias, method, issuer, client_id, provider, session_id}`` or null
``policies``   the policies applied
``mapped``     16 hex of a digest of the identity after the rule file's ``map`` (a
               change is visible, the values are not), or null
``rules``      ``[{rule, outcome, note}]``: every rule that ran; outcome is true, false,
               error, value, shadow_mismatch, allow or deny (never a value); note is
               ``denies``, ``allows``, ``policy NAME`` or empty
``decided_by`` the rule that refused (or first allowed), or null
``authn``      ``[{method, outcome, reason}]``: each method tried
``limits``     ``[{kind, limit, remaining}]``: what the limits counted
``upstream``   ``{status, ms}`` of a URL upstream, or null
``claims``     the claims listed in ``audit.claims`` that the token carried, or
               null when none are listed (``replay`` then cannot re-decide)
``claims_absent`` the listed claims the token did not carry (so ``replay`` can tell
               "absent" from "not recorded")
``ms``         the whole request, milliseconds
=============  =====================================================================

Never a token, secret, cookie, header value, query string or unlisted claim. The file
handler is a ``WatchedFileHandler``: logrotate may move the file; lines go to the new
file within a second (the file is checked once a second, not per line).

Writes to ``audit.file`` are batched: lines wait at most ``audit.flush_interval``
(100 ms, or until 256 wait) and go out in one ``write(2)`` on the ``O_APPEND``
descriptor, so another worker's lines never land inside one; a close, an exit or a
flush writes what waits. A request only keeps what its line is made of; the lines are
formatted at the flush, one after the other.
Standard error stays one line per write: a pipe's atomic writes are only 4 KiB.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import logging.handlers
import os
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from .metrics import rule_outcome, trail_steps

if TYPE_CHECKING:
    from ..config.observe import AuditConfig
    from ..context import RequestContext
    from ..identity import Identity

SCHEMA_VERSION = 1
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # made once, not per line
_str = json.encoder.encode_basestring_ascii  # what _ENCODER does to a str, in C
_BATCH_LINES = 256  # lines waiting before a write, whatever the interval
_RULE_NOTES = ("denies", "allows")


def sampled(request_id: str, rate: float) -> bool:
    """Whether an allowed request is written: decided by its ID, so it is reproducible."""
    if rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) < rate * 0x1_0000_0000


def _json(value) -> str:
    """A scalar as JSON; strings and None without the encoder's call overhead."""
    cls = value.__class__
    if cls is str:
        return _str(value)
    if cls is int:
        return int.__repr__(value)
    if cls is float and value - value == 0.0:  # finite: what the encoder writes
        return float.__repr__(value)
    if value is None:
        return "null"
    return _ENCODER.encode(value)


def _ms(seconds: float) -> str:
    """``round(seconds * 1000, 2)`` as JSON: ``%.2f`` rounds the same binary value the
    same way (both correctly rounded) and, below 1e12, repr of the rounded float is
    that text without its trailing zeros; twice as fast as round() then repr()."""
    ms = seconds * 1000
    if not 0.0 <= ms < 1e12:  # negative, huge, inf or nan: the reference path
        return _json(round(ms, 2))
    text = ("%.2f" % ms).rstrip("0")
    return text + "0" if text[-1] == "." else text


def _note(note: str) -> str:
    if note in _RULE_NOTES or (note.startswith("policy ") and " " not in note[7:]):
        return note
    return ""


def rule_steps(steps) -> list[dict]:
    """(rule, outcome, note) steps as audit entries: labels only, never a value."""
    return [{"rule": name, "outcome": rule_outcome(outcome, note), "note": _note(note)}
            for name, outcome, note in steps]


def deciding_rule(rules: list[dict], decision: str | None) -> str | None:
    """The rule that decided: the deny rule that matched, the validate rule that
    failed (a 401 ``invalid``), or the first allow rule that matched; else None (no
    allow rule matched, a policy's access rights, no rule file)."""
    for rule in rules:
        if rule["note"] == "denies" or (rule["note"] == "allows" and decision == "allow"):
            return rule["rule"]
    if decision == "invalid":
        return next((r["rule"] for r in rules if r["outcome"] in ("false", "error")), None)
    return None


_digests: dict[int, tuple[object, str]] = {}


def _mapped_digest(mapped) -> str | None:
    """A digest of the mapped identity; the same dict (one per verified token, cached by
    the rules) is hashed once: the entry keeps it alive, so its id is not reused."""
    if not mapped:
        return None
    known = _digests.get(id(mapped))
    if known is not None and known[0] is mapped:
        return known[1]
    text = json.dumps(mapped, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if len(_digests) >= 4096:  # bounded: about the rules' token cache
        _digests.clear()
    _digests[id(mapped)] = (mapped, digest)
    return digest


_stamp: list = [-1, ""]


def _utc(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds; the date part formatted once per second."""
    second = int(seconds)
    if second != _stamp[0]:
        _stamp[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return "%s.%03dZ" % (_stamp[1], int(seconds % 1 * 1000))


def _fields(ctx: "RequestContext", method: str, path: str, status: int, seconds: float,
            now: float) -> tuple:
    """What a line is made of, read from the context when the request ends: strings,
    numbers and frozen objects (identity, verdicts, upstream call, trace), plus the
    trail, which nothing changes once the response is closed."""
    return (now, ctx.request_id, ctx.trace, ctx.api, method, path, status, ctx.decision,
            ctx.problem, ctx.policies, ctx.mapped_identity, ctx.limit_verdicts, ctx.upstream,
            seconds, ctx.identity, ctx.session_id, ctx.trail)


class AuditLog:
    """Writes the audit line of each decided request.

    :param config: the ``audit:`` section.
    :param clock: wall-clock seconds (the line's ``time``).
    :param stream: where lines go when no file is configured (standard error).
    """

    def __init__(self, config: "AuditConfig", *, clock: Callable[[], float] = time.time,
                 stream=None):
        self.config, self.clock = config, clock
        self.claims = config.claims
        if config.file:
            handler: logging.Handler = logging.handlers.WatchedFileHandler(config.file, encoding="utf-8")
        else:
            handler = logging.StreamHandler(stream or sys.stderr)
        self.handler = handler  # used directly: no LogRecord, never the request log
        self.watched = isinstance(handler, logging.handlers.WatchedFileHandler)
        self._checked = -1.0  # when the file was last checked for rotation (once a second)
        self.interval = config.flush_interval
        self.batched = self.watched and self.interval > 0
        self._lock = threading.Lock()  # the pending list and its age
        self._flush_lock = threading.Lock()  # one flush at a time: batches stay in order
        self._pending: list[tuple] = []  # what each waiting line is made of, unformatted
        self._since = 0.0
        self._stop = threading.Event()
        self._flushing = False  # this process runs the flush thread (not asked per line:
        # os.getpid() is a system call, 0.2 µs); a forked child starts its own
        if self.batched:  # an exiting worker writes what waits
            ref = weakref.ref(self)
            atexit.register(lambda: (log := ref()) is not None and log.flush())
            os.register_at_fork(after_in_child=lambda: (log := ref()) is not None and log._forked())
        self._whos: dict[tuple, tuple[object, str]] = {}
        self._trails: dict[tuple, str] = {}
        self._fragments: dict[tuple, str] = {}

    def _forked(self) -> None:
        """In a new child: no flush thread yet (threads do not survive a fork)."""
        self._flushing = False

    def close(self) -> None:
        self._stop.set()
        self.flush()
        self.handler.close()

    def write(self, ctx: "RequestContext", method: str, path: str, status: int, seconds: float) -> None:
        """The line for one request, when it was decided (and, if allowed, sampled)."""
        if ctx.decision is None and (ctx.api is None or ctx.api == "-ops"):
            return  # ops paths, the metrics path, unrouted requests: no decision
        rate = self.config.sample_allowed
        if rate < 1.0 and ctx.decision == "allow" and status < 400 \
                and not sampled(ctx.request_id, rate):
            return
        now = self.clock()  # one reading: the line's time and the batch's age
        fields = _fields(ctx, method, path, status, seconds, now)
        if not self.batched:
            line = self._format(fields)
            with self.handler.lock:  # one whole line at a time (O_APPEND across workers)
                self._rotate(now)
                self.handler.stream.write(line)
                self.handler.stream.flush()
            return
        with self._lock:
            if not self._pending:
                self._since = now
            self._pending.append(fields)
            due = now - self._since >= self.interval or now < self._since \
                or len(self._pending) >= _BATCH_LINES
        if due:
            self.flush()
        elif not self._flushing:
            self._start_flusher()

    def flush(self) -> None:
        """Format the waiting lines, one after the other (the formatting code and its
        caches stay hot: about half the cost of a line formatted between two requests),
        and write them in one ``write(2)`` (after a rotation check)."""
        if not self.batched:
            return
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            data = "".join(map(self._format, pending)).encode("utf-8")
            with self.handler.lock:
                self._rotate(self.clock())
                if self.handler.stream is None:  # closed: reopen to write what waited
                    self.handler.stream = self.handler._open()
                fd = self.handler.stream.fileno()
                while data:  # a regular file takes it whole; loop for the odd short write
                    data = data[os.write(fd, data):]

    def _rotate(self, now: float) -> None:
        if self.watched and not 0.0 <= now - self._checked < 1.0:
            self._checked = now
            self.handler.reopenIfNeeded()  # logrotate moved the file: a new one

    def _start_flusher(self) -> None:
        """A thread writing idle batches; started in the process that writes (a forked
        worker starts its own: threads do not survive a fork)."""
        self._flushing = True
        ref = weakref.ref(self)
        interval, stop = self.interval, self._stop

        def loop():
            while not stop.wait(interval):
                log = ref()
                if log is None:
                    return
                try:
                    log.flush()
                except Exception:  # noqa: BLE001 - keep the worker; the next may succeed
                    logging.getLogger("wsgi_gateway").exception("audit: writing the log failed")
                del log

        threading.Thread(target=loop, name="audit-flush", daemon=True).start()

    def record(self, ctx: "RequestContext", method: str, path: str, status: int,
               seconds: float) -> dict:
        """The line's fields (schema version 1)."""
        return json.loads(self.line(ctx, method, path, status, seconds))

    def line(self, ctx: "RequestContext", method: str, path: str, status: int,
             seconds: float) -> str:
        """The JSON line, timed now by the clock."""
        return self._format(_fields(ctx, method, path, status, seconds, self.clock()))

    def _format(self, fields: tuple) -> str:
        """The JSON line. Only what changes per request is encoded per request (time,
        IDs, path, numbers); the rest is JSON fragments made once per distinct value:
        the API and method, the outcome, the identity, the trail."""
        (now, request_id, trace, api, method, path, status, decision, problem, policies,
         mapped, verdicts, upstream, seconds, identity, session_id, trail) = fields
        up = "null" if upstream is None else \
            f'{{"status":{_json(upstream.status)},"ms":{_ms(upstream.seconds)}}}'
        return (f'{{"v":{SCHEMA_VERSION},"time":"{_utc(now)}","request_id":{_json(request_id)},'
                f'"trace_id":{"null" if trace is None else _str(trace.trace_id)},'
                f'{self._fragment((api, method))}"path":{_str(path)},"status":{status},'
                f'{self._fragment((decision, problem, policies))}'
                f'"mapped":{_json(_mapped_digest(mapped))},'
                f'"limits":{self._limits(verdicts)},"upstream":{up},'
                f'"ms":{_ms(seconds)},{self._who(identity, session_id)},'
                f'{self._trail(trail, decision)}}}\n')

    def _fragment(self, key: tuple) -> str:
        """``"api":…,"method":…,`` or ``"decision":…,"reason":…,"policies":[…],``,
        encoded once per distinct tuple (bounded: a method is the client's word)."""
        known = self._fragments.get(key)
        if known is None:
            names = ("api", "method") if len(key) == 2 else ("decision", "reason", "policies")
            values = key if len(key) == 2 else (key[0], key[1], list(key[2]))
            known = _ENCODER.encode(dict(zip(names, values)))[1:-1] + ","
            if len(self._fragments) >= 1024:
                self._fragments.clear()
            self._fragments[key] = known
        return known

    def _limits(self, verdicts) -> str:
        """``limits``: each verdict's kind and limit encoded once, ``remaining`` per request."""
        if not verdicts:
            return "[]"
        if len(verdicts) == 1:  # the usual case: no list, no join
            v = verdicts[0]
            head = self._fragments.get((v.kind, v.limit))
            if head is not None:
                return f"[{head}{_json(v.remaining)}}}]"
        parts = []
        for v in verdicts:
            key = (v.kind, v.limit)
            head = self._fragments.get(key)
            if head is None:
                head = self._fragments[key] = f'{{"kind":{_json(v.kind)},"limit":{_json(v.limit)},"remaining":'
            parts.append(f"{head}{_json(v.remaining)}}}")
        return f"[{','.join(parts)}]"

    def _who(self, identity: "Identity | None", session_id: str | None) -> str:
        """``identity``, ``claims``, ``claims_absent``: encoded once per identity."""
        key = (id(identity), session_id)
        known = self._whos.get(key)
        if known is not None and known[0] is identity:
            return known[1]
        fragment = _ENCODER.encode({"identity": self._identity(identity, session_id),
                                    "claims": self._claims(identity),
                                    "claims_absent": self._absent(identity)})[1:-1]
        if len(self._whos) >= 4096:  # bounded; the entry keeps the identity (its id) alive
            self._whos.clear()
        self._whos[key] = (identity, fragment)
        return fragment

    def _trail(self, trail, decision: str | None) -> str:
        """``rules``, ``decided_by``, ``authn``: encoded once per distinct trail."""
        steps = trail_steps(trail)  # in C; layers other than these two go below
        key = (steps, decision)
        fragment = self._trails.get(key)
        if fragment is not None:
            return fragment
        steps = tuple(step for step in steps if step[0] in ("rules", "authn"))
        rules = rule_steps((name, outcome, detail) for layer, name, outcome, detail in steps
                           if layer == "rules")
        authn = [{"method": name, "outcome": outcome, "reason": detail if outcome == "failed" else None}
                 for layer, name, outcome, detail in steps if layer == "authn"]
        fragment = _ENCODER.encode({"rules": rules, "decided_by": deciding_rule(rules, decision),
                                    "authn": authn})[1:-1]
        if len(self._trails) >= 4096:
            self._trails.clear()
        self._trails[key] = fragment
        return fragment

    @staticmethod
    def _identity(identity: "Identity | None", session_id: str | None) -> dict | None:
        if identity is None:
            return None
        return {"alias": identity.alias, "method": identity.method, "issuer": identity.issuer or None,
                "client_id": identity.client_id or None, "provider": identity.provider or None,
                "session_id": session_id}

    def _claims(self, identity: "Identity | None") -> dict | None:
        if not self.claims:
            return None
        carried = identity.claims if identity is not None else {}
        return {name: carried[name] for name in self.claims if name in carried}

    def _absent(self, identity: "Identity | None") -> list[str] | None:
        if not self.claims:
            return None
        carried = identity.claims if identity is not None else {}
        return [name for name in self.claims if name not in carried]
