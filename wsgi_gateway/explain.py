"""``wsgi-gateway explain``: how the gateway decides one request, in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from .app import build_app
from .config import load_config
from .errors import ConfigError, GatewayError
from .identity import Identity
from .middleware.rules import AllowAll


def _noop(environ, start_response):
    start_response("204 No Content", [])
    return [b""]


def explain(config_path: str, *, token: str | None, claims_file: str | None, request: str,
            headers: list[str]) -> tuple[str, bool]:
    """The explanation text, and whether the request would be allowed."""
    method, _, path = request.strip().partition(" ")
    if not method or not path.startswith("/"):
        raise ConfigError(f"--request: expected 'METHOD /path', got {request!r}")
    gateway = build_app(load_config(config_path), _noop)
    out = [f"request: {method.upper()} {path}"]
    name, _ = gateway.router.match(path)
    if name is None or name not in gateway.apis:
        return "\n".join(out + ["api: none (404: no API is served at this path)"]), False
    api = gateway.apis[name]
    out.append(f"api: {name} (rules: {api.config.rules or 'none'})")
    environ = _environ(method.upper(), path, headers, token)
    try:
        identity = _identity(gateway, api, environ, token, claims_file)
    except GatewayError as err:
        out.append(f"authentication: {err.status} {err.detail or err.title}")
        return "\n".join(out + [f"decision: {err.status} {err.detail or err.title}"]), False
    out += _describe_identity(identity)
    if isinstance(api.rules, AllowAll):
        return "\n".join(out + ["rules: none", "decision: allow"]), True
    from .policy.evaluate import _RequestValues

    decision = api.rules.decide(identity, _RequestValues(environ, Request(environ), api.rules))
    out.append("rules:")
    out += [f"  {rule}: {outcome}" + (f"  ({note})" if note else "")
            for rule, outcome, note in decision.steps]
    out.append("identity (mapped): " + json.dumps(decision.identity, default=str))
    out.append("policies: " + (", ".join(decision.policies) or "none"))
    out.append("headers upstream: " + (json.dumps(decision.headers) if decision.headers else "none"))
    verdict = "allow" if decision.allowed else f"{decision.status} {decision.reason}"
    if api.rules.rules.shadow:
        verdict += " (the rule file is in shadow mode: not enforced)"
    out.append(f"decision: {verdict}")
    return "\n".join(out), decision.allowed or api.rules.rules.shadow


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


def _identity(gateway, api, environ: dict, token: str | None, claims_file: str | None) -> Identity:
    if claims_file is not None:
        return _claims_identity(gateway.config, Path(claims_file))
    gateway.warm()
    request = Request(environ)
    for authenticator in api.authenticators:
        identity = authenticator.authenticate(request)
        if identity is not None:
            return identity
    raise GatewayError("no authentication method recognised the token")


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


def _describe_identity(identity: Identity) -> list[str]:
    if identity.anonymous:
        return ["authentication: anonymous (keyless)"]
    return [f"authentication: {identity.method} via {identity.provider or '-'}: "
            f"subject {identity.subject!r}, client {identity.client_id or '-'}, "
            f"scopes {list(identity.scopes)}"]
