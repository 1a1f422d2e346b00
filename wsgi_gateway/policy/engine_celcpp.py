"""The cel-cpp engine: Google's C++ CEL through cel-expr-python (the extra ``fast-cel``).

``cel_expr_python`` is imported when the engine is created, not when this module is
imported: without it, :func:`wsgi_gateway.policy.engine.get_engine` ``("cel-cpp")`` raises
:class:`~wsgi_gateway.policy.engine.EngineUnavailable` naming
``pip install 'wsgi-gateway[fast-cel]'``, and nothing else is affected.

The environment: ``claims``, ``token``, ``identity``, ``request``, ``session`` declared
as ``map(string, dyn)``, ``api`` as ``string``, ``now`` as ``timestamp``; the strings
extension (``ExtStrings``, the latest version, with ``strings.quote`` and ``format``)
and the optional extension (``ExtOptional``: ``claims.?email``, ``m[?'k']``,
``optional.of()``, ``.orValue()``). Two-variable comprehensions and ``cel.bind`` exist in
cel-expr-python 0.1.3 (through an ``EnvConfig``) but stay off: cel-python has neither,
and ``cel.bind`` would let a rule build strings exponentially.

Compiling runs cel-cpp's parser and type checker (checking on: an undeclared variable,
an unknown function, a wrong argument type and, with ``result=bool``, a result type
other than ``bool`` or ``dyn`` are compile errors with cel-cpp's line and column), then
the shared static walk of :func:`wsgi_gateway.policy.engine.analyse` (non-strict) for
:attr:`references` and the shared cost rules. The walk uses cel-python's grammar; the
optional syntax is read as its plain form for it. A rule that grammar still cannot read
(backtick field names) gets its variables by scanning identifiers, and no cost rules.

Evaluating fails closed: a result of type ``ERROR`` (cel-expr-python returns errors as
values, and their ``value()`` is a non-empty, truthy string), a ``RuntimeError`` (a
duplicate map key, the iteration budget), and results that cannot be plain Python
(``type`` and ``optional`` values) are :class:`~wsgi_gateway.policy.engine.EvalError`.

Cost bound
----------
cel-expr-python 0.1.3 gives no access to cel-cpp's ``RuntimeOptions``; it evaluates with
a fixed comprehension budget, measured here: an evaluation may take 9,999 comprehension
steps, the 10,000th raises ``RuntimeError: Iteration budget exceeded`` (the same number
as :data:`~wsgi_gateway.policy.engine.MAX_ITERATIONS`). There is no time limit and no
bound on the size of strings built during an evaluation (``s.replace('', s)`` twice over
1,000 characters took 7 s and 1 GB here): the static ``replace()`` rule and the limits
of :meth:`CelCppEngine.convert` (shared with cel-python) are the protection.

Speed
-----
cel-expr-python converts the Python values of an activation into C++ values when a
``cel.Activation`` is built (about 3 µs for a 15-claim token), and it cannot take
pre-built C++ values (a ``cel.Value`` is not accepted as an activation value).
:meth:`CelCppEngine.convert` therefore only validates and normalises (limits, numbers,
timestamps); :meth:`CelCppEngine.activation` wraps the variables of one request and
caches one ``cel.Activation`` per set of variables used, so evaluating several rules of
a request converts each set once.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .engine import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INSTALL_HINT,
    INT,
    LIST,
    MAP,
    MAP_VARIABLES,
    MAX_BYTES_LENGTH,
    MAX_EXPRESSION_LENGTH,
    MAX_LIST_LENGTH,
    MAX_MAP_SIZE,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
    MAX_VALUE_NODES,
    NULL,
    STRING,
    TIMESTAMP,
    TYPE,
    UINT,
    CompileError,
    EngineUnavailable,
    EvalError,
    Rejected,
    analyse,
    check_result,
    iter_names,
    parse,
    result_kind,
    scan_variables,
    without_optional_syntax,
)

__all__ = ["CelCppActivation", "CelCppEngine", "CelCppProgram"]

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_UTC = datetime.timezone.utc
_ERROR_POSITION: Final = re.compile(r"ERROR: <input>:(-?\d+):(-?\d+): ([^\n]*)")
_STATUS_SUFFIX: Final = re.compile(r"\s*\[[A-Z_]+\]\s*$")
_NAMESPACES: Final[Mapping[str, frozenset[str]]] = {
    "strings": frozenset({"quote"}),
    "optional": frozenset({"of", "ofNonZeroValue", "none"}),
}
_KIND_NAMES: Final[Mapping[str, str]] = {
    "BOOL": BOOL, "INT": INT, "UINT": UINT, "DOUBLE": DOUBLE, "STRING": STRING, "BYTES": BYTES,
    "LIST": LIST, "MAP": MAP, "TIMESTAMP": TIMESTAMP, "DURATION": DURATION, "DYN": DYN,
    "NULL": NULL, "NULL_TYPE": NULL, "TYPE": TYPE,
}  # fmt: skip


def _load() -> tuple[Any, Any, Any]:
    try:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_optional, ext_strings
    except ImportError as ex:
        raise EngineUnavailable(
            f"the cel-cpp engine needs the cel-expr-python package, which is not installed: {INSTALL_HINT}",
            name="cel_expr_python",
        ) from ex
    return cel, ext_strings, ext_optional


def _status_text(error: BaseException) -> str:
    return _STATUS_SUFFIX.sub("", str(error)).strip() or type(error).__name__


def _compile_error(error: BaseException, source: str) -> CompileError:
    text = str(error)
    match = _ERROR_POSITION.search(text)
    if match is None:
        return CompileError(_status_text(error))
    message = match.group(3).replace(" (in container '')", "").strip()
    line, column = int(match.group(1)), int(match.group(2))
    if line < 1 or column < 1:  # "<input>:-1:-1" for the parser's recursion limit
        line, column = 1, 1
    return CompileError(message, line, column)


# --- values in --------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class _ConvertedMap(dict):  # type: ignore[type-arg]
    """A top-level map that :meth:`CelCppEngine.convert` produced (a plain ``dict`` to
    cel-expr-python)."""

    __slots__ = ()


def _int(value: int) -> int | float:
    # cel-expr-python binds ints in [2**63, 2**64) as uint by itself.
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    return float(value)


def _string(value: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise _TooLarge(f"a string of {len(value)} characters is longer than {MAX_STRING_LENGTH}")
    return value


def _key(key: Any) -> Any:
    kind = type(key)
    if kind is str:
        return _string(key)
    if kind is bool:
        return key
    if kind is int:
        if _INT64_MIN <= key <= _UINT64_MAX:
            return key
        raise TypeError(f"map key {key} out of range")
    if isinstance(key, str):
        return _string(str(key))
    if isinstance(key, (bool, int)):
        return bool(key) if isinstance(key, bool) or type(key).__name__ == "BoolType" else _key(int(key))
    raise TypeError(f"map keys must be strings, ints or bools, not {type(key).__name__}")


def _plain(value: Any, depth: int, nodes: list[int]) -> Any:
    nodes[0] -= 1
    if nodes[0] < 0:
        raise _TooLarge(f"more than {MAX_VALUE_NODES} values")
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is dict or kind is _ConvertedMap:
        if len(value) > MAX_MAP_SIZE:
            raise _TooLarge(f"a map of {len(value)} entries is larger than {MAX_MAP_SIZE}")
        if depth >= MAX_VALUE_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        return {_key(key): _plain(item, depth + 1, nodes) for key, item in value.items()}
    if kind is list or kind is tuple:
        if len(value) > MAX_LIST_LENGTH:
            raise _TooLarge(f"a list of {len(value)} elements is longer than {MAX_LIST_LENGTH}")
        if depth >= MAX_VALUE_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        return [_plain(item, depth + 1, nodes) for item in value]
    if kind is bool or kind is float or value is None:
        return value
    if kind is int:
        return _int(value)
    return _plain_other(value, depth, nodes)


def _plain_other(value: Any, depth: int, nodes: list[int]) -> Any:
    """The rare cases: bytes, timestamps, durations, subclasses (e.g. cel-python values)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_BYTES_LENGTH:
            raise _TooLarge(f"{len(value)} bytes are longer than {MAX_BYTES_LENGTH}")
        return bytes(value)
    if isinstance(value, datetime.datetime):
        if depth:
            raise _TooLarge("a timestamp inside a map or list cannot be bound (cel-expr-python 0.1.3)")
        plain = datetime.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            tzinfo=value.tzinfo,
        )  # fmt: skip
        return plain.astimezone(_UTC) if plain.tzinfo is not None else plain.replace(tzinfo=_UTC)
    if isinstance(value, datetime.timedelta):
        if depth:
            raise _TooLarge("a duration inside a map or list cannot be bound (cel-expr-python 0.1.3)")
        return datetime.timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    if isinstance(value, bool) or type(value).__name__ == "BoolType":
        return bool(value)
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return _string(str(value))
    if isinstance(value, Mapping):
        return _plain(dict(value), depth, nodes)
    if isinstance(value, (list, tuple)):
        return _plain(list(value), depth, nodes)
    raise TypeError(f"cannot convert a {type(value).__name__} into a CEL value")


# --- values out -------------------------------------------------------------------------


def _python(value: Any, cel: Any) -> Any:
    """A plain_value() → plain Python: bytearray → bytes; type values are refused."""
    if isinstance(value, list):
        return [_python(item, cel) for item in value]
    if isinstance(value, dict):
        return {_python(key, cel): _python(item, cel) for key, item in value.items()}
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, cel.Type):
        raise EvalError("a result of type 'type' cannot leave the evaluation")
    return value


# --- programs, activations, the engine ------------------------------------------------------


class CelCppActivation(Mapping[str, object]):
    """The variables of one request, with the ``cel.Activation``\\ s built from them cached
    per set of variables (see :meth:`CelCppEngine.activation`). Do not change the
    values after the first evaluation."""

    __slots__ = ("_cache", "_engine", "_values")

    def __init__(self, engine: CelCppEngine, values: Mapping[str, object]) -> None:
        self._engine = engine
        self._values = dict(values)
        self._cache: dict[frozenset[str], Any] = {}

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def native(self, names: frozenset[str]) -> Any:
        native = self._cache.get(names)
        if native is None:
            native = self._engine.native_activation(self._values, names)
            self._cache[names] = native
        return native


class CelCppProgram:
    """A rule compiled for cel-cpp."""

    __slots__ = ("_engine", "_expression", "references", "source", "variables")

    def __init__(self, engine: CelCppEngine, source: str, expression: Any, references: frozenset[str], variables: frozenset[str]) -> None:
        self._engine = engine
        self._expression = expression
        self.source = source
        self.references = references
        self.variables = variables

    def __repr__(self) -> str:
        return f"CelCppProgram({self.source!r})"

    def evaluate(self, activation: Mapping[str, object]) -> object:
        engine = self._engine
        try:
            if type(activation) is CelCppActivation:
                native = activation.native(self.variables)
            else:
                native = engine.native_activation(activation, self.variables)
            result = self._expression.eval(native)
            kind = result.type()
            if kind == engine.BOOL:
                return result.value()
            if kind == engine.ERROR:
                try:
                    message = str(result.value())
                except TypeError:  # an optional value reports type ERROR and has no value()
                    message = "a result of type 'optional' cannot leave the evaluation"
                raise EvalError(message or "evaluation error")
            if kind == engine.STRING or kind == engine.INT or kind == engine.DOUBLE:
                return result.value()
            return engine.to_python(result, kind)
        except EvalError:
            raise
        except RuntimeError as ex:  # a duplicate map key, the iteration budget, ...
            raise EvalError(_status_text(ex)) from None
        except Exception as ex:
            raise EvalError(f"evaluation failed: {type(ex).__name__}: {_status_text(ex)}") from None


class CelCppEngine:
    """The cel-cpp engine; use :func:`wsgi_gateway.policy.engine.get_engine`."""

    name = "cel-cpp"

    def __init__(self) -> None:
        cel, ext_strings, ext_optional = _load()
        self._cel = cel
        dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        self._env = cel.NewEnv(
            variables={
                **{name: dyn_map for name in MAP_VARIABLES},
                "api": cel.Type.STRING,
                "now": cel.Type.TIMESTAMP,
            },
            extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional()],
        )
        self._lock = threading.Lock()
        self.BOOL, self.ERROR = cel.Type.BOOL, cel.Type.ERROR
        self.STRING, self.INT, self.DOUBLE = cel.Type.STRING, cel.Type.INT, cel.Type.DOUBLE

    # -- compiling

    def compile(self, source: str, *, result: type | None = None) -> CelCppProgram:
        wanted = result_kind(result)
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise CompileError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
        try:
            with self._lock:
                expression = self._env.compile(source)
        except Exception as ex:  # cel-expr-python reports parse and check errors as RuntimeError
            raise _compile_error(ex, source) from None
        return_name = expression.return_type().name()
        kind = _KIND_NAMES.get(return_name.split("<", 1)[0].upper(), return_name.lower())
        check_result(source, kind, wanted)
        try:
            tree = parse(without_optional_syntax(source))
        except CompileError:
            tree = None
        if tree is None:
            variables = scan_variables(source)
            references = variables
        else:
            analysis = analyse(tree, strict=False, namespaces=_NAMESPACES)
            references, variables = analysis.references, analysis.variables
        return CelCppProgram(self, source, expression, references, variables)

    # -- values

    def convert(self, value: object) -> object:
        """A Python value → the value cel-expr-python will bind (validated, normalised),
        or :class:`Rejected`; TypeError for types that are not JSON-like."""
        try:
            plain = _plain(value, 0, [MAX_VALUE_NODES])
        except _TooLarge as ex:
            return Rejected(str(ex))
        return _ConvertedMap(plain) if type(plain) is dict else plain

    def activation(self, values: Mapping[str, object]) -> CelCppActivation:
        """The variables of one request (converted values), for evaluating several rules."""
        return CelCppActivation(self, values)

    def bind(self, name: str, value: object) -> object:
        """The value of variable ``name`` checked for its kind, converted if needed."""
        if name in MAP_VARIABLES:
            if type(value) is _ConvertedMap:
                return value
            ok = isinstance(value, Mapping)
            description = "a map"
        elif name == "api":
            ok, description = isinstance(value, str), "a string"
        else:
            ok, description = isinstance(value, datetime.datetime), "a timestamp"
        if not ok:
            raise EvalError(f"variable '{name}' must be {description}, not {type(value).__name__}")
        try:
            converted = self.convert(value)
        except TypeError as ex:
            raise EvalError(f"variable '{name}': {ex}") from None
        if isinstance(converted, Rejected):
            raise EvalError(f"variable '{name}' cannot be used: {converted.reason}")
        return converted

    def native_activation(self, values: Mapping[str, object], names: frozenset[str]) -> Any:
        data = {name: self.bind(name, value) for name, value in iter_names(values, names)}
        return self._env.Activation(data)

    def to_python(self, result: Any, kind: Any) -> object:
        name = kind.name()
        if name.startswith("optional") or kind == self._cel.Type.TYPE or kind == self._cel.Type.UNKNOWN:
            raise EvalError(f"a result of type '{name.lower()}' cannot leave the evaluation")
        return _python(result.plain_value(), self._cel)
