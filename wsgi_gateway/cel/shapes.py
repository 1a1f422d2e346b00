"""Declared shapes of variables, for the static walk: a misspelt field is a compile error.

A :class:`Shapes` passed to ``Engine.compile(..., shapes=)`` gives each variable a kind
and, for a record, its only fields. The walk (:mod:`.analysis`) then refuses, on both
engines, a path no declared field allows (with "did you mean"), a key with capitals in a
map of lower-case keys (header names), and uses the declared kinds for its type checks
(a non-boolean condition, a comparison of a string with an int). Which variables have
which shape is the caller's business (the gateway's are in
:mod:`wsgi_gateway.policy.variables`); a variable without a shape is an open ``dyn``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .kinds import BOOL, DOUBLE, DURATION, DYN, INT, LIST, MAP, STRING, TIMESTAMP

__all__ = ["ANY", "BOOL", "DOUBLE", "DURATION", "DYN", "INT", "LIST", "MAP", "STRING", "TIMESTAMP",
           "Shape", "Shapes", "record", "scalar"]


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


def _no_field(where: str, segment: str, fields: Mapping[str, Shape]) -> str:
    close = difflib.get_close_matches(segment, list(fields), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (fields: {', '.join(sorted(fields))})"
    return f"{where} has no field {segment!r}{hint}"
