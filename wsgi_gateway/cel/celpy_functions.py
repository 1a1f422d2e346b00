"""cel-python's function library as the gateway runs it: CEL's operators with cel-spec
semantics (heterogeneous equality, cross-type numeric ordering, ``in``, indexing, CEL-only
arithmetic overloads), ``size``/``contains``/``timestamp`` fixes, the strings extension
(:mod:`.celpy_strings`) with result-size caps, and the per-evaluation budget.

Uses only cel-python's value types (``celpy.celtypes``), its error value
(``CELEvalError``) and its ``base_functions`` table, the parts of its public API that
functions are written against; the interpreter internals live in :mod:`.celpy_internals`.
"""

from __future__ import annotations

import datetime
import math
import operator
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final

from celpy.celtypes import (
    BoolType, BytesType, DoubleType, DurationType, IntType, ListType, MapType, StringType, TimestampType, UintType,
)
from celpy.evaluation import CELEvalError, base_functions

from .bounds import MAX_ITERATIONS, MAX_RESULT_STRING_LENGTH
from .celpy_strings import STRING_EXT_FUNCTIONS
from .library import LIBRARY_NAMESPACES

#: Wall-clock bound of one evaluation (cel-python only; cel-cpp has none).
MAX_EVAL_SECONDS: Final = 0.5
#: How often (in comprehension steps, or list elements scanned by ``in``) the deadline is read.
DEADLINE_CHECK_STEPS: Final = 1

_UTC = datetime.timezone.utc


def utc_timestamp(value: datetime.datetime) -> TimestampType:
    value = value.astimezone(_UTC) if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    return TimestampType(value)

# --- errors and the budget -------------------------------------------------------------


def eval_error(message: str, cls: type[Exception] = TypeError) -> CELEvalError:
    return CELEvalError(message, cls, (message,))


def no_overload(name: str, *args: Any) -> CELEvalError:
    kinds = ", ".join(kind_name(arg) for arg in args)
    return eval_error(f"no such overload: {name}({kinds})")


class CostExceeded(Exception):
    """Raised through the interpreter when an evaluation is over its budget.

    Not a CELEvalError: nothing in cel-python or in the macros below catches it.
    """


class Budget:
    """The run-time bound of one evaluation: comprehension steps and a deadline."""

    __slots__ = ("clock", "deadline", "steps", "timeout")

    def __init__(self, timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.steps = 0
        self.timeout = MAX_EVAL_SECONDS if timeout is None else timeout
        self.clock = clock
        self.deadline = clock() + self.timeout

    def step(self) -> None:
        self.steps += 1
        if self.steps >= MAX_ITERATIONS:
            raise CostExceeded(f"evaluation cost limit exceeded: {MAX_ITERATIONS} comprehension steps")
        if not self.steps % DEADLINE_CHECK_STEPS:
            self.check_time()

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise CostExceeded(f"evaluation time limit exceeded: {self.timeout} s")


CURRENT_BUDGET: ContextVar[Budget | None] = ContextVar("cel_python_budget", default=None)


# --- kinds, equality, ordering ---------------------------------------------------------

NUM, _OTHER = "num", "other"
_KINDS: Final[Mapping[type, str]] = {
    BoolType: "bool", bool: "bool",
    IntType: NUM, UintType: NUM, int: NUM, DoubleType: NUM, float: NUM,
    StringType: "string", str: "string", BytesType: "bytes", bytes: "bytes",
    ListType: "list", list: "list", MapType: "map", dict: "map",
    type(None): "null", TimestampType: "timestamp", DurationType: "duration",
}  # fmt: skip
_TYPE_ALIASES: Final[Mapping[type, type]] = {
    str: StringType, list: ListType, dict: MapType, int: IntType, float: DoubleType,
    bool: BoolType, bytes: BytesType, datetime.datetime: TimestampType, datetime.timedelta: DurationType,
}  # fmt: skip


def kind_of(value: Any) -> str:
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, type):
        return "type"
    if isinstance(value, CELEvalError):
        return "error"
    for cls, kind in _KINDS.items():
        if isinstance(value, cls):
            return kind
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, datetime.timedelta):
        return "duration"
    if isinstance(value, Mapping):
        return "map"
    return _OTHER


def kind_name(value: Any) -> str:
    kind = kind_of(value)
    if kind == NUM:
        return "uint" if isinstance(value, UintType) else "double" if isinstance(value, float) else "int"
    return kind


def number(value: Any) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


MISSING: Final = object()


def map_get(mapping: Mapping[Any, Any], key: Any) -> Any:
    """``mapping[key]`` with CEL's key equality (numbers across types), or MISSING."""
    try:
        return dict.__getitem__(mapping, key) if isinstance(mapping, dict) else mapping[key]
    except (KeyError, TypeError):
        pass
    kind = kind_of(key)
    if kind in (NUM, "bool", "string"):
        for candidate, value in mapping.items():
            if kind_of(candidate) == kind and _equal(candidate, key):
                return value
    return MISSING


def _numbers(a: Any, b: Any) -> tuple[int | float, int | float]:
    """Two numbers as cel-cpp compares them: an int or uint against a double is read as
    a double (``dyn(9007199254740993) == 9007199254740992.0`` is true on both engines)."""
    x, y = number(a), number(b)
    if isinstance(x, float) != isinstance(y, float):
        return float(x), float(y)
    return x, y


def _equal(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality of two non-error values."""
    kind = kind_of(a)
    if kind != kind_of(b):
        return False
    if kind == NUM:
        x, y = _numbers(a, b)
        return x == y
    if kind == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if kind == "map":
        if len(a) != len(b):
            return False
        for key, value in a.items():
            other = map_get(b, key)
            if other is MISSING or not _equal(value, other):
                return False
        return True
    if kind == "type":
        return _TYPE_ALIASES.get(a, a) is _TYPE_ALIASES.get(b, b)
    if kind == _OTHER:
        return a is b
    return bool(a == b)


def _eq(a: Any, b: Any) -> Any:
    if isinstance(a, CELEvalError):
        return a
    if isinstance(b, CELEvalError):
        return b
    return BoolType(_equal(a, b))


def _ne(a: Any, b: Any) -> Any:
    if isinstance(a, CELEvalError):
        return a
    if isinstance(b, CELEvalError):
        return b
    return BoolType(not _equal(a, b))


_ORDERED_KINDS: Final = frozenset({"string", "bytes", "bool", "timestamp", "duration"})


def _ordering(name: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def ordered(a: Any, b: Any) -> Any:
        if isinstance(a, CELEvalError):
            return a
        if isinstance(b, CELEvalError):
            return b
        ka, kb = kind_of(a), kind_of(b)
        if ka == kb == NUM:
            return BoolType(compare(*_numbers(a, b)))
        if ka == kb and ka in _ORDERED_KINDS:
            if ka == "string":
                return BoolType(compare(str(a), str(b)))
            if ka == "bool":
                return BoolType(compare(int(a), int(b)))
            return BoolType(compare(a, b))
        return no_overload(name, a, b)

    ordered.__name__ = name
    return ordered


_TRUE_VALUE, _FALSE_VALUE = BoolType(True), BoolType(False)
_STRING_TYPES: Final = (StringType, str)
_NUMBER_TYPES: Final = (IntType, UintType, DoubleType, int, float)
_IN_CHUNK: Final = 4096


def _contains_item(elements: list[Any], item: Any) -> bool:
    """Whether ``item`` equals an element (CEL equality), with fast paths for the usual
    string and number lookups (``'admin' in token.scopes``)."""
    kind = kind_of(item)
    if kind == "string":
        text = str(item)
        return any(type(element) in _STRING_TYPES and str.__eq__(element, text) for element in elements)
    if kind == NUM:
        wanted = number(item)
        return any(type(element) in _NUMBER_TYPES and number(element) == wanted for element in elements)
    return any(_equal(item, element) for element in elements)


def _in(item: Any, container: Any) -> Any:
    if isinstance(item, CELEvalError):
        return item
    if isinstance(container, CELEvalError):
        return container
    kind = kind_of(container)
    if kind == "list":
        if len(container) > _IN_CHUNK:
            budget = CURRENT_BUDGET.get()
            for start in range(0, len(container), _IN_CHUNK):
                if budget is not None:
                    budget.check_time()
                if _contains_item(container[start : start + _IN_CHUNK], item):
                    return _TRUE_VALUE
            return _FALSE_VALUE
        return _TRUE_VALUE if _contains_item(container, item) else _FALSE_VALUE
    if kind == "map":
        return BoolType(map_get(container, item) is not MISSING)
    return no_overload("@in", item, container)


def index_value(container: Any, key: Any) -> Any:
    if isinstance(container, CELEvalError):
        return container
    if isinstance(key, CELEvalError):
        return key
    kind = kind_of(container)
    if kind == "list":
        if kind_of(key) == NUM and (not isinstance(key, float) or float(key).is_integer()):
            index = int(key)  # an integral double indexes too, as in cel-cpp
            if 0 <= index < len(container):
                return container[index]
            return eval_error(f"index out of range: {index} (size {len(container)})", IndexError)
        return no_overload("_[_]", container, key)
    if kind == "map":
        value = map_get(container, key)
        if value is MISSING:
            return eval_error(f"no such key: {key!r}", KeyError)
        return value
    return no_overload("_[_]", container, key)


def _size(value: Any = MISSING, *extra: Any) -> Any:
    if isinstance(value, CELEvalError):
        return value
    if not extra and kind_of(value) in ("string", "bytes", "list", "map"):
        return IntType(len(value))
    return no_overload("size", *((value, *extra) if value is not MISSING else extra))


def _contains(text: Any, part: Any = MISSING) -> Any:
    for arg in (text, part):
        if isinstance(arg, CELEvalError):
            return arg
    if kind_of(text) == "string" and kind_of(part) == "string":
        return BoolType(str(part) in str(text))
    return no_overload("contains", text, part)


def _timestamp(value: Any = MISSING, *extra: Any) -> Any:
    if isinstance(value, CELEvalError):
        return value
    if extra or value is MISSING:
        return no_overload("timestamp", *extra)
    kind = kind_name(value)
    try:
        if kind == "string":
            return utc_timestamp(TimestampType(str(value)))
        if kind == "int":
            return utc_timestamp(datetime.datetime.fromtimestamp(int(value), _UTC))
        if kind == "timestamp":
            return value
    except (ValueError, OverflowError, OSError, TypeError) as ex:
        return eval_error(f"timestamp: {ex}", ValueError)
    return no_overload("timestamp", value)


def double_text(value: float) -> str:
    """``string(double)`` as cel-cpp writes it: the shortest digits that read back the same,
    in exponent form below 1e-4 and from 1e6 on (``1``, ``1.5``, ``1e+06``,
    ``1.23456789e+08``, ``-0``, ``inf``)."""
    if math.isnan(value):  # the sign of a NaN shows, as in C++ (0.0/0.0 is -nan on x86)
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    for precision in range(0, 17):  # 17 significant digits always read back the same
        text = f"{value:.{precision}e}"
        if float(text) == value:
            break
    significand, _, exp = text.partition("e")
    exponent_value = int(exp)
    if exponent_value < -4 or exponent_value >= 6:
        significand = significand.rstrip("0").rstrip(".")
        return f"{significand}e{'-' if exponent_value < 0 else '+'}{abs(exponent_value):02d}"
    fixed = f"{value:.{max(precision - exponent_value, 0)}f}"
    return fixed.rstrip("0").rstrip(".") if "." in fixed else fixed


def _int(value: Any = MISSING, *extra: Any) -> Any:
    """``int(double)``: only doubles strictly inside the int64 range (cel-cpp refuses
    ``int(-9223372036854775808.0)``, cel-python gave a value)."""
    if not extra and type(value) is DoubleType and not (-(2.0**63) < float(value) < 2.0**63):
        return eval_error("double out of int64 range", ValueError)
    return base_functions["int"](*((value, *extra) if value is not MISSING else extra))


def _string(value: Any = MISSING, *extra: Any) -> Any:
    if not extra and type(value) is DoubleType:
        return StringType(double_text(float(value)))
    return base_functions["string"](*((value, *extra) if value is not MISSING else extra))


def _capped(name: str, function: Callable[..., Any], estimate: Callable[..., int | None] | None = None) -> Callable[..., Any]:
    """A strings-extension function that refuses results over MAX_RESULT_STRING_LENGTH."""

    def capped(*args: Any) -> Any:
        if estimate is not None:
            size = estimate(*args)
            if size is not None and size > MAX_RESULT_STRING_LENGTH:
                return eval_error(f"{name}: result longer than {MAX_RESULT_STRING_LENGTH} characters", ValueError)
        result = function(*args)
        if isinstance(result, str) and len(result) > MAX_RESULT_STRING_LENGTH:
            return eval_error(f"{name}: result longer than {MAX_RESULT_STRING_LENGTH} characters", ValueError)
        return result

    capped.__name__ = name
    return capped


def _replace_size(text: Any = None, old: Any = None, new: Any = None, limit: Any = -1, *_: Any) -> int | None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and isinstance(limit, int)):
        return None
    count = text.count(old) if old else len(text) + 1
    if limit >= 0:
        count = min(count, int(limit))
    return len(text) + count * (len(new) - len(old))


def _join_size(items: Any = None, sep: Any = "", *_: Any) -> int | None:
    if not isinstance(items, list) or not isinstance(sep, str):
        return None
    return sum(len(item) for item in items if isinstance(item, str)) + len(sep) * max(len(items) - 1, 0)


FUNCTIONS: Final[dict[str, Any]] = {
    **base_functions,
    **STRING_EXT_FUNCTIONS,
    "_==_": _eq,
    "_!=_": _ne,
    "_<_": _ordering("_<_", operator.lt),
    "_<=_": _ordering("_<=_", operator.le),
    "_>_": _ordering("_>_", operator.gt),
    "_>=_": _ordering("_>=_", operator.ge),
    "_in_": _in,
    "_[_]": index_value,
    "size": _size,
    "string": _string,
    "int": _int,
    "contains": _contains,
    "timestamp": _timestamp,
    "replace": _capped("replace", STRING_EXT_FUNCTIONS["replace"], _replace_size),
    "join": _capped("join", STRING_EXT_FUNCTIONS["join"], _join_size),
    "format": _capped("format", STRING_EXT_FUNCTIONS["format"]),
}
#: What a type name means as a value (``type(x) == string``): cel-python's own table, not
#: the gateway's replacements of the conversion functions.
TYPE_VALUES: Final[Mapping[str, Any]] = {name: base_functions[name] for name in ("string", "int")}

from .celpy_library import library_functions  # noqa: E402  (it uses the helpers above)

_NAMESPACE_ONLY: Final = frozenset(name for names in LIBRARY_NAMESPACES.values() for name in names) - {"contains"}
FUNCTIONS.update(library_functions(FUNCTIONS))
#: Names a rule may call (functions and methods); operators and namespaces excluded.
FUNCTION_NAMES: Final = frozenset(
    name for name in FUNCTIONS
    if name[0].isalpha() and name not in ("strings", "quote", "list", "map", "null_type", *LIBRARY_NAMESPACES)
    and name not in _NAMESPACE_ONLY
)
NAMESPACES: Final[Mapping[str, frozenset[str]]] = {"strings": frozenset({"quote"}), **LIBRARY_NAMESPACES}
