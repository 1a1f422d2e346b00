"""Declared shapes of the rule variables: a misspelt field is a load error, not a quiet deny.

``request``, ``token``, ``api``, ``now``, ``session``, ``limits``, ``cert`` and
``identity`` (its base fields plus the names the file's ``map`` section defines) have
declared fields. A path a rule reads (``request.methd``, ``token.scops``,
``request.headers['X-Tenant']``) is checked against them when the rule file loads, on
both engines, with "did you mean". ``claims`` stays open: it is the issuer's JSON.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

BOOL, INT, DOUBLE, STRING, LIST, MAP, TIMESTAMP, DYN = (
    "bool", "int", "double", "string", "list", "map", "timestamp", "dyn")


@dataclass(frozen=True)
class Shape:
    """What a value is: its CEL kind and, for a record, its only fields.

    ``fields`` None is an open map (any key); ``values`` is the shape of an open map's
    values or a list's elements; ``lower_keys``: an open map whose keys are lower-case
    (header names), so a key with capitals can never match.
    """

    kind: str
    fields: Mapping[str, "Shape"] | None = None
    values: "Shape | None" = None
    lower_keys: bool = False

    def with_fields(self, extra: Mapping[str, "Shape"]) -> "Shape":
        """This record with more (or overriding) fields."""
        return Shape(self.kind, MappingProxyType({**(self.fields or {}), **extra}), self.values)


def record(**fields: Shape) -> Shape:
    return Shape(MAP, MappingProxyType(fields))


def scalar(kind: str) -> Shape:
    return Shape(kind)


ANY = Shape(DYN)


@dataclass(frozen=True)
class ShapeProblem:
    """A path that cannot exist, and where the expression names it (1-based)."""

    message: str
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class Shapes:
    """The declared shape of every variable (a variable absent here is not checked)."""

    roots: Mapping[str, Shape] = field(default_factory=dict)

    def resolve(self, path: tuple[str, ...]) -> tuple[Shape | None, str | None, int]:
        """The shape at ``path``; or None, the reason it cannot exist and the index of
        the segment at fault."""
        shape = self.roots.get(path[0])
        if shape is None:
            return None, None, 0
        for depth, segment in enumerate(path[1:], start=1):
            where = ".".join(path[:depth])
            if shape.fields is not None:
                if segment not in shape.fields:
                    return None, _no_field(where, segment, shape.fields), depth
                shape = shape.fields[segment]
            elif shape.kind in (MAP, DYN):
                if shape.lower_keys and segment != segment.lower():
                    return None, (f"{where} names are lower-case, so {segment!r} never matches; "
                                  f"did you mean {segment.lower()!r}?"), depth
                shape = shape.values or ANY
            else:
                return None, f"{where} is a {shape.kind}: it has no field {segment!r}", depth
        return shape, None, 0

    def check(self, references: Iterable[str], source: str) -> list[ShapeProblem]:
        """A problem for each referenced path the declared shapes rule out."""
        problems = []
        for reference in sorted(references):
            path = tuple(reference.split("."))
            _, reason, depth = self.resolve(path)
            if reason is not None:
                line, column = _locate(source, path[: depth + 1])
                problems.append(ShapeProblem(reason, line, column))
        return problems


def _no_field(where: str, segment: str, fields: Mapping[str, Shape]) -> str:
    close = difflib.get_close_matches(segment, list(fields), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (fields: {', '.join(sorted(fields))})"
    return f"{where} has no field {segment!r}{hint}"


def _locate(source: str, path: tuple[str, ...]) -> tuple[int, int]:
    """Where the first bad segment of ``path`` is written: the first ``.seg`` or
    ``['seg']`` after its parent's name (a good guess; the message names the path)."""
    start = 0
    for segment in path:
        pattern = re.compile(rf"(?:(?<![\w.])|\.\s*){re.escape(segment)}\b|\[\s*(['\"]){re.escape(segment)}\1")
        match = pattern.search(source, start)
        if match is None:
            break
        start = match.start() + (1 if source[match.start()] in ".[" else 0)
        while source[start] in " \t'\"":
            start += 1
    line = source.count("\n", 0, start) + 1
    return line, start - (source.rfind("\n", 0, start) + 1) + 1
