"""The engine seam: errors, the Program/Engine protocols, the engine registry, and
:func:`lookup` of reference paths. See the package docstring for the conventions both
engines share."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from .bounds import DEFAULT_ENGINE, ENGINES

if TYPE_CHECKING:
    from .shapes import Shapes

# --- errors ---------------------------------------------------------------------------


class CompileError(Exception):
    """A rule that does not compile: syntax, an undeclared name, a provable type error.

    ``line`` and ``column`` are 1-based, within the expression text.
    """

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"CompileError({self.message!r}, line={self.line}, column={self.column})"


class EvalError(Exception):
    """Any failure while evaluating: missing key, type mismatch, division by zero, an
    error value, the cost bound, an exception inside a function."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class EngineUnavailable(ImportError):
    """The chosen engine's package is not installed."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """What :meth:`Engine.convert` returns for a value it will not bind (too large, or a
    timestamp inside a map or list); a rule that reads it fails with :class:`EvalError`."""

    reason: str


# --- the interface --------------------------------------------------------------------


@runtime_checkable
class Program(Protocol):
    """One compiled rule."""

    source: str
    #: The variable paths the expression reads (see the module docstring).
    references: frozenset[str]
    #: The top-level variables the expression reads (the roots of ``references``).
    variables: frozenset[str]
    #: The static kind of the result (``bool``, ``string``, ``timestamp`` ... ``dyn``).
    kind: str

    def evaluate(self, activation: Mapping[str, object]) -> object:
        """A plain Python value; raises :class:`EvalError` and nothing else."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A CEL implementation."""

    name: str

    def compile(self, source: str, *, result: type | None = None, shapes: "Shapes | None" = None) -> Program:
        """Compile one rule; raises :class:`CompileError`. ``shapes``: the declared
        fields and kinds of the variables (:mod:`.shapes`), checked on both engines."""
        ...

    def convert(self, value: object) -> object:
        """A Python value (JSON-like, or ``datetime``) → the engine's own value."""
        ...

    def activation(self, values: Mapping[str, object]) -> Mapping[str, object]:
        """The converted variables of one request, as a mapping to pass to every
        :meth:`Program.evaluate` of that request (cel-cpp caches its native activations
        in it; a plain ``dict`` works too, only slower on cel-cpp)."""
        ...


_ENGINE_CLASSES: Final[Mapping[str, tuple[str, str]]] = {
    "cel-python": ("wsgi_gateway.cel.celpy_engine", "CelPythonEngine"),
    "cel-cpp": ("wsgi_gateway.cel.celcpp_engine", "CelCppEngine"),
}
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """The engine called ``name`` (``"cel-python"`` or ``"cel-cpp"``), created once.

    Raises :class:`ValueError` for an unknown name and :class:`EngineUnavailable` when
    ``cel-cpp`` is chosen but cel-expr-python is not installed.
    """
    engine = _engines.get(name)
    if engine is not None:
        return engine
    if name not in _ENGINE_CLASSES:
        raise ValueError(f"unknown CEL engine {name!r}; choose one of {', '.join(ENGINES)}")
    with _engines_lock:
        engine = _engines.get(name)
        if engine is None:
            module_name, class_name = _ENGINE_CLASSES[name]
            engine = getattr(importlib.import_module(module_name), class_name)()
            _engines[name] = engine
    return engine


# --- references -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unresolved:
    """What :func:`lookup` returns when a path does not lead to a value: the key at
    ``depth`` (0-based segment index) is missing, or the value before it is not a map."""

    depth: int
    reason: str  # "missing" | "not a map"


def lookup(values: Mapping[str, object], path: str) -> object:
    """The value at a :attr:`Program.references` path, or an :class:`Unresolved`.

    Works on plain values and on converted ones (both engines' maps are ``Mapping``\\ s).
    Two activations with equal values at every reference path give the same result.
    """
    current: object = values
    for depth, segment in enumerate(path.split(".")):
        if isinstance(current, Rejected):
            return current
        if not isinstance(current, Mapping):
            return Unresolved(depth, "not a map")
        try:
            current = current[segment]
        except (KeyError, TypeError):
            return Unresolved(depth, "missing")
    return current




_CEL_TYPE_NAMES: Final[Mapping[type, str]] = {
    bool: "bool", int: "int", float: "double", str: "string", bytes: "bytes", list: "list", dict: "map",
    type(None): "null",
}


def require_result(value: object, result: type | None) -> object:
    """``value`` when it is of the ``result=`` type a program was compiled for; otherwise
    :class:`EvalError` (a condition that is not a bool is an error, on both engines, so
    that every section fails closed the same way)."""
    if result is None or type(value) is result:
        return value
    got = _CEL_TYPE_NAMES.get(type(value), type(value).__name__)
    want = _CEL_TYPE_NAMES.get(result, result.__name__)
    raise EvalError(f"the expression must give a {want}, but it gave a {got}")


def iter_names(values: Mapping[str, object], names: frozenset[str]) -> Iterator[tuple[str, object]]:
    """The activation's values for ``names``; EvalError for a missing or rejected one."""
    for name in names:
        try:
            value = values[name]
        except KeyError:
            raise EvalError(f"no value for variable '{name}'") from None
        if isinstance(value, Rejected):
            raise EvalError(f"variable '{name}' cannot be used: {value.reason}")
        yield name, value
