"""The cel-cpp engine: Google's C++ CEL through cel-expr-python (the extra ``fast-cel``).

``cel_expr_python`` is imported when the engine is created, not when this module is
imported: without it, :func:`wsgi_gateway.cel.get_engine` ``("cel-cpp")`` raises
:class:`~wsgi_gateway.cel.EngineUnavailable` naming
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
the shared static walk of :func:`wsgi_gateway.cel.analyse` (non-strict) for
:attr:`references` and the shared cost rules. The walk uses cel-python's grammar; the
optional syntax is read as its plain form for it. A rule that grammar still cannot read
(backtick field names) gets its variables by scanning identifiers, and no cost rules.

Evaluating fails closed: a result of type ``ERROR`` (cel-expr-python returns errors as
values, and their ``value()`` is a non-empty, truthy string), a ``RuntimeError`` (a
duplicate map key, the iteration budget), and results that cannot be plain Python
(``type`` and ``optional`` values) are :class:`~wsgi_gateway.cel.EvalError`.

Cost bound
----------
cel-expr-python 0.1.3 gives no access to cel-cpp's ``RuntimeOptions``; it evaluates with
a fixed comprehension budget, measured here: an evaluation may take 9,999 comprehension
steps, the 10,000th raises ``RuntimeError: Iteration budget exceeded`` (the same number
as :data:`~wsgi_gateway.cel.MAX_ITERATIONS`). There is no time limit and no
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

from .analysis import analyse
from .api import CompileError, EngineUnavailable, EvalError, Rejected, iter_names, require_result
from .bounds import INSTALL_HINT, MAP_VARIABLES, MAX_EXPRESSION_LENGTH
from .convert import Builders, convert
from .convert import same as _same
from .kinds import (
    BOOL, BYTES, DOUBLE, DURATION, DYN, INT, LIST, MAP, NULL, STRING, TIMESTAMP, TYPE, UINT, check_result,
    result_kind,
)
from .cost import check_cost
from .library import LIBRARY, LIBRARY_NAMESPACES
from .limits import DEFAULT_LIMITS, CelLimits
from .parse import first_position, parse, scan_variables, without_backticks, without_optional_syntax
from .shapes import Shapes

__all__ = ["CelCppActivation", "CelCppEngine", "CelCppProgram"]

_ERROR_POSITION: Final = re.compile(r"ERROR: <input>:(-?\d+):(-?\d+): ([^\n]*)")
_STATUS_SUFFIX: Final = re.compile(r"\s*\[[A-Z_]+\]\s*$")
_NAMESPACES: Final[Mapping[str, frozenset[str]]] = {
    "strings": frozenset({"quote"}),
    "optional": frozenset({"of", "ofNonZeroValue", "none"}),
    **LIBRARY_NAMESPACES,
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


class _ConvertedMap(dict):  # type: ignore[type-arg]
    """A top-level map that :meth:`CelCppEngine.convert` produced (a plain ``dict`` to
    cel-expr-python)."""

    __slots__ = ()


# cel-expr-python takes plain Python values (and binds ints in [2**63, 2**64) as uint).
BUILDERS: Final = Builders(
    string=_same, integer=_same, unsigned=_same, double=_same, boolean=_same, data=_same,
    mapping=_same, sequence=_same, timestamp=_same, duration=_same,
)


# --- values out -------------------------------------------------------------------------


def _python(value: Any, cel: Any) -> Any:
    """A cel-expr-python value → plain Python, walked element by element.

    Never ``plain_value()``: on cel-expr-python 0.1.3 it kills the process (SIGSEGV) for a
    map holding an optional and raises ``SystemError`` for a list of them. An optional
    reports type ``ERROR`` and has no ``value()`` (TypeError): refused here, as are type
    values and errors inside a container.
    """
    kind = value.type()
    if kind == cel.Type.ERROR:
        try:
            inner = value.value()
        except TypeError:
            raise EvalError("a result holding an optional cannot leave the evaluation"
                            " (use .orValue(...) or {?'key': value})") from None
        raise EvalError(str(inner) or "evaluation error")
    if kind == cel.Type.TYPE or kind == cel.Type.UNKNOWN:
        raise EvalError(f"a result holding a value of type '{kind.name().lower()}' cannot leave the evaluation")
    plain = value.value()
    if isinstance(plain, dict):
        return {key: _python(item, cel) for key, item in plain.items()}
    if isinstance(plain, list):
        return [_python(item, cel) for item in plain]
    if isinstance(plain, bytearray):
        return bytes(plain)
    return plain


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

    __slots__ = ("_engine", "_expression", "cost", "kind", "limits", "references", "result", "source", "variables")

    def __init__(self, engine: CelCppEngine, source: str, expression: Any, references: frozenset[str],
                 variables: frozenset[str], result: type | None, limits: CelLimits, cost: float,
                 kind: str = "dyn") -> None:
        self._engine = engine
        self.result = result
        self.limits = limits
        self.cost = cost
        self.kind = kind
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
                return require_result(result.value(), self.result)
            return require_result(engine.to_python(result, kind), self.result)
        except EvalError:
            raise
        except RuntimeError as ex:  # a duplicate map key, the iteration budget, ...
            raise EvalError(_status_text(ex)) from None
        except Exception as ex:
            raise EvalError(f"evaluation failed: {type(ex).__name__}: {_status_text(ex)}") from None


def _library_declarations(cel: Any) -> list[Any]:
    """The gateway library (:mod:`.library`) as cel-cpp function declarations whose
    implementations are the shared Python functions (checked by cel-cpp's type checker;
    an exception inside one is an error value, so the rule fails closed)."""
    types = {BOOL: cel.Type.BOOL, INT: cel.Type.INT, STRING: cel.Type.STRING, BYTES: cel.Type.BYTES,
             LIST: cel.Type.List(cel.Type.DYN)}
    declarations = []
    for function in LIBRARY:
        overload_id = "gw_" + function.name.replace(".", "_") + "_" + "_".join(function.params)
        overload = cel.Overload(overload_id, types[function.result], [types[p] for p in function.params],
                                is_member=function.member, impl=_plain_result(function.impl))
        declarations.append(cel.FunctionDecl(function.name, [overload]))
    return declarations


def _plain_result(impl: Any) -> Any:
    def call(*args: Any) -> Any:
        return impl(*(bytes(a) if isinstance(a, bytearray) else a for a in args))

    return call


class CelCppEngine:
    """The cel-cpp engine; use :func:`wsgi_gateway.cel.get_engine`."""

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
            functions=_library_declarations(cel),
        )
        self._lock = threading.Lock()
        self.BOOL, self.ERROR = cel.Type.BOOL, cel.Type.ERROR
        self.STRING, self.INT, self.DOUBLE = cel.Type.STRING, cel.Type.INT, cel.Type.DOUBLE

    # -- compiling

    def compile(self, source: str, *, result: type | None = None, limits: CelLimits = DEFAULT_LIMITS,
                shapes: Shapes | None = None) -> CelCppProgram:
        wanted = result_kind(result)
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise CompileError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
        try:
            with self._lock:
                expression = self._env.compile(source)
        except Exception as ex:  # cel-expr-python reports parse and check errors as RuntimeError
            raise _compile_error(ex, source) from None
        return_name = expression.return_type().name()
        if "optional_type" in return_name:
            raise CompileError("the result may not be or hold an optional (cel-expr-python cannot convert it):"
                               " use .orValue(...), or {?'key': value} for an optional map entry",
                               *first_position(source))
        kind = _KIND_NAMES.get(return_name.split("<", 1)[0].upper(), return_name.lower())
        check_result(source, kind, wanted)
        try:
            tree = parse(without_optional_syntax(source))
        except CompileError:
            tree = None
        if tree is None:
            variables = scan_variables(source)
            references = variables
            try:  # backtick field names: the cost of the same expression with indexes
                cost_tree = parse(without_backticks(without_optional_syntax(source)))
            except CompileError:
                raise CompileError("the cost of this expression cannot be estimated (cel-python's grammar cannot"
                                   " read it): write it without backtick field names", 1, 1) from None
        else:
            analysis = analyse(tree, strict=False, namespaces=_NAMESPACES, shapes=shapes)
            references, variables = analysis.references, analysis.variables
            if kind == DYN:  # cel-cpp sees the variables as dyn maps; the shapes know more
                check_result(source, analysis.kind, wanted)
                kind = analysis.kind
            cost_tree = tree
        cost = check_cost(cost_tree, limits.cost_limit).cost
        return CelCppProgram(self, source, expression, references, variables, result, limits, cost, kind)

    # -- values

    def convert(self, value: object) -> object:
        """A Python value → the value cel-expr-python will bind (validated, normalised),
        or :class:`Rejected`; TypeError for types that are not JSON-like."""
        plain = convert(value, BUILDERS)
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
        return _python(result, self._cel)
