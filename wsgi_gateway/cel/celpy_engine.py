"""The cel-python engine (the default): pure Python, no compiler needed.

Compiling: the shared grammar parses the rule (:func:`~wsgi_gateway.cel.parse.parse`);
the static walk (:func:`~wsgi_gateway.cel.analysis.analyse`) in strict mode then refuses
what cel-python would only notice at evaluation: an identifier that is not one of
:data:`~wsgi_gateway.cel.bounds.VARIABLES` (names bound by macros are fine), an unknown
function, a type error between literals (``1 == 1.0``, ``'a' + 1``), a ``has()`` whose
argument is not a field selection, cel-python's non-standard ``reduce``/``min`` macros,
and with ``result=bool`` an expression whose kind is known and not ``bool``.

Evaluating: cel-python's interpreter with the gateway's function library
(:mod:`.celpy_functions`: cel-spec equality and ordering, CEL-only arithmetic, the strings
extension of :mod:`.celpy_strings`, result-size caps) run through the speed-ups of
:mod:`.celpy_internals` (the one module that touches cel-python internals, pinned to the
versions it was checked against).

Cost bound: every comprehension step goes through
:class:`~wsgi_gateway.cel.celpy_functions.Budget`: reaching
:data:`~wsgi_gateway.cel.bounds.MAX_ITERATIONS` steps, or running past the deadline, stops
the evaluation with :class:`~wsgi_gateway.cel.api.EvalError`.

cel-python's ``CompiledRunner`` is not used (0.5.0): it fails with ``'Tree' object has no
attribute 'checked_exception'`` after any interpreted environment, cannot call functions
defined outside ``celpy`` (the strings extension), stores the activation in module
globals (11 of 6,000 results were another thread's answer under two threads), and could
not carry the operator replacements; it was five times faster than ``InterpretedRunner``
but slower than this engine (32 µs against 6 µs on ``claims.sub != ''``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

import lark
from celpy.celtypes import (
    BoolType, BytesType, DoubleType, DurationType, IntType, ListType, MapType, StringType, TimestampType, UintType,
)
from celpy.evaluation import CELEvalError

from .analysis import analyse
from .api import CompileError, EvalError, Rejected, iter_names, require_result
from .bounds import MAP_VARIABLES
from .celpy_functions import FUNCTION_NAMES, NAMESPACES, NUM, CostExceeded, kind_of, number
from .celpy_internals import evaluate_tree, prepare_tree
from .convert import Builders, convert
from .cost import check_cost
from .kinds import DYN, check_result, result_kind
from .limits import DEFAULT_LIMITS, CelLimits
from .parse import parse
from .shapes import Shapes

__all__ = ["CelPythonEngine", "CelPythonProgram"]

_UTC = datetime.timezone.utc


def _map(items: dict) -> MapType:
    result = MapType()
    dict.update(result, items)  # MapType's own __init__ re-checks every key in Python
    return result


def _duration(value: datetime.timedelta) -> DurationType:
    try:
        return DurationType(value)
    except ValueError:
        from .convert import TooLarge
        raise TooLarge("a duration out of CEL's range") from None


BUILDERS: Final = Builders(
    string=lambda v: str.__new__(StringType, v),
    integer=lambda v: int.__new__(IntType, v),
    unsigned=lambda v: int.__new__(UintType, v),
    double=lambda v: float.__new__(DoubleType, v),
    boolean=lambda v: int.__new__(BoolType, v),
    data=BytesType,
    mapping=_map,
    sequence=ListType,
    timestamp=TimestampType,
    duration=_duration,
)

def _to_python(value: Any) -> Any:
    """A cel-python result → plain Python; EvalError for errors and type values."""
    kind = type(value)
    if kind is BoolType or kind is bool:
        return bool(value)
    if kind is StringType or kind is str:
        return str(value)
    if kind is IntType or kind is UintType or kind is int:
        return int(value)
    if kind is DoubleType or kind is float:
        return float(value)
    if value is None:
        return None
    if kind is ListType or kind is list:
        return [_to_python(item) for item in value]
    if kind is MapType or kind is dict:
        return {_to_python(key): _to_python(item) for key, item in value.items()}
    if isinstance(value, CELEvalError):
        raise EvalError(_message(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, datetime.datetime):
        plain = datetime.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            tzinfo=value.tzinfo or _UTC,
        )  # fmt: skip
        return plain.astimezone(_UTC)
    if isinstance(value, datetime.timedelta):
        return datetime.timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    kind_name = kind_of(value)
    if kind_name == "bool":
        return bool(value)
    if kind_name == NUM:
        return number(value)
    if kind_name == "string":
        return str(value)
    raise EvalError(f"a result of type '{kind_name}' cannot leave the evaluation")


def _message(error: BaseException) -> str:
    if error.args and isinstance(error.args[0], str):
        return error.args[0]
    return str(error) or type(error).__name__


# --- the engine ----------------------------------------------------------------------

_VARIABLE_CLASSES: Final[Mapping[str, tuple[type, str]]] = {
    **{name: (MapType, "a map") for name in MAP_VARIABLES},
    "api": (StringType, "a string"),
    "now": (TimestampType, "a timestamp"),
}
_PLAIN_CLASSES: Final[Mapping[str, tuple[type, ...]]] = {
    **{name: (Mapping,) for name in MAP_VARIABLES},
    "api": (str,),
    "now": (datetime.datetime,),
}


class CelPythonProgram:
    """A rule compiled for cel-python."""

    __slots__ = ("_engine", "_tree", "cost", "kind", "limits", "references", "result", "source", "variables")

    def __init__(self, engine: CelPythonEngine, source: str, tree: lark.Tree, references: frozenset[str],
                 variables: frozenset[str], result: type | None, limits: CelLimits, cost: float,
                 kind: str = "dyn") -> None:
        self._engine = engine
        self.result = result
        self.limits = limits
        self.cost = cost
        self.kind = kind
        self._tree = tree
        self.source = source
        self.references = references
        self.variables = variables

    def __repr__(self) -> str:
        return f"CelPythonProgram({self.source!r})"

    def evaluate(self, activation: Mapping[str, object]) -> object:
        try:
            bound = {name: self._engine.bind(name, value) for name, value in iter_names(activation, self.variables)}
            result = evaluate_tree(self._tree, bound, self.limits)
            if isinstance(result, CELEvalError):
                raise EvalError(_message(result))
            return require_result(_to_python(result), self.result)
        except EvalError:
            raise
        except (CELEvalError, CostExceeded) as ex:
            raise EvalError(_message(ex)) from None
        except RecursionError:
            raise EvalError("evaluation failed: expression too deeply nested") from None
        except Exception as ex:  # anything else inside cel-python or a function
            raise EvalError(f"evaluation failed: {type(ex).__name__}: {ex}") from None


class CelPythonEngine:
    """The cel-python engine; use :func:`wsgi_gateway.cel.get_engine`."""

    name = "cel-python"

    def compile(self, source: str, *, result: type | None = None, limits: CelLimits = DEFAULT_LIMITS,
                shapes: Shapes | None = None) -> CelPythonProgram:
        wanted = result_kind(result)
        tree = parse(source)
        try:
            analysis = analyse(tree, strict=True, functions=FUNCTION_NAMES, namespaces=NAMESPACES, shapes=shapes)
            cost = check_cost(tree, limits.cost_limit).cost
        except RecursionError:
            raise CompileError("expression nested too deeply") from None
        check_result(source, analysis.kind, wanted if wanted != DYN else None)
        return CelPythonProgram(self, source, prepare_tree(tree), analysis.references, analysis.variables,
                                result, limits, cost, analysis.kind)

    def convert(self, value: object) -> object:
        """A Python value → a cel-python value (or :class:`Rejected`); TypeError for types
        that are not JSON-like."""
        return convert(value, BUILDERS)

    def activation(self, values: Mapping[str, object]) -> Mapping[str, object]:
        """The variables of one request (converted values), for evaluating several rules;
        cel-python builds its activation per evaluation, so this is a plain copy."""
        return dict(values)

    def bind(self, name: str, value: object) -> Any:
        """The value of variable ``name`` as the interpreter needs it: checked for its kind,
        converted if the caller passed a plain Python value."""
        cls, description = _VARIABLE_CLASSES[name]
        if type(value) is cls:
            return value
        if isinstance(value, _PLAIN_CLASSES[name]):
            try:
                converted = self.convert(value)
            except TypeError as ex:
                raise EvalError(f"variable '{name}': {ex}") from None
            if isinstance(converted, Rejected):
                raise EvalError(f"variable '{name}' cannot be used: {converted.reason}")
            return converted
        raise EvalError(f"variable '{name}' must be {description}, not {type(value).__name__}")

