"""Warnings for rules that load but are probably wrong (``wsgi-gateway check`` shows them).

- a read of ``claims.email`` that ``claims.email_verified`` does not guard in the same
  expression (the other side of ``&&``, or the condition of the ``?:`` whose true branch
  reads it): an unverified address can then name anyone (the Kubernetes
  structured-authentication trap). Judged on the expression tree
  (:func:`wsgi_gateway.cel.lint.unguarded_reads`), so a check in another rule, or
  ``claims.email_verified || claims.email ...``, does not hide it;
- ``request.method`` compared with a method that is not upper-case (``'get'``): methods
  arrive upper-case, so the comparison never holds;
- a ``validate``, ``assign``, ``deny`` or ``allow`` condition that reads no variable: it
  always or never holds;
- a policy the config defines that no rule file or API can assign;
- (on cel-cpp) a rule that cel-python cannot compile: switching engines would break it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..cel import CompileError, EvalError, get_engine
from ..cel.lint import unguarded_reads
from .rulefile import Rule, RuleFile

_CONDITIONS = ("validate", "assign", "deny", "allow")
_LITERAL = r"""(?:'([^'\\]*)'|"([^"\\]*)")"""
_METHOD_COMPARE = re.compile(
    rf"request\.method\s*(?:==|!=)\s*{_LITERAL}|{_LITERAL}\s*(?:==|!=)\s*request\.method"
    rf"|request\.method\s+in\s*\[([^\]]*)\]")


def lint_rule_file(rules: RuleFile, engine_name: str) -> list[str]:
    """The warnings for one rule file."""
    warnings = []
    for rule in rules.rules():
        refs = rule.program.references
        if "claims.email" in refs and unguarded_reads(rule.source, "claims.email", "claims.email_verified"):
            warnings.append(_at(rule, "reads claims.email where claims.email_verified does not guard it "
                                      "(&& with it, or the true branch of ?: on it): an unverified "
                                      "address can name anyone"))
        bad = _lower_case_methods(rule.source) if "request.method" in refs else []
        if bad:
            warnings.append(_at(rule, f"compares request.method with {', '.join(map(repr, bad))}: "
                                      "methods are upper-case, so this never matches"))
        if rule.section in _CONDITIONS and not refs:
            warnings.append(_at(rule, f"reads no variable, so it {_constant(rule)}"))
    if engine_name == "cel-cpp":
        warnings.extend(_portability(rules))
    return warnings


def lint_policies(defined: Iterable[str], assignable: set[str]) -> list[str]:
    """Policies no rule file (or API default) can assign."""
    return [f"policies.{name}: no assign entry, default_policy or API can produce it"
            for name in sorted(set(defined) - assignable)]


def _lower_case_methods(source: str) -> list[str]:
    found = []
    for match in _METHOD_COMPARE.finditer(source):
        literals = [g for g in match.groups()[:4] if g is not None]
        if match.group(5) is not None:
            literals = re.findall(r"""'([^'\\]*)'|"([^"\\]*)\"""", match.group(5))
            literals = [a or b for a, b in literals]
        found.extend(m for m in literals if m != m.upper())
    return found


def _constant(rule: Rule) -> str:
    try:
        value = rule.program.evaluate({})
    except EvalError:
        return {"deny": "always fails (denies)", "validate": "always fails (rejects)"}.get(
            rule.section, "never matches")
    matched = value is True
    return {
        "deny": "denies every request" if matched else "never denies",
        "allow": "allows every request" if matched else "never matches",
        "assign": f"assigns {rule.policy} to everyone" if matched else "never assigns",
        "validate": "always holds" if matched else "rejects every token",
    }[rule.section]


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
