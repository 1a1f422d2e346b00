"""The one value converter: JSON-like Python → an engine's values, within the bounds.

Both engines used to repeat the same walk (limits, number ranges, where timestamps may
appear); now each engine only supplies :class:`Builders`, the constructors of its leaf
and container values, and :func:`convert` does the walking and the checking once.

Rules (the package docstring has the full contract): lists, maps, strings, bytes, depth
and the node count are bounded (:mod:`.bounds`); a value over a bound makes the whole
variable :class:`~wsgi_gateway.cel.api.Rejected` (never truncated: a truncated group
list could change a decision); an int in ``[2**63, 2**64)`` is a uint, one outside
``[-2**63, 2**64)`` a double; a timestamp or duration inside a map or list is rejected
(cel-expr-python 0.1.3 cannot bind one, so cel-python refuses it too); a string or bytes
holding NUL is rejected (cel-expr-python cuts them there, so a claim ``"admin\x00x"`` would
equal ``'admin'``); any other Python
type is a :class:`TypeError` (a programming error, not data).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from celpy.celtypes import BoolType, UintType

from .api import Rejected
from .bounds import (
    MAX_BYTES_LENGTH, MAX_LIST_LENGTH, MAX_MAP_SIZE, MAX_STRING_LENGTH, MAX_VALUE_CHARS, MAX_VALUE_DEPTH,
    MAX_VALUE_NODES,
)

__all__ = ["Builders", "TooLarge", "convert", "same", "utc"]


INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
_UTC = datetime.timezone.utc


class TooLarge(Exception):
    """A value over one of the bounds (the message says which)."""


@dataclass(frozen=True, slots=True)
class Builders:
    """How one engine represents values; each callable takes an already checked value."""

    string: Callable[[str], Any]
    integer: Callable[[int], Any]        # within int64
    unsigned: Callable[[int], Any]       # within [2**63, 2**64), or a uint-typed value
    double: Callable[[float], Any]
    boolean: Callable[[bool], Any]
    data: Callable[[bytes], Any]
    mapping: Callable[[dict], Any]       # keys and values already converted
    sequence: Callable[[list], Any]      # items already converted
    timestamp: Callable[[datetime.datetime], Any]  # aware, UTC, microseconds
    duration: Callable[[datetime.timedelta], Any]


def convert(value: object, builders: Builders) -> object:
    """``value`` in the engine's representation, or :class:`Rejected` when over a bound."""
    try:
        return _Walk(builders).value(value, 0)
    except TooLarge as ex:
        return Rejected(str(ex))


def utc(value: datetime.datetime) -> datetime.datetime:
    """A plain ``datetime`` in UTC (a naive one is taken as UTC)."""
    plain = datetime.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                              value.microsecond, tzinfo=value.tzinfo)
    return plain.astimezone(_UTC) if plain.tzinfo is not None else plain.replace(tzinfo=_UTC)


class _Walk:
    """One conversion; the hot leaf builders are cached on the instance (a ``None``
    builder means "the plain Python value as it is", cel-cpp's case)."""

    __slots__ = ("b", "boolean", "chars", "double", "mapping_of", "nodes", "string_of")

    def __init__(self, builders: Builders) -> None:
        self.b = builders
        self.nodes = MAX_VALUE_NODES
        self.chars = MAX_VALUE_CHARS
        self.string_of = None if builders.string is _same else builders.string
        self.mapping_of = None if builders.mapping is _same else builders.mapping
        self.double = builders.double
        self.boolean = builders.boolean

    def string(self, value: str) -> str:
        if "\x00" in value:  # cel-cpp cuts at NUL: "admin\x00x" would equal 'admin'
            raise TooLarge("a string holding a NUL character cannot be bound faithfully")
        size = len(value)
        if size > MAX_STRING_LENGTH:
            raise TooLarge(f"a string of {size} characters is longer than {MAX_STRING_LENGTH}")
        self.chars -= size
        if self.chars < 0:
            raise TooLarge(f"more than {MAX_VALUE_CHARS} characters in all")
        return value

    def value(self, value: Any, depth: int) -> Any:
        self.nodes -= 1
        if self.nodes < 0:
            raise TooLarge(f"more than {MAX_VALUE_NODES} values")
        kind = type(value)
        if kind is str:
            value = self.string(value)
            return value if self.string_of is None else self.string_of(value)
        if kind is dict:
            return self.mapping(value, depth)
        if kind is list or kind is tuple:
            return self.sequence(value, depth)
        if kind is bool:
            return self.boolean(value)
        if kind is int:
            return self.integer(value)
        if kind is float:
            return self.double(value)
        if value is None:
            return None
        return self.other(value, depth)

    def mapping(self, value: Mapping, depth: int) -> Any:
        if len(value) > MAX_MAP_SIZE:
            raise TooLarge(f"a map of {len(value)} entries is larger than {MAX_MAP_SIZE}")
        if depth >= MAX_VALUE_DEPTH:
            raise TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        out, string, item_of, key_of = {}, self.string, self.value, self.key
        for key, item in value.items():
            # Plain ``str`` keys on both engines: cel-python looks fields up by ``str``.
            out[string(key) if type(key) is str else key_of(key)] = item_of(item, depth + 1)
        return out if self.mapping_of is None else self.mapping_of(out)

    def sequence(self, value: list | tuple, depth: int) -> Any:
        if len(value) > MAX_LIST_LENGTH:
            raise TooLarge(f"a list of {len(value)} elements is longer than {MAX_LIST_LENGTH}")
        if depth >= MAX_VALUE_DEPTH:
            raise TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        return self.b.sequence([self.value(item, depth + 1) for item in value])

    def integer(self, value: int) -> Any:
        if INT64_MIN <= value <= INT64_MAX:
            return self.b.integer(value)
        if 0 <= value <= UINT64_MAX:
            return self.b.unsigned(value)
        return self.b.double(float(value))

    def key(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.string(str(key))
        if isinstance(key, (bool, BoolType)):
            return self.boolean(bool(key))
        if isinstance(key, int) and INT64_MIN <= key <= UINT64_MAX:
            return self.integer(int(key))
        raise TypeError(f"map keys must be strings, ints (64-bit) or bools, not {type(key).__name__} {key!r}")

    def other(self, value: Any, depth: int) -> Any:
        """The rare cases: bytes, timestamps, durations, subclasses (engine values)."""
        if isinstance(value, (bytes, bytearray)):
            if len(value) > MAX_BYTES_LENGTH:
                raise TooLarge(f"{len(value)} bytes are longer than {MAX_BYTES_LENGTH}")
            if b"\x00" in value:  # cel-cpp cuts bytes at NUL too
                raise TooLarge("bytes holding a NUL cannot be bound faithfully")
            self.chars -= len(value)
            return self.b.data(bytes(value))
        if isinstance(value, datetime.datetime):
            if depth:
                raise TooLarge("a timestamp inside a map or list cannot be bound (cel-expr-python 0.1.3 cannot)")
            return self.b.timestamp(utc(value))
        if isinstance(value, datetime.timedelta):
            if depth:
                raise TooLarge("a duration inside a map or list cannot be bound (cel-expr-python 0.1.3 cannot)")
            return self.b.duration(datetime.timedelta(days=value.days, seconds=value.seconds,
                                                      microseconds=value.microseconds))
        if isinstance(value, (bool, BoolType)):
            return self.b.boolean(bool(value))
        if isinstance(value, UintType):
            return self.b.unsigned(int(value))
        if isinstance(value, int):
            return self.integer(int(value))
        if isinstance(value, float):
            return self.b.double(float(value))
        if isinstance(value, str):
            return self.b.string(self.string(str(value)))
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, (list, tuple)):
            return self.sequence(value, depth)
        raise TypeError(f"cannot convert a {type(value).__name__} into a CEL value")


def _same(value: Any) -> Any:
    """The identity builder (cel-expr-python takes plain Python values)."""
    return value


same = _same
