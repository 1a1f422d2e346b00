"""Evaluating a rule file for one request: the decision, the policies, the headers.

Speed: results that depend only on the token (``validate``, ``map``, ``assign`` and any
rule reading only ``claims``, ``token``, ``identity`` and ``api``) are computed once per
verified identity and cached with it; a repeated token re-runs none of them. A rule
that reads ``request``, ``session`` or ``now`` runs per request, memoised on exactly the
values its expression references (e.g. ``request.method``), bounded. The activation is
built once per request and only converted into CEL values when a rule must run.

Errors fail closed: an evaluation error counts as *not matched* in ``validate``,
``allow`` and ``assign``, as *matched* in ``deny``; in ``map`` and ``headers`` the value
is left out. Every rule's outcome is in the decision trail.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from ..config.policies import PolicyConfig
from ..errors import Forbidden, InsufficientScope, InvalidToken
from ..identity import Identity
from ..mutate.headers import check_header_value
from ..cel import Engine, EvalError, Rejected, lookup
from ..cel.api import Unresolved
from .celtext import cel_text
from .messages import refusal_reason
from .rulefile import Rule, RuleFile
from .shadow import log_shadow_file, log_shadow_rule, takes_effect
from .variables import (
    TOKEN_ROOTS, base_identity, cert_variable, limits_variable, now_variable, request_variable, session_variable,
    token_variable,
)

_UNSET = object()
_PART_IDS = itertools.count()  # never reused, unlike id() of an evicted object


@dataclass(frozen=True)
class Outcome:
    """What one rule gave: a value, or the error that stopped it."""

    value: Any = None
    error: str | None = None

    @property
    def true(self) -> bool:
        return self.error is None and self.value is True

    def describe(self) -> str:
        """The outcome as the decision trail shows it, formatted once per outcome (the
        token cache and the memo share outcomes across requests: formatting every time
        was a fifth of a warm request)."""
        text = self.__dict__.get("_text")
        if text is None:
            text = f"error: {self.error}" if self.error else cel_text(self.value)
            object.__setattr__(self, "_text", text)
        return text


@dataclass
class Decision:
    """The full result of a rule file for a request (also what ``explain`` prints)."""

    allowed: bool = True
    status: int = 200
    reason: str | None = None
    code: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, outcome, note)
    decided_by: str | None = None  # the rule (or step) that refused, or the allow rule that allowed

    def step(self, rule: Rule, outcome: Outcome, note: str = "") -> None:
        self.steps.append((rule.name, outcome.describe(), note))

    def refuse(self, status: int, reason: str, code: str | None = None, by: str | None = None) -> None:
        if self.allowed:
            self.allowed, self.status, self.reason, self.code = False, status, reason, code
            self.decided_by = by


class _TokenPart:
    """Everything that depends only on the identity (the verified token) and the API."""

    __slots__ = ("identity", "activation", "native", "identity_value", "static", "memo_id", "python")

    def __init__(self, identity: Identity, activation: dict, identity_value: dict):
        self.identity = identity            # kept so id(identity) cannot be reused
        self.activation = activation        # converted claims, token, identity, api
        self.native = None                  # the engine's activation of those, made once
        self.identity_value = identity_value  # the mapped identity, plain Python
        self.static: dict[str, Outcome] = {}
        self.memo_id = next(_PART_IDS)
        self.python: dict[str, Any] = {}    # the token variables, plain Python (memo keys)


class CelRuleSet:
    """The RuleSet of an API with a rule file (see ``middleware.rules.RuleSet``).

    :param rules: the compiled rule file.
    :param engine: the CEL engine it was compiled with.
    :param api: the API's name (the ``api`` variable, and policy access rights).
    :param policies: the config's policies by name.
    :param clock: wall-clock seconds (``now``).
    :param cache_size: token entries kept per worker; the same bound applies to each
        rule's memo.
    """

    def __init__(self, rules: RuleFile, engine: Engine, api: str,
                 policies: Mapping[str, PolicyConfig], *, clock: Callable[[], float] = time.time,
                 cache_size: int = 10_000, default_policy: str | None = None):
        self.rules = rules
        self.api_default = default_policy
        self.default_policy = rules.default_policy or default_policy
        self.name = rules.path.name
        self.engine = engine
        self.api = api
        self.policies = policies
        self.clock = clock
        self._api_value = engine.convert(api)
        self._by_name: dict[str, Rule] = {}
        for rule in rules.rules():
            self._by_name.setdefault(rule.name, rule)
        messages = [r.message_rule for r in rules.rules() if r.message_rule is not None]
        self._static = {r.key: _is_static(r) for r in (*rules.rules(), *messages)}
        self._late = frozenset(r.name for r in rules.headers
                               if any(ref.partition(".")[0] == "limits" for ref in r.program.references))
        self._tokens: LRUCache = LRUCache(maxsize=cache_size)
        self._memo: LRUCache = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()

    # -- the RuleSet protocol ------------------------------------------------------
    def evaluate(self, ctx, request) -> None:
        values = _RequestValues(request.environ, request, self, ctx.session_record)
        values.live = True
        decision = self.decide(ctx.identity, values)
        for name, outcome, note in decision.steps:
            ctx.record("rules", name, outcome, note)
            rule = self._by_name.get(name)
            if rule is not None and (rule.shadow or self.rules.shadow) and takes_effect(outcome, note):
                log_shadow_rule(ctx, self.name, self.api, rule, outcome, note, decision, values)
        if self.rules.shadow:  # as if there were no rules: only the API's default policy
            log_shadow_file(ctx, self.name, decision)
            ctx.record("rules", self.name, "shadow", "not enforced")
            ctx.policies = (self.api_default,) if self.api_default else ()
            return
        ctx.mapped_identity = decision.identity
        ctx.policies = tuple(decision.policies)
        if not decision.allowed:
            raise _refusal(decision)
        ctx.upstream_headers.update(decision.headers)

    @property
    def reads_limits(self) -> bool:
        """Whether some header rule reads ``limits`` (then the LimitHeaders stage runs)."""
        return bool(self._late)

    def limit_headers(self, ctx, request) -> dict[str, str]:
        """The header rules that read ``limits``, evaluated once the Limits layer has
        counted (its own stage, after Limits: the request flows one way)."""
        if not self._late or self.rules.shadow:
            return {}
        values = _RequestValues(request.environ, request, self, ctx.session_record)
        values.set_limits(limits_variable(ctx.limit_verdicts))
        decision = Decision()
        self._headers(_Runner(self, self._token_part(ctx.identity), values), decision, late=True)
        for name, outcome, note in decision.steps:
            ctx.record("rules", name, outcome, note)
        return decision.headers

    # -- the decision --------------------------------------------------------------
    def decide(self, identity: Identity, request: "_RequestValues") -> Decision:
        """Evaluate every section for this identity and request."""
        part = self._token_part(identity)
        run = _Runner(self, part, request)
        decision = Decision(identity=part.identity_value)
        for rule in self.rules.map:
            decision.step(rule, part.static[rule.key], "identity." + rule.name)
        self._validate(run, decision)
        self._assign(run, decision, part)
        self._access(request, decision)
        self._deny(run, decision)
        self._allow(run, decision)
        if decision.allowed:
            self._headers(run, decision, late=False if request.live else None)
        return decision

    def _validate(self, run, decision: Decision) -> None:
        for rule in self.rules.validate:
            outcome = run(rule)
            decision.step(rule, outcome, _shadow_note(rule, not outcome.true, "would fail"))
            if not outcome.true and not rule.shadow and decision.allowed:
                decision.refuse(401, refusal_reason(run, rule), by=rule.name)

    def _assign(self, run, decision: Decision, part: "_TokenPart") -> None:
        for rule in self.rules.assign:
            outcome = run(rule)
            note = f"policy {rule.policy}" + (" (shadow, not applied)" if rule.shadow else "")
            decision.step(rule, outcome, note if outcome.true else "")
            if outcome.true and not rule.shadow and rule.policy not in decision.policies:
                decision.policies.append(rule.policy)
        if not decision.policies and part.identity.policies:  # granted by the credential
            decision.policies.extend(part.identity.policies)
            decision.steps.append(("credential policies", ", ".join(part.identity.policies),
                                   "no assign matched"))
        if not decision.policies and self.default_policy:
            decision.policies.append(self.default_policy)
            decision.steps.append(("default_policy", self.default_policy, "no assign matched"))

    def _access(self, request: "_RequestValues", decision: Decision) -> None:
        if not decision.policies:
            if self.rules.assign:
                decision.refuse(403, "no policy applies to this identity", by="assign")
            return
        reason = access_refusal(self.policies, decision.policies, self.api, request.method, request.path)
        if reason:
            decision.refuse(403, reason, by="policies")

    def _deny(self, run, decision: Decision) -> None:
        for rule in self.rules.deny:
            outcome = run(rule)
            matched = outcome.value is True or outcome.error is not None  # errors deny
            decision.step(rule, outcome, _shadow_note(rule, matched, "would deny") or
                          ("denies" if matched else ""))
            if matched and not rule.shadow and decision.allowed:
                decision.refuse(403, refusal_reason(run, rule), rule.code, by=rule.name)

    def _allow(self, run, decision: Decision) -> None:
        enforced = [r for r in self.rules.allow if not r.shadow]
        matched_any = False
        for rule in self.rules.allow:
            outcome = run(rule)
            decision.step(rule, outcome, "allows" if outcome.true else "")
            if outcome.true and not rule.shadow and not matched_any and decision.allowed:
                decision.decided_by = rule.name
            matched_any |= outcome.true and not rule.shadow
        if enforced and not matched_any:
            code = next((r.code for r in enforced if r.code), None)
            decision.refuse(403, "no allow rule matched", code, by="allow")

    def _headers(self, run, decision: Decision, late: bool | None = None) -> None:
        """The header rules: all of them (late=None, for explain and tests), or only
        those that do not (late=False) or do (late=True) read ``limits``."""
        for rule in self.rules.headers:
            if late is not None and (rule.name in self._late) != late:
                continue
            outcome = run(rule)
            value = None if outcome.error else header_text(outcome.value)
            note = ""
            if value is not None:
                try:
                    check_header_value(rule.name, value)
                except ValueError as exc:
                    value, note = None, str(exc)
            decision.step(rule, outcome, note or ("" if value is not None else "not sent"))
            if value is not None:
                decision.headers[rule.name] = value

    # -- caching -------------------------------------------------------------------
    def _token_part(self, identity: Identity) -> _TokenPart:
        key = id(identity)
        with self._lock:
            part = self._tokens.get(key)
        if part is not None and part.identity is identity:
            return part
        part = self._build_token_part(identity)
        with self._lock:
            self._tokens[key] = part
        return part

    def _build_token_part(self, identity: Identity) -> _TokenPart:
        convert = self.engine.convert
        activation = {"claims": convert(dict(identity.claims)), "token": convert(token_variable(identity)),
                      "api": self._api_value, "cert": convert(cert_variable(identity))}
        mapped = base_identity(identity)
        activation["identity"] = convert(mapped)
        part = _TokenPart(identity, activation, mapped)
        for rule in self.rules.map:  # map rules see the base identity
            if self._static[rule.key]:
                outcome = _fit_for_identity(convert, rule, _evaluate(rule, activation))
                part.static[rule.key] = outcome
                if outcome.error is None:
                    mapped[rule.name] = outcome.value
        activation["identity"] = convert(mapped)
        part.native = self.engine.activation(activation)
        part.python = {"claims": identity.claims, "token": token_variable(identity),
                       "identity": mapped, "api": self.api, "cert": cert_variable(identity)}
        return part

    def memo_get(self, key) -> Outcome | None:
        with self._lock:
            return self._memo.get(key)

    def memo_put(self, key, outcome: Outcome) -> None:
        with self._lock:
            self._memo[key] = outcome

    def is_static(self, rule: Rule) -> bool:
        return self._static[rule.key]


class _RequestValues:
    """The request-side variables, built lazily: most requests need few of them."""

    def __init__(self, environ: dict, request, ruleset: CelRuleSet, session: dict | None = None):
        self.environ, self.request, self.ruleset = environ, request, ruleset
        self.session = session
        self.live = False    # True in the stack: headers reading limits wait for them
        self.limits: dict = limits_variable(())
        self._python: dict | None = None
        self._converted: dict | None = None
        self._native = None

    @property
    def method(self) -> str:
        return self.environ.get("REQUEST_METHOD", "")

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "") or "/"

    _DIRECT = {"method": ("REQUEST_METHOD", ""), "scheme": ("wsgi.url_scheme", "http"),
               "remote_addr": ("REMOTE_ADDR", "")}

    def lookup(self, root: str, rest: str) -> Any:
        """One variable path's value, without building the whole variable when cheap."""
        if root == "request" and self._python is None:
            if rest in self._DIRECT:
                key, default = self._DIRECT[rest]
                return self.environ.get(key, default)
            if rest == "path":
                return self.path
            if rest.startswith("headers.") and "." not in rest[8:]:
                value = self.request.headers.get(rest[8:])
                return value
        return _memo_value(lookup(self.python(), f"{root}.{rest}"))

    def python(self) -> dict[str, Any]:
        if self._python is None:
            self._python = {"request": request_variable(self.environ, self.request),
                            "session": session_variable(self.session),
                            "now": now_variable(self.ruleset.clock()),
                            "limits": self.limits}
        return self._python

    def converted(self) -> dict[str, Any]:
        if self._converted is None:
            convert = self.ruleset.engine.convert
            self._converted = {k: convert(v) for k, v in self.python().items()}
        return self._converted

    def set_limits(self, limits: dict) -> None:
        """Bind ``limits`` (after the Limits layer counted), refreshing the activations."""
        self.limits = limits
        if self._python is not None:
            self._python["limits"] = limits
        if self._converted is not None:
            self._converted["limits"] = self.ruleset.engine.convert(limits)
        self._native = None

    def native(self, part: "_TokenPart"):
        """The engine's activation of every variable for this request, made once."""
        if self._native is None:
            self._native = self.ruleset.engine.activation({**part.activation, **self.converted()})
        return self._native


class _Runner:
    """Runs one rule for one request: from the token cache, the memo, or the engine."""

    def __init__(self, ruleset: CelRuleSet, part: _TokenPart, request: _RequestValues):
        self.ruleset, self.part, self.request = ruleset, part, request

    def __call__(self, rule: Rule) -> Outcome:
        key = rule.key
        if self.ruleset.is_static(rule):
            outcome = self.part.static.get(key)
            if outcome is None:
                outcome = self.part.static[key] = _evaluate(rule, self.part.native)
            return outcome
        memo_key = self._memo_key(rule, key)
        if memo_key is not None:
            outcome = self.ruleset.memo_get(memo_key)
            if outcome is not None:
                return outcome
        outcome = _evaluate(rule, self.request.native(self.part))
        if memo_key is not None:
            self.ruleset.memo_put(memo_key, outcome)
        return outcome

    def _memo_key(self, rule: Rule, key: str):
        """The exact inputs the rule reads, when they are all known and hashable: the
        values, not the token, so identities that read alike share an entry (a new
        identity does not re-run a rule reading only the request, or the request and
        ``identity.groups``). A token value that cannot be a key (a map, a list of maps)
        falls back to the token part's id."""
        values = []
        per_token = False
        for ref in rule.program.references:
            root, _, rest = ref.partition(".")
            if root in TOKEN_ROOTS:
                value = _typed_key(lookup(self.part.python, ref))
                if value is _UNSET:
                    per_token = True  # fixed by the token part
                else:
                    values.append(value)
                continue
            if root == "now" or not rest:
                return None
            value = self.request.lookup(root, rest)
            if value is _UNSET:
                return None
            values.append(value)
        return (self.part.memo_id if per_token else None, key, tuple(values))


_SCALARS = (bool, int, float, str, type(None))


def _typed_key(value: Any) -> Any:
    """A token value as a memo key part, with its type (``True``, ``1`` and ``1.0`` are
    equal in Python but not in CEL); lists of scalars as tuples; anything else _UNSET."""
    if isinstance(value, _SCALARS) or isinstance(value, Unresolved):
        return (type(value), value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return (list, tuple((type(v), v) for v in value))
    return _UNSET


def _memo_value(value: Any) -> Any:
    """A looked-up value fit for a memo key: maps and lists are not (their rules run every
    time); a missing key (Unresolved) stays distinct from a null."""
    return _UNSET if isinstance(value, (dict, list, Mapping)) else value


def access_refusal(policies: Mapping[str, PolicyConfig], names, api: str, method: str,
                   path: str) -> str | None:
    """Why the applied policies refuse ``method path`` on ``api`` (None: one allows it)."""
    known = [policies[p] for p in names if p in policies]
    if known and not any(p.allows(api, method, path) for p in known):
        return "no assigned policy grants access to this path"
    return None


def _evaluate(rule: Rule, activation: Mapping[str, Any]) -> Outcome:
    try:
        return Outcome(rule.program.evaluate(activation))
    except EvalError as exc:
        return Outcome(error=exc.message)


def _fit_for_identity(convert, rule: Rule, outcome: Outcome) -> Outcome:
    """A map entry's outcome, as an error when ``identity`` could not hold its value (a
    timestamp, or a value over the size limits): left out, it cannot make the whole
    ``identity`` unusable for every later rule."""
    if outcome.error is None:
        checked = convert({rule.name: outcome.value})
        if isinstance(checked, Rejected):
            return Outcome(error=f"identity.{rule.name} cannot hold this value: {checked.reason}")
    return outcome


def _is_static(rule: Rule) -> bool:
    roots = {ref.partition(".")[0] for ref in rule.program.references}
    return roots <= TOKEN_ROOTS


def header_text(value: Any) -> str | None:
    """A header value from a rule result: strings as they are, numbers and booleans in
    CEL notation, lists joined with ", " (RFC 9110 list syntax); null and maps give none."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        items = [header_text(v) for v in value]
        return ", ".join(i for i in items if i is not None)
    if isinstance(value, bytes):
        return None
    return str(value)


def _shadow_note(rule: Rule, happened: bool, what: str) -> str:
    return f"shadow: {what}" if rule.shadow and happened else ""


def _refusal(decision: Decision):
    if decision.status == 401:
        return InvalidToken(decision.reason)
    if decision.code == "insufficient_scope":
        return InsufficientScope(decision.reason, headers={
            "WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    return Forbidden(decision.reason)
