"""The CEL strings extension (cel-go ``ext/strings.go``) for cel-python.

cel-python 0.5.0 ships none of the strings extension, so rules could not call
``charAt``, ``indexOf``, ``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``,
``split``, ``substring``, ``trim``, ``join``, ``reverse``, ``format`` or
``strings.quote``. This module implements them with cel-go's semantics (the latest
library version, including the "v2" ``format`` behaviour the cel-spec conformance
data expects)::

    program = env.program(env.compile(text), functions=STRING_EXT_FUNCTIONS)

Every function returns a :class:`celpy.evaluation.CELEvalError` for a failure (index out
of range, bad formatting clause, ...) and the error ``"no such overload"`` for arguments
of the wrong type or number; no Python exception escapes. Indices count Unicode code
points (Python ``str`` indices), exactly as cel-go counts runes.

How dispatch works in cel-python: ``x.f(a, b)`` calls ``functions["f"](x, a, b)``, so
a member function is a plain function whose first argument is the receiver. Each entry
of :data:`STRING_EXT_FUNCTIONS` checks the argument count and types itself (cel-python
has no type checker) and then calls a small implementation function.

``strings.quote``: cel-go declares the namespaced global function ``strings.quote``;
cel-python parses ``strings.quote(s)`` as the method ``quote`` called on the identifier
``strings``. When an identifier is not a variable, cel-python looks it up in the
function mapping (``Activation.resolve_variable``, celpy/evaluation.py:1306), so :data:`STRING_EXT_FUNCTIONS`
binds ``"strings"`` to the marker object :data:`STRINGS_NAMESPACE` and ``"quote"`` to a
function that accepts only that marker as its receiver. Nothing has to be added to the
activation and the AST is used as parsed. Consequences: ``'x'.quote()`` and a bare
``quote('x')`` are ``no such overload`` (as in cel-go); a *variable* named ``strings``
shadows the namespace (then ``strings.quote(...)`` is ``no such overload``), so the
gateway must not bind one.

Where cel-go and the cel-spec conformance data disagree, this follows cel-go:
``indexOf``/``lastIndexOf`` with an offset at or past the end of the string return
``-1`` (the conformance data expects an error; a negative offset is an error in both).

Known differences from cel-go (none is exercised by the conformance data):

* there is no type checker, so every overload is resolved at run time: wrong types are
  an evaluation error, not a compile error, and the global spelling ``charAt('ab', 1)``
  works like the member one;
* ``format`` clauses are not validated when the rule is compiled (cel-go checks
  literal format strings statically);
* ``%s`` of bytes that are not UTF-8 shows U+FFFD for the bad bytes (cel-go produces an
  invalid string);
* timestamps and durations carry microseconds only (a cel-python limitation);
* the ``format`` precision is capped at :data:`MAX_FORMAT_PRECISION` to bound the cost
  of one call (cel-go has a cap too; its value was not checked).

Only :class:`celpy.InterpretedRunner` (cel-python's default) can call extension
functions; cel-python's ``CompiledRunner`` cannot reach functions defined outside
``celpy``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Final

from celpy import celtypes
from celpy.evaluation import CELEvalError

__all__ = [
    "MAX_FORMAT_PRECISION",
    "STRING_EXT_FUNCTIONS",
    "STRINGS_NAMESPACE",
    "StringsNamespace",
]

Result = Any  # a celtypes value or a CELEvalError
Check = Callable[[Any], bool]

#: Largest precision accepted by a ``format`` clause such as ``%.3f``.
MAX_FORMAT_PRECISION: Final = 100
_DEFAULT_PRECISION: Final = 6

# Python exceptions an implementation may raise on hostile input; they become CEL errors.
_CAUGHT = (ArithmeticError, LookupError, RecursionError, TypeError, UnicodeError, ValueError)


# --- errors -------------------------------------------------------------------------


def _error(message: str) -> CELEvalError:
    """A CEL evaluation error with cel-go's message."""
    return CELEvalError(message, ValueError, (message,))


def _no_such_overload(name: str, args: Sequence[Any]) -> CELEvalError:
    """The error for a call whose argument types match no overload of ``name``."""
    signature = ", ".join(type(arg).__name__ for arg in args)
    return CELEvalError("no such overload", TypeError, (f"{name}({signature})",))


# --- argument checks ----------------------------------------------------------------


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    """A CEL ``int``: not a bool and not a uint, which are ``int`` subclasses too."""
    return isinstance(value, int) and not isinstance(value, (bool, celtypes.BoolType, celtypes.UintType))


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_strings_namespace(value: Any) -> bool:
    return value is STRINGS_NAMESPACE


Overload = tuple[tuple[Check, ...], Callable[..., Result]]


def _overloaded(name: str, *overloads: Overload) -> Callable[..., Result]:
    """One CEL function: pick the overload by argument count, check the types, call it.

    An error argument is returned unchanged (CEL error propagation); a Python exception
    raised by the implementation becomes a CEL error.
    """
    by_arity = {len(checks): (checks, impl) for checks, impl in overloads}

    def dispatch(*args: Any) -> Result:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        entry = by_arity.get(len(args))
        if entry is None:
            return _no_such_overload(name, args)
        checks, impl = entry
        for check, arg in zip(checks, args):
            if not check(arg):
                return _no_such_overload(name, args)
        try:
            return impl(*args)
        except _CAUGHT as ex:
            return CELEvalError(f"{name}: {ex}", type(ex), ex.args)

    dispatch.__name__ = dispatch.__qualname__ = name
    dispatch.__doc__ = f"The CEL function ``{name}`` (strings extension)."
    return dispatch


# --- the simple functions ------------------------------------------------------------


def _char_at(text: str, index: int) -> Result:
    if index < 0 or index > len(text):
        return _error(f"index out of range: {index}")
    return celtypes.StringType(text[index : index + 1])


def _index_of(text: str, sub: str, offset: int = 0) -> Result:
    if not sub:
        return celtypes.IntType(offset)
    if offset < 0 or offset > len(text):  # cel-cpp: an offset past the end is an error
        return _error(f"index out of range: {offset}")
    return celtypes.IntType(text.find(sub, offset))


def _last_index_of(text: str, sub: str) -> Result:
    if not sub:
        return celtypes.IntType(len(text))
    return celtypes.IntType(text.rfind(sub))


def _last_index_of_offset(text: str, sub: str, offset: int) -> Result:
    if not sub:
        return celtypes.IntType(offset)
    if offset < 0 or offset > len(text):  # cel-cpp: an offset past the end is an error
        return _error(f"index out of range: {offset}")
    # The last match that starts at or before ``offset``.
    return celtypes.IntType(text.rfind(sub, 0, offset + len(sub)))


_LOWER_ASCII: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER_ASCII: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _lower_ascii(text: str) -> Result:
    return celtypes.StringType(text.translate(_LOWER_ASCII))


def _upper_ascii(text: str) -> Result:
    return celtypes.StringType(text.translate(_UPPER_ASCII))


def _replace(text: str, old: str, new: str, limit: int = -1) -> Result:
    # Python's str.replace matches Go's strings.Replace, also for an empty ``old`` and
    # for a negative limit (replace all).
    return celtypes.StringType(text.replace(old, new, limit))


def _split(text: str, sep: str, limit: int = -1) -> Result:
    """Go's ``strings.SplitN``: 0 gives ``[]``, a negative limit splits everywhere."""
    if limit == 0:
        return celtypes.ListType()
    if sep:
        parts = text.split(sep) if limit < 0 else text.split(sep, limit - 1)
    elif not text:  # cel-cpp: ''.split('') is [''] (Go's SplitN gives []); the engines agree
        parts = [""]
    else:  # an empty separator splits between code points
        if limit < 0 or limit > len(text):
            limit = len(text)
        parts = list(text[: limit - 1]) + [text[limit - 1 :]] if limit else []
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _substring(text: str, start: int) -> Result:
    if start < 0 or start > len(text):
        return _error(f"index out of range: {start}")
    return celtypes.StringType(text[start:])


def _substring_range(text: str, start: int, end: int) -> Result:
    if start > end:
        return _error(f"invalid substring range. start: {start}, end: {end}")
    if start < 0 or start > len(text):
        return _error(f"index out of range: {start}")
    if end < 0 or end > len(text):
        return _error(f"index out of range: {end}")
    return celtypes.StringType(text[start:end])


# Go's unicode.IsSpace: Unicode White_Space. Unlike Python's str.strip() this keeps the
# ASCII separators U+001C..U+001F; zero-width characters are not White_Space.
_WHITE_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _trim(text: str) -> Result:
    return celtypes.StringType(text.strip(_WHITE_SPACE))


def _reverse(text: str) -> Result:
    return celtypes.StringType(text[::-1])


def _join(items: Sequence[Any], sep: str = "") -> Result:
    for item in items:
        if isinstance(item, CELEvalError):
            return item
        if not isinstance(item, str):
            return _error(f"join: invalid input: {item!r}")
    return celtypes.StringType(sep.join(items))


# strings.quote: escape what a CEL string literal would interpret; lone surrogates (not
# valid Unicode scalar values) become U+FFFD, as cel-go does with invalid UTF-8.
_QUOTE_TABLE: Final = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x5C: "\\\\",
    0x22: '\\"',
    **{surrogate: "\ufffd" for surrogate in range(0xD800, 0xE000)},
}


def _quote(_namespace: StringsNamespace, text: str) -> Result:
    return celtypes.StringType('"' + text.translate(_QUOTE_TABLE) + '"')


# --- format: value classification --------------------------------------------------

_BOOL, _INT, _UINT, _DOUBLE, _STRING, _BYTES = "bool", "int", "uint", "double", "string", "bytes"
_LIST, _MAP, _NULL, _TIMESTAMP, _DURATION, _TYPE = "list", "map", "null_type", "timestamp", "duration", "type"

_KIND_BY_CLASS: Final[Mapping[type, str]] = {
    celtypes.BoolType: _BOOL,
    bool: _BOOL,
    celtypes.UintType: _UINT,  # before int: the subclass scan below goes in this order
    celtypes.IntType: _INT,
    int: _INT,
    celtypes.DoubleType: _DOUBLE,
    float: _DOUBLE,
    celtypes.StringType: _STRING,
    str: _STRING,
    celtypes.BytesType: _BYTES,
    bytes: _BYTES,
    celtypes.ListType: _LIST,
    list: _LIST,
    tuple: _LIST,
    celtypes.MapType: _MAP,
    dict: _MAP,
    type(None): _NULL,
    celtypes.NullType: _NULL,
    celtypes.TimestampType: _TIMESTAMP,
    celtypes.DurationType: _DURATION,
}


def _kind(value: Any) -> str | None:
    """The CEL type of a value, or None for values ``format`` does not handle."""
    kind = _KIND_BY_CLASS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, (celtypes.MessageType, celtypes.PackageType)):
        return None  # protobuf messages: cel-go refuses them too
    if isinstance(value, type):
        return _TYPE
    for cls, kind in _KIND_BY_CLASS.items():  # subclasses, e.g. celpy's Int32Value
        if isinstance(value, cls):
            return kind
    if isinstance(value, datetime.datetime):
        return _TIMESTAMP
    if isinstance(value, datetime.timedelta):
        return _DURATION
    if isinstance(value, Mapping):
        return _MAP
    return None


_TYPE_NAMES: Final[Mapping[type, str]] = {
    celtypes.BoolType: "bool",
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    type(None): "null_type",
    celtypes.NullType: "null_type",
    celtypes.TimestampType: "google.protobuf.Timestamp",
    celtypes.DurationType: "google.protobuf.Duration",
    celtypes.TypeType: "type",
}


def _type_name(value: Any) -> str:
    """The CEL name of a value's type, for error messages and for ``%s`` of a type."""
    if isinstance(value, type):
        return _TYPE_NAMES.get(value, value.__name__)
    kind = _kind(value)
    if kind in (_TIMESTAMP, _DURATION):
        return _TYPE_NAMES[celtypes.TimestampType if kind == _TIMESTAMP else celtypes.DurationType]
    return kind or type(value).__name__


class _FormatError(Exception):
    """Raised inside ``format``; turned into a CEL error at the function boundary."""


class _NestedError(Exception):
    """An error value found inside a list or map argument; ``format`` returns it."""

    def __init__(self, error: CELEvalError) -> None:
        super().__init__(*error.args)
        self.error = error


def _format_error(message: str, value: Any) -> _FormatError:
    """cel-go's message for a clause applied to a value of the wrong type."""
    return _FormatError(f"error during formatting: {message}, was given {_type_name(value)}")


# --- format: the text of values -----------------------------------------------------


def _non_finite(value: float) -> str | None:
    """cel-go's names for NaN and the infinities, or None for a finite double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return None


def _shortest_fixed(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest round-trip digits, no exponent."""
    text = float.__repr__(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _double_text(value: float) -> str:
    return _non_finite(value) or _shortest_fixed(value)


def _timestamp_text(value: datetime.datetime) -> str:
    """RFC 3339 in UTC with the fraction's trailing zeros dropped (Go's RFC3339Nano)."""
    offset = value.utcoffset()
    utc = datetime.datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )
    if offset:
        utc -= offset
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _duration_text(value: datetime.timedelta) -> str:
    """Go's ``Duration.Seconds()`` in shortest fixed notation, then ``s``."""
    nanos = ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000
    whole, frac = divmod(abs(nanos), 1_000_000_000)
    sign = -1 if nanos < 0 else 1
    return _shortest_fixed(sign * (float(whole) + float(frac) / 1e9)) + "s"


def _value_text(value: Any) -> str:
    """The ``%s`` text of any CEL value (cel-go's format v2), recursing into lists and maps."""
    kind = _kind(value)
    if kind == _STRING:
        return str(value)
    if kind == _BOOL:
        return "true" if value else "false"
    if kind == _INT or kind == _UINT:
        return str(int(value))
    if kind == _DOUBLE:
        return _double_text(value)
    if kind == _BYTES:
        return bytes(value).decode("utf-8", "replace")
    if kind == _NULL:
        return "null"
    if kind == _LIST:
        return "[" + ", ".join(_value_text(item) for item in value) + "]"
    if kind == _MAP:
        entries = sorted(((_value_text(k), _value_text(v)) for k, v in value.items()), key=itemgetter(0))
        return "{" + ", ".join(f"{k}: {v}" for k, v in entries) + "}"
    if kind == _TIMESTAMP:
        return _timestamp_text(value)
    if kind == _DURATION:
        return _duration_text(value)
    if kind == _TYPE:
        return _type_name(value)
    if isinstance(value, CELEvalError):  # cel-python keeps errors inside map literals
        raise _NestedError(value)
    raise _format_error(
        "string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types,"
        " durations, and timestamps",
        value,
    )


# --- format: the clauses ---------------------------------------------------------------



def _clause_string(value: Any, _precision: int) -> str:
    return _value_text(value)


def _clause_decimal(value: Any, _precision: int) -> str:
    kind = _kind(value)
    if kind == _INT or kind == _UINT:
        return str(int(value))
    if kind == _DOUBLE:
        return _double_text(value)
    raise _format_error("decimal clause can only be used on ints, uints, and doubles", value)


def _float_clause(clause: str, spec: str) -> Callable[[Any, int], str]:
    def format_number(value: Any, precision: int) -> str:
        kind = _kind(value)
        if kind == _INT or kind == _UINT:
            return format(float(value), f".{precision}{spec}")
        if kind == _DOUBLE:
            return _non_finite(value) or format(float(value), f".{precision}{spec}")
        raise _format_error(f"{clause} can only be used on ints, uints, and doubles", value)

    return format_number


def _int_clause(message: str, spec: str, bools: bool = False) -> Callable[[Any, int], str]:
    def format_integer(value: Any, _precision: int) -> str:
        kind = _kind(value)
        if kind == _INT or kind == _UINT:
            return format(int(value), spec)
        if bools and kind == _BOOL:
            return "1" if value else "0"
        raise _format_error(message, value)

    return format_integer


def _hex_clause(upper: bool) -> Callable[[Any, int], str]:
    spec = "X" if upper else "x"

    def format_hex(value: Any, _precision: int) -> str:
        kind = _kind(value)
        if kind == _INT or kind == _UINT:
            return format(int(value), spec)
        if kind == _STRING or kind == _BYTES:
            data = value.encode("utf-8") if kind == _STRING else bytes(value)
            return data.hex().upper() if upper else data.hex()
        raise _format_error("only ints, uints, bytes, and strings can be formatted as hex", value)

    return format_hex


_CLAUSES: Final[Mapping[str, Callable[[Any, int], str]]] = {
    "s": _clause_string,
    "d": _clause_decimal,
    "f": _float_clause("fixed-point clause", "f"),
    "e": _float_clause("scientific clause", "e"),
    "b": _int_clause("only ints, uints, and bools can be formatted as binary", "b", bools=True),
    "x": _hex_clause(upper=False),
    "X": _hex_clause(upper=True),
    "o": _int_clause("octal clause can only be used on ints and uints", "o"),
}
_DIGITS: Final = frozenset("0123456789")


def _parse_precision(template: str, pos: int) -> tuple[int, int]:
    """Read an optional ``.N`` at ``pos``; return (precision, position of the verb)."""
    if template[pos] != ".":
        return _DEFAULT_PRECISION, pos
    start = end = pos + 1
    while end < len(template) and template[end] in _DIGITS:
        end += 1
    if end >= len(template):
        raise _FormatError("could not parse formatting clause: could not find end of precision specifier")
    if end == start:
        raise _FormatError("could not parse formatting clause: missing precision")
    precision = int(template[start:end])
    if precision > MAX_FORMAT_PRECISION:
        raise _FormatError(
            f"could not parse formatting clause: precision {precision} exceeds {MAX_FORMAT_PRECISION}"
        )
    return precision, end


def _render(template: str, args: Sequence[Any]) -> str:
    """printf-style substitution with cel-go's clauses; raises _FormatError."""
    out: list[str] = []
    pos, arg_index, size = 0, 0, len(template)
    while pos < size:
        percent = template.find("%", pos)
        if percent < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:percent])
        pos = percent + 1
        if pos < size and template[pos] == "%":
            out.append("%")
            pos += 1
            continue
        if arg_index >= len(args):
            raise _FormatError(f"index {arg_index} out of range")
        if pos >= size:
            raise _FormatError("unexpected end of string")
        precision, pos = _parse_precision(template, pos)
        clause = _CLAUSES.get(template[pos])
        if clause is None:
            raise _FormatError(
                f'could not parse formatting clause: unrecognized formatting clause "{template[pos]}"'
            )
        arg = args[arg_index]
        if isinstance(arg, CELEvalError):
            raise _NestedError(arg)
        out.append(clause(arg, precision))
        pos += 1
        arg_index += 1
    return "".join(out)


def _format(template: str, args: Sequence[Any]) -> Result:
    try:
        return celtypes.StringType(_render(template, args))
    except _FormatError as ex:
        return _error(str(ex))
    except _NestedError as ex:
        return ex.error


# --- the strings namespace -----------------------------------------------------------


class StringsNamespace:
    """What the identifier ``strings`` evaluates to: the receiver of ``strings.quote``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "strings"

    def __call__(self, *args: Any) -> CELEvalError:
        """``strings(...)`` is not a function."""
        return _no_such_overload("strings", args)


#: The single :class:`StringsNamespace`, bound to ``strings`` in :data:`STRING_EXT_FUNCTIONS`.
STRINGS_NAMESPACE: Final = StringsNamespace()


# --- the public mapping ------------------------------------------------------------------

_S, _I, _L, _NS = _is_string, _is_int, _is_list, _is_strings_namespace

#: The strings extension for ``celpy.Environment().program(ast, functions=...)``.
STRING_EXT_FUNCTIONS: Final[Mapping[str, Callable[..., Result]]] = MappingProxyType(
    {
        "charAt": _overloaded("charAt", ((_S, _I), _char_at)),
        "indexOf": _overloaded("indexOf", ((_S, _S), _index_of), ((_S, _S, _I), _index_of)),
        "lastIndexOf": _overloaded(
            "lastIndexOf", ((_S, _S), _last_index_of), ((_S, _S, _I), _last_index_of_offset)
        ),
        "lowerAscii": _overloaded("lowerAscii", ((_S,), _lower_ascii)),
        "upperAscii": _overloaded("upperAscii", ((_S,), _upper_ascii)),
        "replace": _overloaded("replace", ((_S, _S, _S), _replace), ((_S, _S, _S, _I), _replace)),
        "split": _overloaded("split", ((_S, _S), _split), ((_S, _S, _I), _split)),
        "substring": _overloaded("substring", ((_S, _I), _substring), ((_S, _I, _I), _substring_range)),
        "trim": _overloaded("trim", ((_S,), _trim)),
        "join": _overloaded("join", ((_L,), _join), ((_L, _S), _join)),
        "reverse": _overloaded("reverse", ((_S,), _reverse)),
        "format": _overloaded("format", ((_S, _L), _format)),
        "quote": _overloaded("strings.quote", ((_NS, _S), _quote)),
        "strings": STRINGS_NAMESPACE,
    }
)
