"""Per-request cost of a 10-rule file, cold token vs warm, for each CEL engine, in process.

    .venv/bin/python contrib/bench/bench_rules.py [--requests 5000] [--tenant-rule]

Measures ``CelRuleSet.decide`` (what the Rules layer runs) for the rule file below:
- cold: a new identity every request (claims converted, every token-only rule run);
- warm: the same identity (token-only results cached; request rules memoised);
- warm, varied paths: the same identity but a new path each time (the request rules
  reading ``request.path`` run every time).
A benchmark, not a test: it asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wsgi_gateway.config.policies import PolicyConfig  # noqa: E402
from wsgi_gateway.identity import Identity  # noqa: E402
from wsgi_gateway.cel import get_engine  # noqa: E402
from wsgi_gateway.policy.evaluate import CelRuleSet, _RequestValues  # noqa: E402
from wsgi_gateway.policy.rulefile import load_rule_file  # noqa: E402

RULES = """\
validate:
  - {expr: "token.aud.exists(a, a == 'api')", message: "not for this API"}
  - {expr: "has(claims.tenant)", message: "no tenant"}
map:
  id: "token.iss + '|' + claims.sub"
  groups: "has(claims.groups) ? claims.groups : []"
assign:
  - {policy: gold, when: "'admin' in token.scopes"}
  - {policy: bronze, when: "token.client_id == 'mobile-app'"}
default_policy: bronze
deny:
  - {when: "request.method == 'DELETE' && !('ops' in identity.groups)", reason: "ops only"}
  - {when: "request.path.startsWith('/admin') && !('admins' in identity.groups)", reason: "admins only"}
allow:
  - {when: "request.method in ['GET', 'HEAD']"}
headers:
  X-User-Id: "identity.id"
"""


def identity(i: int) -> Identity:
    claims = {"iss": "https://idp", "sub": f"user-{i}", "aud": "api", "tenant": "acme",
              "groups": ["sales", "emea"], "scope": "read write", "azp": "web",
              "iat": 1700000000, "exp": 1900000000, "jti": f"j{i}", "email": "a@b.c",
              "email_verified": True, "name": "A B", "locale": "en", "org": "acme"}
    return Identity(method="jwt", subject=claims["sub"], issuer=claims["iss"], client_id="web",
                    scopes=("read", "write"), audiences=("api",), expires_at=claims["exp"],
                    claims=MappingProxyType(claims), provider="bench", token_kind="access")


TENANT_RULE = """\
  - {when: "'x-tenant' in request.headers && request.headers['x-tenant'] != claims.tenant", reason: "tenant"}
"""
HEADERS: dict[str, str] = {}


def values(ruleset, path: str) -> _RequestValues:
    environ = EnvironBuilder(method="GET", path=path, headers=HEADERS).get_environ()
    return _RequestValues(environ, Request(environ), ruleset)


def per_request(ruleset, identities, paths) -> float:
    requests = [values(ruleset, p) for p in paths]  # building the environ is the server's cost
    fresh = [values(ruleset, p) for p in paths]
    started = time.perf_counter()
    for ident, request in zip(identities, fresh):
        ruleset.decide(ident, request)
    del requests
    return (time.perf_counter() - started) / len(identities) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tenant-rule", action="store_true",
                        help="add a deny using the header-presence idiom, and send X-Tenant")
    args = parser.parse_args()
    n = args.requests
    text = RULES
    if args.tenant_rule:
        text = RULES.replace("allow:\n", TENANT_RULE + "allow:\n")
        HEADERS["X-Tenant"] = "acme"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)
        print(f"{'engine':11} {'cold µs':>9} {'warm µs':>9} {'warm, new path µs':>18}")
        for name in ("cel-python", "cel-cpp"):
            engine = get_engine(name)
            rules = load_rule_file(path, engine, {"gold", "bronze"})
            policies = MappingProxyType({"gold": PolicyConfig(), "bronze": PolicyConfig()})
            ruleset = CelRuleSet(rules, engine, "orders", policies)
            cold = per_request(ruleset, [identity(i) for i in range(n)], ["/orders/1"] * n)
            same = identity(-1)
            ruleset.decide(same, values(ruleset, "/orders/1"))
            warm = per_request(ruleset, [same] * n, ["/orders/1"] * n)
            varied = per_request(ruleset, [same] * n, [f"/orders/{i}" for i in range(n)])
            print(f"{name:11} {cold:9.1f} {warm:9.1f} {varied:18.1f}")


if __name__ == "__main__":
    main()
