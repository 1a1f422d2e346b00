"""Warnings for rules that load but are probably wrong (``wsgi-gateway check`` shows them).

- ``claims.email`` read while ``claims.email_verified`` is read nowhere in the file: an
  unverified address can then name anyone (the Kubernetes structured-authentication trap);
- a ``deny`` or ``allow`` rule that reads no variable: it always or never matches;
- a policy the config defines that no rule file or API can assign;
- (on cel-cpp) a rule that cel-python cannot compile: switching engines would break it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..cel import CompileError, EvalError, get_engine
from .rulefile import Rule, RuleFile


def lint_rule_file(rules: RuleFile, engine_name: str) -> list[str]:
    """The warnings for one rule file."""
    warnings = []
    refs = {ref for rule in rules.rules() for ref in rule.program.references}
    if "claims.email" in refs and "claims.email_verified" not in refs:
        rule = next(r for r in rules.rules() if "claims.email" in r.program.references)
        warnings.append(_at(rule, "reads claims.email but never claims.email_verified: an "
                                  "unverified address can name anyone"))
    for rule in (*rules.deny, *rules.allow):
        if not rule.program.references:
            warnings.append(_at(rule, f"reads no variable, so it {_constant(rule)}"))
    if engine_name == "cel-cpp":
        warnings.extend(_portability(rules))
    return warnings


def lint_policies(defined: Iterable[str], assignable: set[str]) -> list[str]:
    """Policies no rule file (or API default) can assign."""
    return [f"policies.{name}: no assign entry, default_policy or API can produce it"
            for name in sorted(set(defined) - assignable)]


def _constant(rule: Rule) -> str:
    try:
        value = rule.program.evaluate({})
    except EvalError:
        return "always fails (denies)" if rule.section == "deny" else "never matches"
    matched = value is True
    if rule.section == "deny":
        return "denies every request" if matched else "never denies"
    return "allows every request" if matched else "never matches"


def _portability(rules: RuleFile) -> list[str]:
    portable = get_engine("cel-python")
    out = []
    for rule in rules.rules():
        try:
            portable.compile(rule.source)
        except CompileError as exc:
            out.append(_at(rule, f"works on cel-cpp only (cel-python: {exc.message})"))
    return out


def _at(rule: Rule, message: str) -> str:
    line = rule.location.mark.line if rule.location.mark else 0
    return f"{rule.location.file}:{line}: {rule.name}: {message}"
