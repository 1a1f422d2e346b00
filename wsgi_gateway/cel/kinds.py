"""Static kinds: what the analysis knows about a sub-expression's type without data.

Both engines parse every rule with cel-python's lark grammar; :mod:`.analysis` walks that
tree with these tables to find references, enforce the shared cost rules and (strict
mode, for cel-python which has no type checker) refuse visible type errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .api import CompileError
from .bounds import MAP_VARIABLES
from .parse import first_position

BOOL, INT, UINT, DOUBLE, STRING, BYTES, NULL = "bool", "int", "uint", "double", "string", "bytes", "null_type"
LIST, MAP, TIMESTAMP, DURATION, TYPE, DYN = "list", "map", "timestamp", "duration", "type", "dyn"

#: Static kinds of the variables.
VARIABLE_KINDS: Final[Mapping[str, str]] = {
    **{name: MAP for name in MAP_VARIABLES},
    "api": STRING,
    "now": TIMESTAMP,
}
#: Type names usable as values (``type(x) == int``).
TYPE_IDENTIFIERS: Final = frozenset({"bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type"})
#: The standard macros with one iteration variable.
MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
PREDICATE_MACROS: Final = frozenset({"all", "exists", "exists_one", "filter"})

# What functions return, where that is known without knowing the arguments.
RETURN_KINDS: Final[Mapping[str, str]] = {
    "startsWith": BOOL, "endsWith": BOOL, "matches": BOOL, "contains": BOOL,
    "size": INT, "indexOf": INT, "lastIndexOf": INT,
    "getDate": INT, "getDayOfMonth": INT, "getDayOfWeek": INT, "getDayOfYear": INT,
    "getFullYear": INT, "getMonth": INT, "getHours": INT, "getMilliseconds": INT,
    "getMinutes": INT, "getSeconds": INT,
    "charAt": STRING, "lowerAscii": STRING, "upperAscii": STRING, "replace": STRING,
    "substring": STRING, "trim": STRING, "reverse": STRING, "format": STRING,
    "join": STRING, "quote": STRING, "split": LIST,
    "bool": BOOL, "int": INT, "uint": UINT, "double": DOUBLE, "string": STRING,
    "bytes": BYTES, "timestamp": TIMESTAMP, "duration": DURATION, "type": TYPE,
}  # fmt: skip
NUMERIC: Final = frozenset({INT, UINT, DOUBLE})
ORDERED: Final = frozenset({INT, UINT, DOUBLE, STRING, BYTES, BOOL, TIMESTAMP, DURATION})
LITERAL_KINDS: Final[Mapping[str, str]] = {
    "INT_LIT": INT, "UINT_LIT": UINT, "FLOAT_LIT": DOUBLE, "STRING_LIT": STRING,
    "MLSTRING_LIT": STRING, "BYTES_LIT": BYTES, "BOOL_LIT": BOOL, "NULL_LIT": NULL,
}  # fmt: skip
RELATION_OPS: Final[Mapping[str, str]] = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
}  # fmt: skip
ARITHMETIC_OPS: Final[Mapping[str, str]] = {
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}  # fmt: skip
# Nodes with one child that only pass a value through.
PASS_THROUGH: Final = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary", "paren_expr"}
)


_RESULT_KINDS: Final[Mapping[type, str]] = {
    bool: BOOL, int: INT, float: DOUBLE, str: STRING, bytes: BYTES, list: LIST, dict: MAP,
}  # fmt: skip


def result_kind(result: type | None) -> str | None:
    """The static kind a ``result=`` type asks for."""
    if result is None:
        return None
    try:
        return _RESULT_KINDS[result]
    except KeyError:
        raise TypeError(f"unsupported result type {result!r}") from None


def check_result(source: str, kind: str, wanted: str | None) -> None:
    """CompileError when an expression of static kind ``kind`` cannot produce ``wanted``."""
    if wanted is None or kind in (wanted, DYN):
        return
    line, column = first_position(source)
    raise CompileError(f"expression must return {wanted}, but it returns {kind}", line, column)


