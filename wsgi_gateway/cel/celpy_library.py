"""The gateway library (:mod:`.library`) as cel-python functions.

cel-python dispatches ``x.f(a)`` as ``functions["f"](x, a)`` and resolves an identifier
that is not a variable in the function mapping, so a namespaced call such as
``sets.contains(a, b)`` arrives as ``functions["contains"](SETS, a, b)`` with the marker
bound to ``"sets"`` (the same device as ``strings.quote`` in :mod:`.celpy_strings`).
Arguments are checked here (cel-python has no type checker), converted to plain Python,
and results converted back; a :class:`~.library.LibraryError` is an evaluation error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from celpy.celtypes import BoolType, BytesType, IntType, StringType
from celpy.evaluation import CELEvalError

from .celpy_functions import NUM, eval_error, kind_of, no_overload, number
from .kinds import BOOL, BYTES, INT, LIST, STRING
from .library import LIBRARY, LibraryError, LibraryFunction

_RESULT: Final[Mapping[str, Callable[[Any], Any]]] = {
    BOOL: BoolType, INT: IntType, STRING: StringType, BYTES: BytesType,
}


class Namespace:
    """What a namespace identifier (``sets``, ``base64``) evaluates to."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __call__(self, *args: Any) -> CELEvalError:
        return no_overload(self.name, *args)


def _plain(value: Any) -> Any:
    """A cel-python value as plain Python (bools apart from ints, as CEL has them)."""
    kind = kind_of(value)
    if kind == "bool":
        return bool(value)
    if kind == NUM:
        return number(value)
    if kind == "list":
        return [_plain(v) for v in value]
    if kind == "map":
        return {_plain(k): _plain(v) for k, v in value.items()}
    if kind == "string":
        return str(value)
    if kind == "bytes":
        return bytes(value)
    if kind == "null_type":
        return None
    return value


def _kind_matches(value: Any, kind: str) -> bool:
    return kind_of(value) == ("string" if kind == STRING else "bytes" if kind == BYTES else
                              "list" if kind == LIST else kind)


def _adapter(function: LibraryFunction, namespace: Namespace | None) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if namespace is not None:
            if not args or args[0] is not namespace:
                return no_overload(function.name, *args)
            args = args[1:]
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        if len(args) != len(function.params) or not all(map(_kind_matches, args, function.params)):
            return no_overload(function.name, *args)
        try:
            return _RESULT[function.result](function.impl(*map(_plain, args)))
        except LibraryError as exc:
            return eval_error(str(exc), ValueError)

    return call


def _either(first: Callable[..., Any], fallback: Callable[..., Any], namespace: Namespace) -> Callable[..., Any]:
    """``contains``: ``sets.contains`` on the namespace, the string method otherwise."""
    def call(*args: Any) -> Any:
        return first(*args) if args and args[0] is namespace else fallback(*args)

    return call


def library_functions(existing: Mapping[str, Any]) -> dict[str, Any]:
    """The functions to add to cel-python's mapping (``existing``: the mapping so far,
    for names a namespace shares with a method, such as ``contains``)."""
    namespaces = {f.namespace: Namespace(f.namespace) for f in LIBRARY if f.namespace}
    out: dict[str, Any] = dict(namespaces)
    for function in LIBRARY:
        adapter = _adapter(function, namespaces.get(function.namespace))
        if function.short in existing:
            adapter = _either(adapter, existing[function.short], namespaces[function.namespace])
        out[function.short] = adapter
    return out
