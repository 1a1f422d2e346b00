"""``wsgi-gateway explain``: what the gateway answers to one request, and why.

The request runs through the gateway's own stack (router, authentication, sessions,
rules, limits, header mutation), so the status, the error code and the headers the
upstream would get are the gateway's, not a re-implementation's. The store is the
configured one, read-only (:class:`~wsgi_gateway.store.dryrun.DryRunStore`): an
explanation sees revocations and spent quotas but counts nothing. The rule file is then
evaluated once more on its own to show every rule's expression and value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from .app import build_app
from .config import load_config
from .context import ENVIRON_KEY, RequestContext
from .errors import ConfigError, GatewayError
from .identity import Identity
from .middleware.authenticate import Authenticate
from .policy.celtext import cel_text
from .store import build_store
from .store.dryrun import DryRunStore


@dataclass(frozen=True)
class RuleStep:
    """One rule as evaluated: its section, expression, value (CEL syntax) and effect."""

    name: str
    section: str
    expression: str
    value: str
    note: str


@dataclass
class Explanation:
    """Everything ``explain`` prints (as text or JSON)."""

    request: str
    status: int
    code: str | None = None
    detail: str | None = None
    api: str | None = None
    rules_file: str | None = None
    authentication: str = "not reached"
    decided_by: str | None = None
    rules: list[RuleStep] = field(default_factory=list)
    identity: dict[str, Any] | None = None
    policies: list[str] = field(default_factory=list)
    upstream_headers: dict[str, str] | None = None
    shadow: bool = False

    @property
    def allowed(self) -> bool:
        return self.status < 400

    def as_json(self) -> str:
        return json.dumps({**asdict(self), "allowed": self.allowed}, default=str, indent=2)

    def text(self) -> str:
        out = [f"request: {self.request}"]
        out.append(f"api: {self.api} (rules: {self.rules_file or 'none'})" if self.api
                   else "api: none")
        out.append(f"authentication: {self.authentication}")
        if self.rules:
            out.append("rules:")
            for step in self.rules:
                where = f"{step.section} " if step.section and not step.name.startswith(step.section) else ""
                out.append(f"  {where}{step.name}: {step.value}" + (f"  ({step.note})" if step.note else ""))
                if step.expression:
                    out.append(f"      {step.expression}")
        if self.identity is not None:
            out.append("identity (mapped): " + json.dumps(self.identity, default=str))
            out.append("policies: " + (", ".join(self.policies) or "none"))
        if self.upstream_headers is not None:
            out.append("headers upstream: " + (json.dumps(self.upstream_headers) if self.upstream_headers else "none"))
        if self.decided_by:
            out.append(f"decided by: {self.decided_by}")
        verdict = "allow" if self.allowed else f"{self.status} {self.code} {self.detail}"
        if self.shadow:
            verdict += " (the rule file is in shadow mode: not enforced)"
        out.append(f"decision: {verdict}")
        return "\n".join(out)


def explain(config_path: str, *, token: str | None, claims_file: str | None, request: str,
            headers: list[str]) -> Explanation:
    """What the gateway configured at ``config_path`` answers to ``request``."""
    method, path = _parse_request(request)
    config = load_config(config_path)
    upstream = _Upstream()
    gateway = build_app(config, upstream, store=DryRunStore(build_store(config.store)))
    try:
        return _explain(gateway, upstream, config, method, path, token, claims_file, headers)
    finally:
        gateway.close()


def _explain(gateway, upstream: "_Upstream", config, method: str, path: str, token: str | None,
             claims_file: str | None, headers: list[str]) -> Explanation:
    result = Explanation(request=f"{method} {path}", status=0)
    environ = _environ(method, path, headers, token)
    identity = None
    if claims_file is None:
        gateway.warm()
        _run(gateway, environ, result)
        ctx: RequestContext = environ[ENVIRON_KEY]
        identity = ctx.identity
    else:
        identity = _claims_identity(config, Path(claims_file))
        ctx = environ[ENVIRON_KEY] = RequestContext(request_id="explain")
        _run_with_identity(gateway, environ, identity, result)
    result.api = ctx.api
    result.authentication = _describe(identity, claims_file is not None, result)
    if ctx.api in gateway.apis and identity is not None:
        _rules(gateway.apis[ctx.api], identity, _environ(method, path, headers, token), result)
    if ctx.decision in ("unauthenticated", "unavailable", "revoked", "limited") or result.decided_by is None:
        result.decided_by = _layer(ctx, result)
    if upstream.headers is not None:
        result.upstream_headers = upstream.headers
    return result


class _Upstream:
    """The wrapped app's stand-in: records the headers the gateway would send it, and
    answers 200 (what the real app answers is its own business)."""

    def __init__(self):
        self.headers: dict[str, str] | None = None

    def __call__(self, environ, start_response):
        self.headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                        if k.startswith("HTTP_") and k != "HTTP_HOST"}
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]


def _run(app, environ: dict, result: Explanation) -> None:
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
    result.status = int(status[0].split()[0])
    if result.status >= 400:
        try:
            problem = json.loads(body)
        except ValueError:
            problem = {}
        kind = str(problem.get("type", ""))
        result.code = kind.rpartition(":")[2] if kind.startswith("urn:wsgi-gateway:problem:") else None
        result.detail = problem.get("detail") or problem.get("title")


def _run_with_identity(gateway, environ: dict, identity: Identity, result: Explanation) -> None:
    """The stack after authentication, for an identity given as claims (not verified)."""
    path = environ.get("PATH_INFO") or "/"
    ctx: RequestContext = environ[ENVIRON_KEY]
    try:
        ctx.api, app = gateway.router.match(path)
    except GatewayError as err:
        return _run(err, environ, result)
    if isinstance(app, Authenticate):
        ctx.identity = identity
        ctx.session_id = identity.session_id(app.segregate_by_client)
        app = app.app
    return _run(app, environ, result)


def _rules(api, identity: Identity, environ: dict, result: Explanation) -> None:
    from .policy.evaluate import CelRuleSet, _RequestValues

    result.rules_file = api.config.rules
    if not isinstance(api.rules, CelRuleSet):
        return
    decision = api.rules.decide(identity, _RequestValues(environ, Request(environ), api.rules))
    by_name = {rule.name: rule for rule in api.rules.rules.rules()}
    for name, value, note in decision.steps:
        rule = by_name.get(name)
        result.rules.append(RuleStep(name, rule.section if rule else "", rule.source if rule else "",
                                     value, note))
    result.identity = decision.identity
    result.policies = list(decision.policies)
    result.shadow = api.rules.rules.shadow
    if result.status >= 400 and not decision.allowed or result.status < 400:
        result.decided_by = decision.decided_by


def _layer(ctx: RequestContext, result: Explanation) -> str | None:
    """Which layer answered, when no rule did."""
    layers = {"unauthenticated": "authentication", "unavailable": "store or key set",
              "revoked": "sessions (revoked)", "limited": "limits"}
    if ctx.decision in layers:
        return layers[ctx.decision]
    if ctx.api is None:
        return "router"
    return None if result.allowed else "gateway"


def _parse_request(request: str) -> tuple[str, str]:
    method, _, path = request.strip().partition(" ")
    path = path.strip()
    if not method or not path.startswith("/"):
        raise ConfigError(f"--request: expected 'METHOD /path', got {request!r}")
    return method.upper(), path


def _environ(method: str, path: str, headers: list[str], token: str | None) -> dict:
    header_map = {}
    for item in headers:
        key, sep, value = item.partition(":")
        if not sep:
            raise ConfigError(f"--header: expected K:V, got {item!r}")
        header_map[key.strip()] = value.strip()
    if token:
        header_map["Authorization"] = f"Bearer {token}"
    path, _, query = path.partition("?")
    return EnvironBuilder(method=method, path=path, query_string=query, headers=header_map).get_environ()


def _claims_identity(config, path: Path) -> Identity:
    from .policy.testing import case_identity

    try:
        claims: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--claims {path}: cannot be read: {exc}") from None
    if not isinstance(claims, dict):
        raise ConfigError(f"--claims {path}: expected a JSON or YAML object of claims")
    provider = next((p for p in config.providers if p.issuer == claims.get("iss")), None)
    settings = {} if provider is None else {
        "name": provider.name, "issuer": provider.issuer, "identity_claim": provider.identity_claim,
        "scope_claim": provider.scope_claim, "client_id_claims": provider.client_id_claims,
        "org_claim": provider.org_claim}
    return case_identity({"claims": claims}, settings)


def _describe(identity: Identity | None, from_claims: bool, result: Explanation) -> str:
    if identity is None:
        return f"failed: {result.status} {result.detail}" if result.status in (401, 503) else "not reached"
    if identity.anonymous:
        return "anonymous (keyless)"
    how = "claims file, not verified" if from_claims else f"{identity.method} via {identity.provider or '-'}"
    return (f"{how}: subject {identity.subject!r}, client {identity.client_id or '-'}, "
            f"scopes {cel_text(list(identity.scopes))}")
