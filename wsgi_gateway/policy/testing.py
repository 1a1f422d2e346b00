"""``wsgi-gateway rules test``: rule files tested like code.

A test file ``NAME.test.yaml`` sits beside ``NAME.yaml`` and lists cases: claims and a
request in, the expected decision, policies, identity fields and headers out::

    rules: orders.yaml              # default: this file's name without .test
    api: orders                     # the `api` variable (default: the rule file's stem)
    policies: [gold, bronze]        # the policy names the config defines (optional)
    provider: {issuer: https://idp.example.com, scope_claim: realm_access.roles}
    cases:
      - name: admins get gold
        claims: {sub: ann, scope: "admin orders:read"}
        request: {method: GET, path: /v1/orders/7, headers: {x-tenant: acme}}
        expect:
          decision: allow            # allow | deny | invalid (a validate rule failed)
          policies: [gold]
          identity: {id: ann}        # only the fields named are compared
          headers: {X-User-Id: ann}  # null: the header must not be sent
          reason: ...                # the deny reason, when decision is deny/invalid
          rule: deny[1]              # the rule that decided (its name; `allow` when no allow
                                     # rule matched, `assign`/`policies` for policy refusals)
          errors: [deny[2]]          # exactly these rules failed to evaluate ([]: none did)

An ``expect`` that asserts nothing is an error, not a pass. ``--coverage`` lists the rules
no case evaluated, and the conditions no case made true (or false).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ..authn.jwt.claims import claim_at, scopes_of
from ..config.source import load_yaml
from ..config.policies import PolicyConfig
from ..errors import ConfigError
from ..identity import ANONYMOUS, Identity
from ..cel import Engine
from .evaluate import CelRuleSet, Decision, _RequestValues
from .rulefile import Rule, RuleFile, load_rule_file

_CASE_KEYS = {"name", "claims", "anonymous", "request", "expect", "now"}
_EXPECT_KEYS = {"decision", "status", "reason", "policies", "identity", "headers", "rule", "errors"}
_CONDITIONS = ("validate", "assign", "deny", "allow")


@dataclass
class CaseResult:
    """One case: where it is, and how the decision differed from what it expected."""

    file: Path
    line: int
    name: str
    diffs: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.diffs

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "line": self.line, "name": self.name,
                "passed": self.passed, "diffs": list(self.diffs)}


@dataclass
class Coverage:
    """Which outcomes each rule of the tested files gave, over every case."""

    rules: dict[tuple[str, str], Rule] = field(default_factory=dict)   # (file, rule key) -> rule
    seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add_file(self, rules: RuleFile) -> None:
        for rule in rules.rules():
            self.rules.setdefault((str(rules.path), rule.key), rule)
            self.seen.setdefault((str(rules.path), rule.key), set())

    def record(self, rules: RuleFile, decision: Decision) -> None:
        by_name = {rule.name: rule for rule in rules.rules()}
        for name, value, _ in decision.steps:
            rule = by_name.get(name)
            if rule is not None:
                kind = "error" if value.startswith("error:") else value if value in ("true", "false") else "value"
                self.seen[(str(rules.path), rule.key)].add(kind)

    def gaps(self) -> list[dict[str, Any]]:
        """Rules never evaluated, conditions never true or never false, with file:line."""
        out = []
        for key, rule in self.rules.items():
            seen = self.seen[key]
            if not seen:
                missing = ["evaluated"]
            elif rule.section in _CONDITIONS:
                missing = [f"{b}" for b in ("true", "false") if b not in seen]
            else:
                missing = []
            if missing:
                line = rule.location.mark.line if rule.location.mark else 0
                out.append({"file": key[0], "line": line, "rule": rule.name, "never": missing})
        return out


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``*.test.yaml`` in ``paths`` (files or folders, searched recursively)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(path.rglob("*.test.yaml")))
        elif path.name.endswith(".test.yaml"):
            found.append(path)
        elif path.suffix in (".yaml", ".yml") and path.with_name(path.stem + ".test.yaml").exists():
            found.append(path.with_name(path.stem + ".test.yaml"))
        else:
            raise ConfigError(f"{path}: not a rule test file (NAME.test.yaml) or a folder")
    return found


def run_test_file(path: Path, engine: Engine, coverage: Coverage | None = None) -> list[CaseResult]:
    """Run every case of one test file (recording rule outcomes into ``coverage``)."""
    node = load_yaml(path)
    if not isinstance(node, dict) or not isinstance(node.get("cases"), list):
        raise ConfigError(f"{path}:1: a rule test file needs a 'cases' list")
    rules_path = path.parent / node.get("rules", path.name.replace(".test.yaml", ".yaml"))
    names = node.get("policies")
    rules = load_rule_file(rules_path, engine, set(names) if names is not None else None)
    policies = MappingProxyType({n: PolicyConfig() for n in (names or rules.policies)})
    ruleset = CelRuleSet(rules, engine, node.get("api", rules_path.stem), policies)
    provider = node.get("provider") or {}
    if coverage is not None:
        coverage.add_file(rules)
    results = []
    for i, case in enumerate(node["cases"]):
        line = node["cases"].lines[i] if hasattr(node["cases"], "lines") else 0
        results.append(_run_case(path, line, case, ruleset, provider, coverage))
    return results


def _run_case(path: Path, line: int, case: Any, ruleset: CelRuleSet, provider: dict,
              coverage: Coverage | None = None) -> CaseResult:
    name = case.get("name", f"case at line {line}") if isinstance(case, dict) else f"line {line}"
    result = CaseResult(path, line, str(name))
    if not isinstance(case, dict) or not isinstance(case.get("expect"), dict):
        result.diffs.append("a case is a mapping with claims, request and expect")
        return result
    unknown = (set(case) - _CASE_KEYS) | (set(case["expect"]) - _EXPECT_KEYS)
    if unknown:
        result.diffs.append(f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
        return result
    if not case["expect"]:
        result.diffs.append("expect is empty: a case must assert something (e.g. decision: allow)")
        return result
    identity = case_identity(case, provider)
    decision = decide(ruleset, identity, case.get("request") or {}, case.get("now"))
    if coverage is not None:
        coverage.record(ruleset.rules, decision)
    result.diffs.extend(compare(case["expect"], decision))
    return result


def case_identity(case: dict, provider: dict) -> Identity:
    """The Identity a token with these claims would give, as a provider normalises it."""
    if case.get("anonymous"):
        return ANONYMOUS
    claims = dict(case.get("claims") or {})
    client = next((claims[c] for c in provider.get("client_id_claims", ("azp", "client_id", "cid"))
                   if isinstance(claims.get(c), str)), "")
    aud = claims.get("aud")
    subject = claim_at(claims, provider.get("identity_claim", "sub"))
    org_claim = provider.get("org_claim")
    return Identity(
        method="jwt", subject=str(subject) if subject is not None else "",
        issuer=provider.get("issuer", claims.get("iss", "")), client_id=client,
        scopes=scopes_of(claim_at(claims, provider.get("scope_claim", "scope"))),
        audiences=(aud,) if isinstance(aud, str) else tuple(aud or ()),
        expires_at=claims.get("exp"), claims=MappingProxyType(claims),
        org=str(claim_at(claims, org_claim) or "") if org_claim else "",
        provider=provider.get("name", "test"), token_kind="access")


def decide(ruleset: CelRuleSet, identity: Identity, request: dict, now: Any = None) -> Decision:
    """The decision for ``identity`` and a request described as a mapping."""
    builder = EnvironBuilder(
        method=request.get("method", "GET"), path=request.get("path", "/"),
        headers=request.get("headers") or {}, query_string=request.get("query") or None,
        environ_base={"REMOTE_ADDR": request.get("remote_addr", "127.0.0.1")})
    environ = builder.get_environ()
    if now is not None:
        from datetime import datetime

        moment = datetime.fromisoformat(str(now).replace("Z", "+00:00")).timestamp()
        ruleset = _with_clock(ruleset, lambda: moment)
    return ruleset.decide(identity, _RequestValues(environ, Request(environ), ruleset))


def _with_clock(ruleset: CelRuleSet, clock) -> CelRuleSet:
    clone = object.__new__(CelRuleSet)
    clone.__dict__.update(ruleset.__dict__)
    clone.clock = clock
    return clone


def compare(expect: dict, decision: Decision) -> list[str]:
    """Readable differences between what a case expects and what the rules decided."""
    diffs = []
    got_decision = "allow" if decision.allowed else "invalid" if decision.status == 401 else "deny"
    if "decision" in expect and expect["decision"] != got_decision:
        why = f" ({decision.reason})" if decision.reason else ""
        diffs.append(f"decision: expected {expect['decision']}, got {got_decision}{why}")
    if "status" in expect and expect["status"] != decision.status:
        diffs.append(f"status: expected {expect['status']}, got {decision.status}")
    if "reason" in expect and expect["reason"] != decision.reason:
        diffs.append(f"reason: expected {expect['reason']!r}, got {decision.reason!r}")
    if "rule" in expect and expect["rule"] != decision.decided_by:
        diffs.append(f"rule: expected {expect['rule']!r} to decide, got {decision.decided_by!r}")
    if "errors" in expect:
        erred = sorted(name for name, value, _ in decision.steps if value.startswith("error:"))
        if sorted(map(str, expect["errors"] or [])) != erred:
            diffs.append(f"errors: expected {sorted(map(str, expect['errors'] or []))}, got {erred}")
    if "policies" in expect and list(expect["policies"] or []) != decision.policies:
        diffs.append(f"policies: expected {list(expect['policies'] or [])}, got {decision.policies}")
    for key, want in (expect.get("identity") or {}).items():
        got = decision.identity.get(key, "<absent>")
        if _plain(got) != _plain(want):
            diffs.append(f"identity.{key}: expected {want!r}, got {got!r}")
    for key, want in (expect.get("headers") or {}).items():
        got = decision.headers.get(key)
        if got != (None if want is None else str(want)):
            diffs.append(f"headers.{key}: expected {want!r}, got {got!r}")
    return diffs


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def report(results: list[CaseResult], coverage: Coverage | None = None) -> str:
    """The runner's output: each failure with its diff, the coverage gaps, a count line."""
    lines = []
    for r in results:
        if not r.passed:
            lines.append(f"FAIL {r.file}:{r.line}: {r.name}")
            lines.extend(f"    {d}" for d in r.diffs)
    if coverage is not None:
        gaps = coverage.gaps()
        lines.append(f"coverage: {len(coverage.rules) - len(gaps)} of {len(coverage.rules)} rules fully exercised")
        lines.extend(f"  {g['file']}:{g['line']}: {g['rule']}: never {' or '.join(g['never'])}" for g in gaps)
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def report_json(results: list[CaseResult], coverage: Coverage | None = None) -> str:
    """The same as :func:`report`, as one JSON document for CI."""
    import json

    passed = sum(r.passed for r in results)
    body: dict[str, Any] = {"passed": passed, "failed": len(results) - passed,
                            "cases": [r.as_dict() for r in results]}
    if coverage is not None:
        body["coverage"] = {"rules": len(coverage.rules), "gaps": coverage.gaps()}
    return json.dumps(body, indent=2)
