"""Rule files: YAML whose string values are CEL expressions, compiled once at load.

Sections, evaluated in this order: ``validate`` (all must hold), ``map`` (the computed
identity), ``assign`` (policies) with ``default_policy``, ``deny`` (any match denies),
``allow`` (when present, one must match), ``headers`` (injected upstream). A whole file
or a single rule may be ``shadow``: evaluated and logged, never enforced.

Every fault is collected, not just the first, and names file, line, column, the key
path, the expression and a caret under the fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config.source import Mark, load_yaml, mark_of
from ..config.typed import did_you_mean
from ..errors import ConfigError
from ..cel import CompileError, Engine, Program
from ..cel.limits import DEFAULT_LIMITS, CelLimits
from ..cel.shapes import ANY, Shape, Shapes
from .variables import TOKEN_ROOTS, declared_shapes

SECTIONS = ("shadow", "validate", "map", "assign", "default_policy", "deny", "allow", "headers")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}\Z")
_ERROR_CODES = ("insufficient_scope",)
_NOT_IN_IDENTITY = frozenset({"timestamp", "duration", "type", "google.protobuf.Timestamp",
                              "google.protobuf.Duration"})


@dataclass(frozen=True)
class Location:
    """Where an expression starts in its file."""

    file: Path
    mark: Mark | None

    def point(self, line: int, column: int, lines: list[str]) -> tuple[int, int]:
        """The file line and column of (line, column) inside the expression."""
        if self.mark is None:
            return 0, 0
        if self.mark.style in ("|", ">"):  # content starts on the next line, indented
            first = lines[self.mark.line] if self.mark.line < len(lines) else ""
            return self.mark.line + line, len(first) - len(first.lstrip(" ")) + column
        quote = 1 if self.mark.style in ("'", '"') else 0
        if line == 1:
            return self.mark.line, self.mark.column + quote + column - 1
        return self.mark.line + line - 1, column


@dataclass(frozen=True)
class Rule:
    """One compiled rule of a section."""

    section: str
    name: str                 # "deny[0]", a map key, a header name, or the rule's own name
    source: str
    program: Program
    location: Location
    message: str | None = None  # validate: its message; deny: its reason
    policy: str | None = None   # assign: the policy it applies
    code: str | None = None     # deny/allow: "insufficient_scope" for RFC 6750
    shadow: bool = False
    key: str = ""               # unique in the file (section and position): caches key on it
    message_rule: "Rule | None" = None  # validate/deny: messageExpression, a string from the token


@dataclass(frozen=True)
class RuleFile:
    """A loaded, compiled rule file."""

    path: Path
    shadow: bool
    validate: tuple[Rule, ...]
    map: tuple[Rule, ...]
    assign: tuple[Rule, ...]
    default_policy: str | None
    deny: tuple[Rule, ...]
    allow: tuple[Rule, ...]
    headers: tuple[Rule, ...]

    def rules(self) -> tuple[Rule, ...]:
        return (*self.validate, *self.map, *self.assign, *self.deny, *self.allow, *self.headers)

    @property
    def policies(self) -> set[str]:
        """Every policy this file can assign."""
        named = {r.policy for r in self.assign if r.policy}
        return named | ({self.default_policy} if self.default_policy else set())


class _Loader:
    """Parses one file, collecting every problem."""

    def __init__(self, path: Path, engine: Engine, policies: set[str] | None):
        self.path, self.engine, self.policies = path, engine, policies
        self.limits: CelLimits = DEFAULT_LIMITS
        self.problems: list[str] = []
        self.lines: list[str] = []
        self.shapes: Shapes = declared_shapes()  # `identity` gains the map names (load_rule_file)

    def problem(self, container, key, where: str, message: str) -> None:
        mark = mark_of(container, key)
        line = mark.line if mark else getattr(container, "line", 0)
        self.problems.append(f"{self.path}:{line}: {where}: {message}")

    def compile(self, container, key, where: str, *, boolean: bool, shapes: Shapes | None = None,
                result: type | None = None) -> tuple[str, Program] | None:
        source = container[key]
        location = Location(self.path, mark_of(container, key))
        if not isinstance(source, str) or not source.strip():
            self.problem(container, key, where, "expected a CEL expression (a string)")
            return None
        try:
            program = self.engine.compile(source, result=bool if boolean else result, limits=self.limits,
                                          shapes=shapes or self.shapes)
        except CompileError as exc:
            self.problems.append(self._caret(location, where, source, exc))
            return None
        return source, program

    def _caret(self, location: Location, where: str, source: str, exc: CompileError) -> str:
        """``file:line:col: where: message``, the expression line and a caret under it."""
        line, column = exc.line or 1, exc.column or 1
        file_line, file_column = location.point(line, column, self.lines)
        text = source.splitlines()[line - 1] if source.splitlines() else source
        return (f"{self.path}:{file_line}:{file_column}: {where}: {exc.message}\n"
                f"    {text}\n    {' ' * (column - 1)}^")


def load_rule_file(path: Path, engine: Engine, policies: set[str] | None = None,
                   limits: CelLimits = DEFAULT_LIMITS) -> RuleFile:
    """The compiled rule file at ``path``; ConfigError listing every fault.

    ``policies``: the policy names the config defines (None: not checked).
    ``limits``: the config's CEL bounds (a rule over the cost limit is a fault).
    """
    node = load_yaml(path)
    loader = _Loader(path, engine, policies)
    loader.limits = limits
    loader.lines = path.read_text(encoding="utf-8").splitlines()
    if not isinstance(node, dict):
        raise ConfigError(f"{path}:1: expected a mapping of sections ({', '.join(SECTIONS)})")
    for key in node:
        if key not in SECTIONS:
            loader.problem(node, key, str(key), f"unknown section{did_you_mean(key, SECTIONS)}; "
                           f"allowed: {', '.join(SECTIONS)}")
    shadow = _flag(loader, node, "shadow", "shadow")
    mapped = _mapping(loader, node, "map", boolean=False)
    names = node.get("map") if isinstance(node.get("map"), dict) else {}
    # later sections see identity.<name> for each map entry, typed as its expression is
    loader.shapes = declared_shapes({**{k: ANY for k in names if isinstance(k, str)},
                                     **{r.name: Shape(r.program.kind) for r in mapped}})
    rule_file = RuleFile(
        path=path,
        shadow=shadow,
        validate=_items(loader, node, "validate", ("expr", "message"), boolean=True),
        map=mapped,
        assign=_items(loader, node, "assign", ("when", "policy"), boolean=True),
        default_policy=_default_policy(loader, node),
        deny=_items(loader, node, "deny", ("when", "reason"), boolean=True),
        allow=_items(loader, node, "allow", ("when",), boolean=True),
        headers=_mapping(loader, node, "headers", boolean=False),
    )
    if loader.problems:
        raise ConfigError(loader.problems)
    return rule_file


_OPTIONAL = {"validate": ("shadow", "name", "messageExpression"), "assign": ("shadow", "name"),
             "deny": ("shadow", "name", "code", "messageExpression"), "allow": ("shadow", "name", "code")}


def _items(loader: _Loader, node, section: str, required: tuple[str, ...], *, boolean: bool):
    items = node.get(section, [])
    if not isinstance(items, list):
        loader.problem(node, section, section, "expected a list")
        return ()
    rules, names = [], set()
    for i, item in enumerate(items):
        where = f"{section}[{i}]"
        if not isinstance(item, dict):
            loader.problem(items, i, where, f"expected a mapping with {', '.join(required)}")
            continue
        allowed = {*required, *_OPTIONAL[section]}
        for key in item:
            if key not in allowed:
                loader.problem(item, key, f"{where}.{key}", f"unknown key{did_you_mean(key, allowed)}; "
                               f"allowed: {', '.join(sorted(allowed))}")
        missing = [k for k in required if k not in item]
        if missing:
            loader.problem(items, i, where, f"missing {', '.join(missing)}")
            continue
        expr_key = required[0]
        compiled = loader.compile(item, expr_key, f"{where}.{expr_key}", boolean=boolean)
        if compiled is not None and _reads_limits(compiled[1]):
            loader.problem(item, expr_key, f"{where}.{expr_key}", "only headers may read limits "
                           "(they are counted after the rules decide)")
            compiled = None
        extras = _extras(loader, item, where, section)
        if extras is not None and "messageExpression" in item:
            extras["message_rule"] = _message_rule(loader, item, where)
            if extras["message_rule"] is None:
                extras = None
        name = item.get("name") or where
        if name in names:
            loader.problem(item, "name", f"{where}.name", f"duplicate rule name {name!r} in {section}")
            continue
        names.add(name)
        if compiled is not None and extras is not None:
            rules.append(Rule(section, name, compiled[0], compiled[1],
                              Location(loader.path, mark_of(item, expr_key)), key=where, **extras))
    return tuple(rules)


def _extras(loader: _Loader, item, where: str, section: str) -> dict | None:
    out: dict = {"shadow": _flag(loader, item, "shadow", f"{where}.shadow")}
    text_key = {"validate": "message", "deny": "reason"}.get(section)
    if text_key:
        text = item[text_key]
        if not isinstance(text, str) or not text or any(c in text for c in "\r\n"):
            loader.problem(item, text_key, f"{where}.{text_key}", "expected a one-line message")
            return None
        out["message"] = text
    if section == "assign":
        out["policy"] = _policy_name(loader, item, "policy", f"{where}.policy")
        if out["policy"] is None:
            return None
    if "code" in item:
        if item["code"] not in _ERROR_CODES:
            loader.problem(item, "code", f"{where}.code", f"expected one of {', '.join(_ERROR_CODES)}")
            return None
        out["code"] = item["code"]
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        loader.problem(item, "name", f"{where}.name", "expected a string")
        return None
    return out


def _message_rule(loader: _Loader, item, where: str) -> Rule | None:
    """``messageExpression``: a string computed when the rule refuses (the fixed
    ``message``/``reason`` is the fallback when it fails or is empty)."""
    key = "messageExpression"
    compiled = loader.compile(item, key, f"{where}.{key}", boolean=False, result=str)
    if compiled is None:
        return None
    if _reads_limits(compiled[1]):
        loader.problem(item, key, f"{where}.{key}", "only headers may read limits")
        return None
    return Rule("message", f"{where}.{key}", compiled[0], compiled[1],
                Location(loader.path, mark_of(item, key)), key=f"{where}.{key}")


def _mapping(loader: _Loader, node, section: str, *, boolean: bool):
    entries = node.get(section, {})
    if not isinstance(entries, dict):
        loader.problem(node, section, section, "expected a mapping of name: expression")
        return ()
    rules = []
    for key in entries:
        where = f"{section}.{key}"
        if section == "headers" and not (isinstance(key, str) and _HEADER.match(key)):
            loader.problem(entries, key, where, "not a valid header name")
            continue
        if section == "map" and not (isinstance(key, str) and re.fullmatch(r"[a-z_][a-z0-9_]*", key)):
            loader.problem(entries, key, where, "map names are lower_snake_case identifiers")
            continue
        shapes = declared_shapes() if section == "map" else None  # map sees the base identity
        compiled = loader.compile(entries, key, where, boolean=boolean, shapes=shapes)
        if compiled is not None and section != "headers" and _reads_limits(compiled[1]):
            loader.problem(entries, key, where, "only headers may read limits (they are "
                           "counted after the rules decide)")
            continue
        if compiled is not None and section == "map" and compiled[1].kind in _NOT_IN_IDENTITY:
            loader.problem(entries, key, where, f"a map entry cannot be a {compiled[1].kind}: identity "
                           "is a map, and a map cannot hold one on every engine (use int(...) for "
                           "epoch seconds, or string(...))")
            continue
        if compiled is not None and section == "map" and not _token_only(compiled[1]):
            loader.problem(entries, key, where, "map reads only claims, token, identity, cert and api "
                           "(an identity must not depend on the request)")
            continue
        if compiled is not None:
            rules.append(Rule(section, key, compiled[0], compiled[1],
                              Location(loader.path, mark_of(entries, key)), key=where))
    return tuple(rules)


def _reads_limits(program: Program) -> bool:
    return any(ref.partition(".")[0] == "limits" for ref in program.references)


def _token_only(program: Program) -> bool:
    return {ref.partition(".")[0] for ref in program.references} <= TOKEN_ROOTS


def _default_policy(loader: _Loader, node) -> str | None:
    if "default_policy" not in node or node["default_policy"] is None:
        return None
    return _policy_name(loader, node, "default_policy", "default_policy")


def _policy_name(loader: _Loader, node, key: str, where: str) -> str | None:
    name = node[key]
    if not isinstance(name, str) or not name:
        loader.problem(node, key, where, "expected a policy name")
        return None
    if loader.policies is not None and name not in loader.policies:
        known = ", ".join(sorted(loader.policies)) or "none are defined"
        loader.problem(node, key, where, f"unknown policy {name!r}{did_you_mean(name, loader.policies)} "
                       f"(policies: {known})")
        return None
    return name


def _flag(loader: _Loader, node, key: str, where: str) -> bool:
    value = node.get(key, False)
    if not isinstance(value, bool):
        loader.problem(node, key, where, "expected true or false")
        return False
    return value
