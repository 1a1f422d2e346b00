"""Shadow-mode log lines: what a rule not enforced would have done, and what replaying
the request against it needs.

One ``shadow rule`` line per shadow rule that matched or errored (the outcome, the
error, the request line, who, and the values the rule read, by path, in CEL syntax), and
one ``shadow rules evaluated`` line per request for a file in shadow mode. Never the
token; a header whose name suggests a credential is logged as ``<redacted>``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..cel import Unresolved, lookup
from ..identity import Identity
from .celtext import cel_text
from .rulefile import Rule
from .variables import cert_variable, token_variable

if TYPE_CHECKING:
    from .evaluate import Decision

log = logging.getLogger("wsgi_gateway.rules")

_SECRET_HEADER_PARTS = ("auth", "cookie", "token", "key", "secret", "session", "password", "credential")


def takes_effect(outcome: str, note: str) -> bool:
    """A shadow rule worth a log line: it errored, or it would have changed something."""
    return outcome.startswith("error:") or note.startswith("shadow:") or "(shadow, not applied)" in note \
        or note in ("denies", "allows") or note.startswith("policy ")


def log_shadow_rule(ctx, rules: str, api: str, rule: Rule, outcome: str, note: str,
                    decision: "Decision", values: Any) -> None:
    """The line for one shadow rule (``values``: the request's ``_RequestValues``)."""
    identity = ctx.identity
    errored = outcome.startswith("error:")
    log.info("shadow rule", extra={"gw": {
        "request_id": ctx.request_id, "rules": rules, "rule": rule.name, "section": rule.section,
        "outcome": "error" if errored else "matched", "error": outcome[7:] if errored else "-",
        "would": note or "-", "method": values.method, "path": values.path, "api": api,
        "iss": identity.issuer or "-", "sub": identity.subject or "-", "client_id": identity.client_id or "-",
        "inputs": replay_inputs(rule, identity, decision.identity, values.python(), api)}})


def log_shadow_file(ctx, rules: str, decision: "Decision") -> None:
    """The line for a file in shadow mode: what it would have decided and changed."""
    log.info("shadow rules evaluated", extra={"gw": {
        "request_id": ctx.request_id, "rules": rules,
        "would": "allow" if decision.allowed else f"{decision.status} {decision.reason}",
        "decided_by": decision.decided_by or "-",
        "errors": ",".join(n for n, v, _ in decision.steps if v.startswith("error:")) or "-",
        "policies": ",".join(decision.policies) or "-",
        "identity": decision.identity.get("id", "-"),
        "headers": ",".join(decision.headers) or "-"}})


def replay_inputs(rule: Rule, identity: Identity, mapped: Mapping[str, Any], request: Mapping[str, Any],
                  api: str = "") -> str:
    """The values the rule read, by path, in CEL syntax, as JSON: enough to replay it.
    Credential-like headers are redacted; whole maps and lists are left out."""
    plain = {"claims": dict(identity.claims), "token": token_variable(identity), "identity": mapped,
             "cert": cert_variable(identity), "api": api}
    out = {}
    for ref in sorted(rule.program.references):
        root, _, rest = ref.partition(".")
        if root == "request" and rest.startswith("headers.") and any(
                part in rest[8:].lower() for part in _SECRET_HEADER_PARTS):
            out[ref] = "<redacted>"
            continue
        value = lookup(plain if root in plain else request, ref)
        if isinstance(value, Unresolved):
            out[ref] = "<absent>"
        elif not isinstance(value, (dict, list, Mapping)):
            out[ref] = cel_text(value)
    return json.dumps(out, separators=(",", ":"))
