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
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import sys
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from .metrics import rule_outcome

if TYPE_CHECKING:
    from ..config.observe import AuditConfig
    from ..context import RequestContext

SCHEMA_VERSION = 1
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # made once, not per line
_RULE_NOTES = ("denies", "allows")


def sampled(request_id: str, rate: float) -> bool:
    """Whether an allowed request is written: decided by its ID, so it is reproducible."""
    if rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) < rate * 0x1_0000_0000


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
    return f"{_stamp[1]}.{int(seconds % 1 * 1000):03d}Z"


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
        self._whos: dict[tuple, tuple[object, str]] = {}
        self._trails: dict[tuple, str] = {}

    def close(self) -> None:
        self.handler.close()

    def write(self, ctx: "RequestContext", method: str, path: str, status: int, seconds: float) -> None:
        """The line for one request, when it was decided (and, if allowed, sampled)."""
        if ctx.decision is None and (ctx.api is None or ctx.api == "-ops"):
            return  # ops paths, the metrics path, unrouted requests: no decision
        allowed = ctx.decision == "allow" and status < 400
        if allowed and not sampled(ctx.request_id, self.config.sample_allowed):
            return
        line = self.line(ctx, method, path, status, seconds)
        handler = self.handler
        with handler.lock:  # one whole line at a time (O_APPEND across workers)
            now = self.clock()
            if self.watched and not 0.0 <= now - self._checked < 1.0:
                self._checked = now
                handler.reopenIfNeeded()  # logrotate moved the file: a new one
            handler.stream.write(line)
            handler.stream.flush()

    def record(self, ctx: "RequestContext", method: str, path: str, status: int,
               seconds: float) -> dict:
        """The line's fields (schema version 1)."""
        return json.loads(self.line(ctx, method, path, status, seconds))

    def line(self, ctx: "RequestContext", method: str, path: str, status: int,
             seconds: float) -> str:
        """The JSON line. What depends only on the identity, and only on the trail, is
        encoded once and reused: a repeated token and outcome cost a dict lookup."""
        head = _ENCODER.encode({
            "v": SCHEMA_VERSION, "time": _utc(self.clock()), "request_id": ctx.request_id,
            "trace_id": ctx.trace.trace_id if ctx.trace is not None else None,
            "api": ctx.api, "method": method, "path": path, "status": status,
            "decision": ctx.decision, "reason": ctx.problem, "policies": list(ctx.policies),
            "mapped": _mapped_digest(ctx.mapped_identity),
            "limits": [{"kind": v.kind, "limit": v.limit, "remaining": v.remaining}
                       for v in ctx.limit_verdicts],
            "upstream": None if ctx.upstream is None else {
                "status": ctx.upstream.status, "ms": round(ctx.upstream.seconds * 1000, 2)},
            "ms": round(seconds * 1000, 2),
        })
        return f"{head[:-1]},{self._who(ctx)},{self._trail(ctx)}}}\n"

    def _who(self, ctx: "RequestContext") -> str:
        """``identity``, ``claims``, ``claims_absent``: encoded once per identity."""
        identity = ctx.identity
        key = (id(identity), ctx.session_id)
        known = self._whos.get(key)
        if known is not None and known[0] is identity:
            return known[1]
        fragment = _ENCODER.encode({"identity": self._identity(ctx), "claims": self._claims(ctx),
                                    "claims_absent": self._absent(ctx)})[1:-1]
        if len(self._whos) >= 4096:  # bounded; the entry keeps the identity (its id) alive
            self._whos.clear()
        self._whos[key] = (identity, fragment)
        return fragment

    def _trail(self, ctx: "RequestContext") -> str:
        """``rules``, ``decided_by``, ``authn``: encoded once per distinct trail."""
        steps = tuple((e.layer, e.name, e.outcome, e.detail) for e in ctx.trail
                      if e.layer in ("rules", "authn"))
        key = (steps, ctx.decision)
        fragment = self._trails.get(key)
        if fragment is not None:
            return fragment
        rules = rule_steps((name, outcome, detail) for layer, name, outcome, detail in steps
                           if layer == "rules")
        authn = [{"method": name, "outcome": outcome, "reason": detail if outcome == "failed" else None}
                 for layer, name, outcome, detail in steps if layer == "authn"]
        fragment = _ENCODER.encode({"rules": rules, "decided_by": deciding_rule(rules, ctx.decision),
                                    "authn": authn})[1:-1]
        if len(self._trails) >= 4096:
            self._trails.clear()
        self._trails[key] = fragment
        return fragment

    @staticmethod
    def _identity(ctx: "RequestContext") -> dict | None:
        identity = ctx.identity
        if identity is None:
            return None
        return {"alias": identity.alias, "method": identity.method, "issuer": identity.issuer or None,
                "client_id": identity.client_id or None, "provider": identity.provider or None,
                "session_id": ctx.session_id}

    def _claims(self, ctx: "RequestContext") -> dict | None:
        if not self.claims:
            return None
        carried = ctx.identity.claims if ctx.identity is not None else {}
        return {name: carried[name] for name in self.claims if name in carried}

    def _absent(self, ctx: "RequestContext") -> list[str] | None:
        if not self.claims:
            return None
        carried = ctx.identity.claims if ctx.identity is not None else {}
        return [name for name in self.claims if name not in carried]
