"""``wsgi-gateway replay``: re-decide recorded requests under a candidate config.

Each audit line (schema 1) is rebuilt into an identity (from the recorded claims, as
the candidate's provider would normalise them) and a request (method and path), routed
with the candidate's router and decided by the candidate's rules (the same
``decide`` that ``explain`` and ``rules test`` use; no store is touched, so limits and
sessions are not re-counted). A line whose candidate rules read something the log does
not hold (an unlisted claim, a request header, the session) is reported as *unknown*,
with what is missing, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .app import Gateway, build_app
from .config import load_config
from .errors import ConfigError
from .observe.audit import _mapped_digest, deciding_rule, rule_steps

_RULES_RAN = {"allow": "allow", "limited": "allow", "deny": "deny", "invalid": "invalid"}
_REQUEST_KNOWN = {"request.method", "request.path"}
_TOKEN_CLAIMS = {"sub": ("sub",), "aud": ("aud",), "exp": ("exp",)}
_TOKEN_FREE = {"iss", "kind", "method", "provider"}
# methods whose identity is its token's claims; API keys, passwords, signatures and
# certificates carry their own records, which the log does not hold
_REBUILDABLE = {"jwt", "introspection", "oidc_login", "keyless"}


@dataclass
class Outcome:
    """One side of a comparison: what the rules decided."""

    decision: str                # allow, deny, invalid, not_found
    policies: list[str] = field(default_factory=list)
    decided_by: str | None = None
    mapped: str | None = None


@dataclass
class Result:
    """One audit line replayed: changed, unchanged, unknown or skipped, and why."""

    line: int
    request_id: str
    request: str
    status: str                  # changed, unchanged, unknown, skipped
    changes: list[str] = field(default_factory=list)
    why: str = ""
    recorded: Outcome | None = None
    candidate: Outcome | None = None


def _noop(environ, start_response):
    start_response("204 No Content", [])
    return [b""]


def read_log(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each audit line; ConfigError naming a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--log {path}: cannot be read: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{path}:{number}: not a JSON audit line") from None
        if not isinstance(record, dict) or record.get("v") != 1:
            raise ConfigError(f"{path}:{number}: not an audit line of schema version 1")
        yield number, record


def replay(log_path: str | Path, config_path: str | Path) -> list[Result]:
    """Every line of the log, re-decided under the candidate config."""
    gateway = build_app(load_config(config_path), _noop)
    try:
        return [replay_one(gateway, number, record) for number, record in read_log(Path(log_path))]
    finally:
        gateway.close()


def replay_one(gateway: Gateway, number: int, record: dict) -> Result:
    """One line: recorded outcome vs the candidate's."""
    result = Result(number, str(record.get("request_id")),
                    f"{record.get('method')} {record.get('path')}", "unchanged")
    ran = _RULES_RAN.get(record.get("decision"))
    if ran is None:
        result.status, result.why = "skipped", f"recorded {record.get('decision')}: the rules never ran"
        return result
    result.recorded = Outcome(ran, list(record.get("policies") or []), record.get("decided_by"),
                              record.get("mapped"))
    name, _ = gateway.router.match(record["path"])
    if name is None or name not in gateway.apis:
        result.candidate = Outcome("not_found")
        result.status, result.changes = "changed", [f"{ran} → not_found (no API serves the path)"]
        return result
    api = gateway.apis[name]
    missing = _missing_inputs(gateway, api, record)
    if missing:
        result.status, result.why = "unknown", "not recorded: " + ", ".join(missing)
        return result
    result.candidate = _decide(gateway, api, record)
    result.changes = _differences(result.recorded, result.candidate)
    result.status = "changed" if result.changes else "unchanged"
    return result


def _decide(gateway: Gateway, api, record: dict) -> Outcome:
    from .policy.evaluate import CelRuleSet
    from .policy.testing import decide

    identity = _identity(gateway, record)
    if not isinstance(api.rules, CelRuleSet):
        return _allow_all(api, identity, record)
    decision = decide(api.rules, identity, {"method": record["method"], "path": record["path"]},
                      now=record.get("time"))
    if api.rules.rules.shadow:
        default = api.config.default_policy
        return Outcome("allow", [default] if default else [])
    verdict = "allow" if decision.allowed else "invalid" if decision.status == 401 else "deny"
    steps = rule_steps(s for s in decision.steps if not _is_header(api.rules, s[0]))
    return Outcome(verdict, list(decision.policies), deciding_rule(steps, verdict),
                   _mapped_digest(decision.identity))


def _is_header(rules, name: str) -> bool:
    return any(r.name == name for r in rules.rules.headers)


def _allow_all(api, identity, record: dict) -> Outcome:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from .context import RequestContext
    from .errors import GatewayError

    ctx = RequestContext(request_id=str(record.get("request_id")), identity=identity)
    environ = EnvironBuilder(method=record["method"], path=record["path"]).get_environ()
    try:
        api.rules.evaluate(ctx, Request(environ))
    except GatewayError:
        return Outcome("deny", list(ctx.policies))
    return Outcome("allow", list(ctx.policies))


def _identity(gateway: Gateway, record: dict):
    from .identity import ANONYMOUS
    from .policy.testing import case_identity

    who = record.get("identity") or {}
    if who.get("method") == "keyless" or who.get("alias") == "anonymous":
        return ANONYMOUS
    claims = dict(record.get("claims") or {})
    provider = next((p for p in gateway.config.providers
                     if p.issuer == claims.get("iss") or p.name == who.get("provider")), None)
    settings = {} if provider is None else {
        "name": provider.name, "issuer": provider.issuer, "identity_claim": provider.identity_claim,
        "scope_claim": provider.scope_claim, "client_id_claims": provider.client_id_claims,
        "org_claim": provider.org_claim}
    import dataclasses

    return dataclasses.replace(case_identity({"claims": claims}, settings), method=who.get("method", "jwt"))


def _missing_inputs(gateway: Gateway, api, record: dict) -> list[str]:
    """What the candidate's rules read that the line does not hold."""
    from .policy.evaluate import CelRuleSet

    who = record.get("identity") or {}
    if who.get("method") not in _REBUILDABLE:
        return [f"a {who.get('method')} identity (only token claims can be rebuilt)"]
    if who.get("method") == "keyless":
        known = None
    elif record.get("claims") is None:
        return ["claims (audit.claims lists none)"]
    else:
        known = set(record["claims"]) | set(record.get("claims_absent") or ())
    if not isinstance(api.rules, CelRuleSet):
        return []
    mapped = {r.name for r in api.rules.rules.map}
    provider = next((p for p in gateway.config.providers if p.name == who.get("provider")), None)
    missing: list[str] = []
    for rule in api.rules.rules.rules():
        if rule.section == "headers":
            continue  # headers never change the decision
        for ref in sorted(rule.program.references):
            need = _needs(ref, mapped, provider)
            if need is None:
                continue
            if need == () or (known is not None and not set(need) <= known):
                label = ref if need == () else f"{ref} (claims {', '.join(need)})"
                if label not in missing:
                    missing.append(label)
    return missing


def _needs(ref: str, mapped: set[str], provider) -> tuple[str, ...] | None:
    """The claims a reference needs; () when the log never holds it; None: nothing."""
    root, _, rest = ref.partition(".")
    leaf = rest.partition(".")[0]
    if root == "claims":
        return (leaf,) if leaf else ()
    if root == "token":
        if leaf in _TOKEN_FREE:
            return None
        if leaf == "scopes":
            return ((provider.scope_claim if provider else "scope").partition(".")[0],)
        if leaf == "client_id":
            return tuple(provider.client_id_claims) if provider else ("azp",)
        return _TOKEN_CLAIMS.get(leaf, ())
    if root == "identity":
        return None if leaf in mapped or leaf in ("anonymous", "method") else (
            (provider.identity_claim if provider else "sub"),)
    if root == "request":
        return None if ref in _REQUEST_KNOWN else ()
    if root in ("now", "api"):
        return None
    return ()  # session, cert, limits: not in the log


def _differences(old: Outcome, new: Outcome) -> list[str]:
    changes = []
    if old.decision != new.decision:
        changes.append(f"{old.decision} → {new.decision}")
    if old.policies != new.policies:
        changes.append(f"policies {','.join(old.policies) or '-'} → {','.join(new.policies) or '-'}")
    if old.decided_by != new.decided_by:
        changes.append(f"decided by {old.decided_by or '-'} → {new.decided_by or '-'}")
    if old.mapped != new.mapped and old.decision == new.decision == "allow":
        changes.append("mapped identity changed")
    return changes


def render_table(results: Iterable[Result]) -> str:
    """The changed and unknown lines as a readable table, then a count."""
    results = list(results)
    shown = [r for r in results if r.status in ("changed", "unknown")]
    rows = [("line", "request id", "request", "status", "what")]
    rows += [(str(r.line), r.request_id[:16], r.request[:40], r.status,
              "; ".join(r.changes) or r.why) for r in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
             for row in rows] if shown else []
    counts = {s: sum(r.status == s for r in results) for s in ("changed", "unchanged", "unknown", "skipped")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(results)} recorded decisions")
    return "\n".join(lines)


def render_json(results: Iterable[Result]) -> str:
    """Every result as JSON (one object with ``results`` and ``counts``)."""
    results = list(results)
    counts = {s: sum(r.status == s for r in results) for s in ("changed", "unchanged", "unknown", "skipped")}
    return json.dumps({"counts": counts, "results": [asdict(r) for r in results]}, indent=2)
