"""Build frozen config dataclasses from located YAML, by their type annotations.

One converter serves every section, so each section is declared once, as a dataclass
with documented fields, and gets the same checks: unknown keys (with a "did you mean"),
missing keys, wrong types, and custom parsers (durations, rates, secrets) named in the
field's metadata as ``field(metadata={"parse": fn})``. Every problem is collected, each
naming ``file:line: key.path: what is wrong``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .source import line_of


@dataclass(frozen=True)
class Where:
    """A place in a config file: the file, the key path and the line."""

    file: Path
    path: str
    line: int
    problems: list

    def key(self, container: object, key: object) -> "Where":
        """The place of ``container[key]``."""
        if isinstance(key, int):
            path = f"{self.path}[{key}]"
        else:
            path = f"{self.path}.{key}" if self.path else str(key)
        return Where(self.file, path, line_of(container, key) or self.line, self.problems)

    def problem(self, message: str) -> None:
        """Record a fault at this place."""
        self.problems.append(f"{self.file}:{self.line}: {self.path or '(top level)'}: {message}")

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this file are resolved against."""
        return self.file.parent

    def config_path(self, node: object, what: str = "a file path") -> Path:
        """``node`` as a path relative to this file (resolved); ValueError unless it is a
        non-empty string. What must exist there is the caller's check."""
        if not isinstance(node, str) or not node:
            raise ValueError(f"expected {what}, got {node!r}")
        return (self.base_dir / node).resolve()


class Invalid(Exception):
    """Raised by a parser after it has recorded its problem; the value is skipped."""


Parser = Callable[[object, Where], object]
_MISSING = object()


def did_you_mean(word: object, choices: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``choices``, or ``""`` when none is close.

    Every closed set of names a user can mistype (config keys, method ids, rule sections
    and keys, gunicorn settings) says this the same way.
    """
    hint = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def build(tp: typing.Any, node: object, where: Where) -> typing.Any:
    """``node`` converted to ``tp``; raises Invalid after recording why it cannot be."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if node is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return build(inner, node, where)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if node not in choices:
            hint = did_you_mean(node, [c for c in choices if isinstance(c, str)])
            return _fail(where, f"expected one of {', '.join(map(repr, choices))}, got {node!r}{hint}")
        return node
    if origin is tuple:
        return _build_tuple(typing.get_args(tp)[0], node, where)
    if origin in (dict, Mapping, typing.Mapping) or tp is Mapping:
        return _build_mapping(typing.get_args(tp), node, where)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, node, where)
    return _build_scalar(tp, node, where)


def build_dataclass(cls: type, node: object, where: Where) -> typing.Any:
    """An instance of ``cls`` from a mapping; unknown and missing keys are problems."""
    if not isinstance(node, dict):
        return _fail(where, f"expected a mapping, got {_kind(node)}")
    # keyed by the YAML name: a field's own name, or metadata "key" (``class`` → ``class_``)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)
              if f.init and not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    ok = True
    for key in node:
        if key not in fields:
            ok = False
            where.key(node, key).problem(
                f"unknown key{did_you_mean(key, fields)}; allowed: {', '.join(sorted(fields))}")
    values = {}
    for name, f in fields.items():
        if name not in node:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                ok = False
                where.problem(f"missing required key {name!r}")
            continue
        try:
            values[f.name] = _build_field(f, hints[f.name], node[name], where.key(node, name))
        except Invalid:
            ok = False
    if not ok:
        raise Invalid
    try:
        return cls(**values)
    except ValueError as exc:  # cross-field checks in __post_init__
        return _fail(where, str(exc))


def _build_field(f: dataclasses.Field, tp: typing.Any, node: object, where: Where):
    parse = f.metadata.get("parse")
    if parse is None:
        return build(tp, node, where)
    try:
        return parse(node, where)
    except ValueError as exc:
        return _fail(where, str(exc))


def _build_tuple(item_tp: typing.Any, node: object, where: Where) -> tuple:
    if not isinstance(node, list):
        return _fail(where, f"expected a list, got {_kind(node)}")
    out, ok = [], True
    for i, item in enumerate(node):
        try:
            out.append(build(item_tp, item, where.key(node, i)))
        except Invalid:
            ok = False
    if not ok:
        raise Invalid
    return tuple(out)


def _build_mapping(args: tuple, node: object, where: Where) -> Mapping:
    if not isinstance(node, dict):
        return _fail(where, f"expected a mapping, got {_kind(node)}")
    value_tp = args[1] if len(args) == 2 else typing.Any
    out, ok = {}, True
    for key, value in node.items():
        sub = where.key(node, key)
        if not isinstance(key, str):
            sub.problem(f"keys must be strings, got {key!r}")
            ok = False
            continue
        try:
            out[key] = value if value_tp is typing.Any else build(value_tp, value, sub)
        except Invalid:
            ok = False
    if not ok:
        raise Invalid
    return MappingProxyType(out)


def _build_scalar(tp: typing.Any, node: object, where: Where):
    if tp is typing.Any:
        return node
    if tp is float and isinstance(node, int) and not isinstance(node, bool):
        return float(node)
    if tp in (str, int, float, bool) and (type(node) is tp):
        return node
    return _fail(where, f"expected {_NAMES.get(tp, getattr(tp, '__name__', tp))}, got {_kind(node)}")


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(node: object) -> str:
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return "a list"
    if node is None:
        return "nothing (null)"
    return f"{type(node).__name__} {node!r}"


def _fail(where: Where, message: str) -> typing.NoReturn:
    where.problem(message)
    raise Invalid


def parsed(fn: Callable[[object], object]) -> Parser:
    """A field parser from a plain ``value -> result`` function that raises ValueError.

    ``__wrapped__`` names ``fn``, so the generated reference shows what the field takes
    (a duration, a rate, a size)."""
    def parse(node: object, where: Where) -> object:
        return fn(node)

    parse.__wrapped__ = fn  # type: ignore[attr-defined]
    return parse
