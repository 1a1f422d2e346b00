"""The CEL engine seam: one small interface, two engines, the same rules.

Rules compile once at load time and evaluate through :class:`Engine` and
:class:`Program`::

    engine = get_engine("cel-python")            # or "cel-cpp"; engines are singletons
    program = engine.compile("'admin' in token.scopes", result=bool)   # CompileError
    claims = engine.convert(verified_claims)     # once per token, cache it with the token
    activation = {"claims": claims, "token": token, "request": engine.convert(req), ...}
    program.evaluate(activation)                 # a plain Python value, or EvalError

``cel-python`` (:mod:`wsgi_gateway.policy.engine_celpy`) is the default and always
installed; ``cel-cpp`` (:mod:`wsgi_gateway.policy.engine_celcpp`) is Google's C++ CEL
through ``cel-expr-python``, the optional extra ``fast-cel``. Only :data:`VARIABLES` may
be used by a rule; anything else is a compile error on both engines.

Calling conventions that both engines share
-------------------------------------------
* :meth:`Program.evaluate` reads only the variables the expression uses
  (:attr:`Program.variables`); a missing one, or one of the wrong kind (``claims``,
  ``token``, ``identity``, ``request``, ``session`` must be maps, ``api`` a string,
  ``now`` a timestamp), is an :class:`EvalError`.
* :meth:`Engine.convert` takes JSON-like Python values (``dict``, ``list``/``tuple``,
  ``str``, ``int``, ``float``, ``bool``, ``None``, ``bytes``) and, at the top level only,
  ``datetime`` (for ``now``; a naive one is taken as UTC) and ``timedelta``. Any other
  Python type is a :class:`TypeError` (a programming error). A value over the size limits
  below, or a timestamp/duration *inside* a map or list (cel-expr-python 0.1.3 cannot bind
  one), is not an exception: ``convert`` returns a :class:`Rejected` marker, and every rule
  that reads that variable fails with :class:`EvalError` (fail closed) while rules that
  do not read it still work.
* Results come back as plain Python: ``bool``, ``int`` (also for ``uint``), ``float``,
  ``str``, ``bytes``, ``None``, ``list``, ``dict``, ``datetime`` (UTC) and ``timedelta``.
  A result that is (or contains) an error, a type value or an optional is an
  :class:`EvalError`; ``evaluate`` never returns an error value and never raises
  anything but :class:`EvalError`. Whether a result counts as "allow" (``is True``) is
  the caller's decision.
* :attr:`Program.references` lists the variable paths an expression reads, as far as
  they are statically known (``request.method``, ``request.headers.x-foo`` for
  ``request.headers['x-foo']``, a bare ``claims`` when the whole variable or a dynamic
  index is used). A path segment never contains ``.``, ``[`` or ``]``: an index with
  such a key stops the path at its container. :func:`lookup` resolves a path against the
  values, so results can be memoised on exactly these inputs.

Numbers
-------
JSON numbers keep the type JSON gave them: ``1700000000`` is an ``int`` and
``1700000000.0`` a ``double`` (``convert`` never turns an integral float into an int).
An integer in ``[2**63, 2**64)`` becomes a ``uint`` (what cel-expr-python does by
itself); one outside ``[-2**63, 2**64)`` becomes a ``double`` (the JSON reading of a
number; CEL has no bigger integer).

Mixed numbers compare the way cel-spec says and cel-cpp does at run time: ``==``, ``!=``,
``<``, ``<=``, ``>``, ``>=`` and ``in`` compare ``int``, ``uint`` and ``double`` by
value, so ``claims.iat == 1700000000`` and ``1700000000 < claims.iat`` are ``true`` for
a double ``iat`` on both engines; comparing values of different kinds for equality is
``false`` (``claims.sub == 1``, ``'a' in ['b', 1]``), not an error. The cel-python
engine replaces cel-python's operators to get this (plain cel-python errors on
``dyn(1) == 1.0``, on ``1700000000 < claims.iat`` with a double ``iat`` and on
``'a' in ['b', 1]``).

The trap that remains: **arithmetic never mixes number types** (CEL has no implicit
conversions): ``claims.iat + 60`` is an evaluation error when ``iat`` is a double, on
both engines. Write ``int(claims.iat) + 60`` or ``claims.iat + 60.0``. When both sides
are known at compile time (``1 == 1.0``, ``1 + 1.0``, ``1u == 1``), the rule does not
compile on either engine; use ``dyn(1) == 1.0`` if that is really meant.

Cost bounds
-----------
A rule must not stall a worker. Shared by both engines (checked when compiling):

* :data:`MAX_EXPRESSION_LENGTH` characters and :data:`MAX_AST_DEPTH` levels of syntax
  tree (measured: 23 levels of parentheses, 237 operands chained with ``&&``, 119 with
  ``+``; cel-cpp's own parser stops earlier, at 30 operands chained with ``+``);
* comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) nested at
  most :data:`MAX_COMPREHENSION_NESTING` deep;
* a *growing* ``replace()`` (one that can make a string longer: an empty or non-literal
  search string, or a non-literal or longer replacement) may not be applied to a string
  that may already be large (the result of ``join()``, ``format()`` or another growing
  ``replace()``), nor sit inside a comprehension body with a non-literal replacement:
  ``s.replace('', s).replace('', s)`` over an 8 KiB string would need 512 GB.

And on the data (in :meth:`Engine.convert`): lists of at most :data:`MAX_LIST_LENGTH`
elements, maps of at most :data:`MAX_MAP_SIZE` entries, strings of at most
:data:`MAX_STRING_LENGTH` code points, bytes of at most :data:`MAX_BYTES_LENGTH`, at most
:data:`MAX_VALUE_DEPTH` levels of nesting and :data:`MAX_VALUE_NODES` values in one
variable. Over a limit, the variable is :class:`Rejected` (evaluation errors), never
truncated (a truncated group list could change a decision).

At run time, an evaluation may take fewer than :data:`MAX_ITERATIONS` comprehension steps
in all: cel-cpp enforces this itself (a budget fixed in cel-expr-python 0.1.3, measured:
9,999 steps pass, 10,000 fail), the cel-python engine counts the steps of its own macro
implementation to the same number and also stops at a wall-clock deadline. Details in each
engine's module.

Known differences between engines
---------------------------------
What could not be made the same (the engines agree on every case of
``tests/policy/test_engines.py``):

1. **Syntax only cel-cpp has**: optional syntax (``claims.?email``,
   ``m[?'k']``, ``optional.of(x)``, ``.orValue()``), backtick field names
   (``m.`content-type```) and ``42.charAt(1)`` without parentheses. cel-python does not
   parse them: a rule using them compiles only on cel-cpp. Use ``has(claims.email) ?
   claims.email : ''``, ``m['content-type']`` and ``(42)``.
2. **Compile-time type checking**: cel-cpp's checker knows every overload, so
   ``claims.sub.startsWith(1)``, ``[1] == ['a']``, ``[1] + ['a']`` or ``{'a': 1}[1]`` are compile errors
   there; the cel-python engine checks names, the kinds of literals and operators and
   obvious non-bool results, but such cases compile and fail (or return ``false``) at
   evaluation. Error messages and the exact position of a compile error (e.g. the end
   of the input vs the last token for a parse error; ``clams.x`` is reported at the dot
   by cel-cpp, at ``clams`` by cel-python) differ.
3. **Error messages** of evaluation errors differ (``no such key`` vs ``Key not found in
   map``); match :class:`EvalError`, not its text.
4. **Run-time bounds**: cel-cpp has no string-size limit inside an evaluation (the static
   ``replace()`` rule above is all it gets) and no deadline; the cel-python engine also
   refuses to build a string over :data:`MAX_RESULT_STRING_LENGTH` in ``replace``,
   ``join`` and ``format``, and gives up after its deadline (a slow host can make a rule
   that is fine on cel-cpp fail on cel-python, never the other way round).
5. **Timestamps** cross into and out of Python with microseconds (``datetime``) on both,
   but cel-cpp keeps nanoseconds for values it computes itself:
   ``timestamp('2024-01-01T00:00:00.123456789Z') == timestamp('...788Z')`` is ``false``
   on cel-cpp, ``true`` on cel-python.
6. **Message construction**: ``google.protobuf.Timestamp{}`` compiles on cel-cpp (the
   well-known types are built in), not on cel-python (refused as message construction).
7. **Nesting**: cel-cpp's parser refuses more than about 30 operands chained with an
   arithmetic operator (``a + b + ...``); cel-python accepts up to :data:`MAX_AST_DEPTH`.
8. **Logging**: cel-cpp's RE2 writes a line to stderr for an invalid ``matches()``
   pattern (the evaluation still fails closed with :class:`EvalError`).

Made the same (so not differences): ``&&``/``||`` short-circuit on both; ``all``/``exists``
stop at the first decisive element on both, so both count the same comprehension steps
(``exists_one``, ``map`` and ``filter`` visit every element on both); mixed-number
comparisons and mixed-type equality (see Numbers); ``has()`` of a missing parent is an
error on both; a negative list index is an error on both; ``timestamp(int)`` takes epoch
seconds on both; ``size(null)``, ``'a' * 3`` and ``1.5 + 1`` are errors on both; results
are plain Python on both, and ``type()`` or ``optional`` values cannot leave an
evaluation on either.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, Protocol, runtime_checkable

import celpy
import lark
from celpy.celparser import CELParseError
from celpy.evaluation import celstr

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "INSTALL_HINT",
    "MAP_VARIABLES",
    "MAX_AST_DEPTH",
    "MAX_BYTES_LENGTH",
    "MAX_COMPREHENSION_NESTING",
    "MAX_EXPRESSION_LENGTH",
    "MAX_ITERATIONS",
    "MAX_LIST_LENGTH",
    "MAX_MAP_SIZE",
    "MAX_RESULT_STRING_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_VALUE_DEPTH",
    "MAX_VALUE_NODES",
    "VARIABLES",
    "CompileError",
    "Engine",
    "EngineUnavailable",
    "EvalError",
    "Program",
    "Rejected",
    "Unresolved",
    "get_engine",
    "lookup",
]

#: The only top-level names a rule may use.
VARIABLES: Final = ("claims", "token", "identity", "request", "session", "api", "now", "limits",
                     "cert")
#: The variables that are maps (``map(string, dyn)``); ``api`` is a string, ``now`` a timestamp.
MAP_VARIABLES: Final = frozenset({"claims", "token", "identity", "request", "session", "limits",
                                  "cert"})

# --- limits (shared by both engines) --------------------------------------------------

#: Longest rule source, in characters.
MAX_EXPRESSION_LENGTH: Final = 8192
#: Deepest syntax tree (cel-python's lark tree: about 10 levels per parenthesis).
MAX_AST_DEPTH: Final = 250
#: Deepest nesting of comprehensions: ``a.all(x, b.exists(y, ...))`` is 2.
MAX_COMPREHENSION_NESTING: Final = 2
#: Comprehension steps per evaluation; reaching this many is an error (cel-cpp's budget).
MAX_ITERATIONS: Final = 10_000
#: Longest list :meth:`Engine.convert` accepts.
MAX_LIST_LENGTH: Final = 1000
#: Largest map :meth:`Engine.convert` accepts.
MAX_MAP_SIZE: Final = 1000
#: Longest string :meth:`Engine.convert` accepts, in code points.
MAX_STRING_LENGTH: Final = 8192
#: Longest bytes value :meth:`Engine.convert` accepts.
MAX_BYTES_LENGTH: Final = 8192
#: Deepest nesting of maps and lists in one converted value.
MAX_VALUE_DEPTH: Final = 32
#: Most values (scalars, lists and maps) in one converted value.
MAX_VALUE_NODES: Final = 10_000
#: Longest string ``replace``, ``join`` and ``format`` may build (cel-python engine only).
MAX_RESULT_STRING_LENGTH: Final = 1 << 20

DEFAULT_ENGINE: Final = "cel-python"
ENGINES: Final = ("cel-python", "cel-cpp")
INSTALL_HINT: Final = "pip install 'wsgi-gateway[fast-cel]'"


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

    def evaluate(self, activation: Mapping[str, object]) -> object:
        """A plain Python value; raises :class:`EvalError` and nothing else."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A CEL implementation."""

    name: str

    def compile(self, source: str, *, result: type | None = None) -> Program:
        """Compile one rule; raises :class:`CompileError`."""
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
    "cel-python": ("wsgi_gateway.policy.engine_celpy", "CelPythonEngine"),
    "cel-cpp": ("wsgi_gateway.policy.engine_celcpp", "CelCppEngine"),
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


# --- static analysis (shared) ----------------------------------------------------------
#
# Both engines parse every rule with cel-python's lark grammar (the one cel-python also
# evaluates). The walk below finds the references, enforces the shared cost rules and,
# in strict mode (cel-python, which has no type checker), refuses undeclared names,
# unknown functions and type errors that are visible without knowing the data.

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
_PREDICATE_MACROS: Final = frozenset({"all", "exists", "exists_one", "filter"})

# What functions return, where that is known without knowing the arguments.
_RETURN_KINDS: Final[Mapping[str, str]] = {
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
_NUMERIC: Final = frozenset({INT, UINT, DOUBLE})
_ORDERED: Final = frozenset({INT, UINT, DOUBLE, STRING, BYTES, BOOL, TIMESTAMP, DURATION})
_LITERAL_KINDS: Final[Mapping[str, str]] = {
    "INT_LIT": INT, "UINT_LIT": UINT, "FLOAT_LIT": DOUBLE, "STRING_LIT": STRING,
    "MLSTRING_LIT": STRING, "BYTES_LIT": BYTES, "BOOL_LIT": BOOL, "NULL_LIT": NULL,
}  # fmt: skip
_RELATION_OPS: Final[Mapping[str, str]] = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
}  # fmt: skip
_ARITHMETIC_OPS: Final[Mapping[str, str]] = {
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}  # fmt: skip
# Nodes with one child that only pass a value through.
_PASS_THROUGH: Final = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary", "paren_expr"}
)
_SIMPLE_KEY: Final = re.compile(r"^[^.\[\]]+$")
_GROWTH_FUNCTIONS: Final = frozenset({"join", "format"})

_parser_lock = threading.Lock()
_environment: celpy.Environment | None = None


def _cel_environment() -> celpy.Environment:
    """The one ``celpy.Environment`` used to parse rules (its parser keeps state)."""
    global _environment
    if _environment is None:
        with _parser_lock:
            if _environment is None:
                _environment = celpy.Environment()
    return _environment


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def first_position(source: str) -> tuple[int, int]:
    """Where the expression starts (its first non-blank character)."""
    stripped = len(source) - len(source.lstrip())
    return _position(source, min(stripped, max(len(source) - 1, 0)))


def parse(source: str) -> lark.Tree:
    """Parse with cel-python's grammar; raises :class:`CompileError` with a position."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CompileError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    environment = _cel_environment()
    try:
        with _parser_lock:  # CELParser.parse keeps the text on the instance
            return environment.compile(source)
    except CELParseError as ex:
        line, column = ex.line or 1, ex.column or 1
        raise CompileError(f"syntax error: {_parse_reason(ex.__context__, source)}", line, max(column, 1)) from None
    except (RecursionError, lark.exceptions.LarkError) as ex:
        raise CompileError(f"syntax error: {type(ex).__name__}") from None


def _parse_reason(error: BaseException | None, source: str) -> str:
    if isinstance(error, lark.exceptions.UnexpectedToken):
        if error.token.type == "$END":
            return "unexpected end of expression"
        return f"unexpected {error.token.value!r}"
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character {error.char!r}"
    return "invalid expression"


@dataclass
class Analysis:
    """What the static walk found out about one expression."""

    kind: str
    references: frozenset[str]
    variables: frozenset[str]


@dataclass
class _Walk:
    strict: bool
    functions: frozenset[str]
    namespaces: Mapping[str, frozenset[str]]
    paths: set[tuple[str, ...]] = field(default_factory=set)

    # -- helpers

    def fail(self, message: str, node: lark.Tree | lark.Token | None) -> NoReturn:
        line = column = 1
        if isinstance(node, lark.Token):
            line, column = node.line or 1, node.column or 1
        elif isinstance(node, lark.Tree) and not node.meta.empty:
            line, column = node.meta.line, node.meta.column
        raise CompileError(message, line, column)

    def check(self, condition: bool, message: str, node: lark.Tree | lark.Token | None) -> None:
        if self.strict and not condition:
            self.fail(message, node)

    def check_operator(self, condition: bool, message: str, op_node: lark.Tree) -> None:
        """Like :meth:`check`, reporting the position of the operator (as cel-cpp does)."""
        if self.strict and not condition:
            meta = op_node.meta
            text = _OPERATOR_TEXT.get(op_node.data)
            if text is None or meta.empty:
                self.fail(message, op_node)
            raise CompileError(message, meta.end_line, max(meta.end_column - len(text), 1))

    # -- the walk; each method returns the static kind of its node

    def visit(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return getattr(self, "_" + node.data)(node, scope, depth)

    def _expr(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope, depth)
        cond, left, right = (self.visit(child, scope, depth) for child in node.children)
        self.check(cond in (BOOL, DYN) and _unifies(left, right),
                   f"found no matching overload for '_?_:_' applied to '({cond}, {left}, {right})'", node)  # fmt: skip
        return left if left == right else DYN

    def _logic(self, op: str) -> Any:
        def visit(node: lark.Tree, scope: frozenset[str], depth: int) -> str:
            if len(node.children) == 1:
                return self.visit(node.children[0], scope, depth)
            left, right = (self.visit(child, scope, depth) for child in node.children)
            self.check(left in (BOOL, DYN) and right in (BOOL, DYN),
                       f"found no matching overload for '{op}' applied to '({left}, {right})'", node)  # fmt: skip
            return BOOL

        return visit

    def __post_init__(self) -> None:
        self._conditionalor = self._logic("_||_")
        self._conditionaland = self._logic("_&&_")

    def _relation(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope, depth)
        op_node, right_node = node.children
        left = self.visit(op_node.children[0], scope, depth)
        right = self.visit(right_node, scope, depth)
        op = _RELATION_OPS[op_node.data]
        message = f"found no matching overload for '{op}' applied to '({left}, {right})'"
        if op == "@in":
            self.check_operator(right in (LIST, MAP, DYN), message, op_node)
        elif op in ("_==_", "_!=_"):
            self.check_operator(_unifies(left, right), message, op_node)
        else:
            known = [kind for kind in (left, right) if kind != DYN]
            self.check_operator(all(kind in _ORDERED for kind in known) and len(set(known)) <= 1, message, op_node)
        return BOOL

    def _arithmetic(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope, depth)
        op_node, right_node = node.children
        left = self.visit(op_node.children[0], scope, depth)
        right = self.visit(right_node, scope, depth)
        op = _ARITHMETIC_OPS[op_node.data]
        kind = _arithmetic_kind(op, left, right)
        self.check_operator(kind is not None, f"found no matching overload for '{op}' applied to '({left}, {right})'", op_node)
        return kind or DYN

    _addition = _multiplication = _arithmetic

    def _unary(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope, depth)
        op_node, operand_node = node.children
        operand = self.visit(operand_node, scope, depth)
        if op_node.data == "unary_not":
            self.check(operand in (BOOL, DYN), f"found no matching overload for '!_' applied to '({operand})'", node)
            return BOOL
        self.check(operand in (INT, DOUBLE, DYN), f"found no matching overload for '-_' applied to '({operand})'", node)
        return operand

    def _member(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self.visit(node.children[0], scope, depth)

    def _record(self, node: lark.Tree, scope: frozenset[str]) -> str | None:
        """Record the path of a select/index chain rooted at a variable; its kind, or None."""
        path = _path(node, scope)
        if path is None:
            return None
        self.paths.add(path)
        return VARIABLE_KINDS[path[0]] if len(path) == 1 else DYN

    def _member_dot(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        kind = self._record(node, scope)
        if kind is not None:
            return kind
        operand = self.visit(node.children[0], scope, depth)
        self.check(operand in (MAP, DYN), f"type '{operand}' does not support field selection", node.children[1])
        return DYN

    def _member_index(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        kind = self._record(node, scope)
        if kind is not None:
            return kind
        operand = self.visit(node.children[0], scope, depth)
        index = self.visit(node.children[1], scope, depth)
        self.check(operand in (LIST, MAP, DYN), f"found no matching overload for '_[_]' applied to '({operand}, {index})'", node)
        return DYN

    def _member_object(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        self.check(False, "message construction is not supported", node)
        for child in node.children:
            if isinstance(child, lark.Tree):
                self._any(child, scope, depth)
        return DYN

    def _fieldinits(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            if isinstance(child, lark.Tree):
                self.visit(child, scope, depth)
        return DYN

    def _any(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self.visit(node, scope, depth)

    def _member_dot_arg(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        receiver, name_token = node.children[0], node.children[1]
        args: list[lark.Tree] = list(node.children[2].children) if len(node.children) == 3 else []
        name = name_token.value
        namespace = _ident_name(receiver)
        if namespace in self.namespaces and namespace not in scope and namespace not in VARIABLE_KINDS:
            self.check(name in self.namespaces[namespace], f"undeclared reference to '{namespace}.{name}'", name_token)
            for arg in args:
                self.visit(arg, scope, depth)
            return _RETURN_KINDS.get(name, DYN)
        if name in MACROS and len(args) >= 2 and _ident_name(args[0]) is not None:
            return self._comprehension(node, name, receiver, args, scope, depth)
        target = self.visit(receiver, scope, depth)
        self.check(name in self.functions, f"undeclared reference to '{name}'", name_token)
        for arg in args:
            self.visit(arg, scope, depth)
        if name == "replace" and _growing_replace(args):
            if _may_be_large(receiver):
                self.fail(
                    "replace() that can lengthen a string may not be applied to the result of join(), format()"
                    " or another such replace(): the string could grow without bound",
                    name_token,
                )
            if depth > 0 and len(args) >= 2 and _string_literal(args[1]) is None:
                self.fail(
                    "replace() with a non-literal replacement may not be used inside a comprehension:"
                    " the strings it builds could grow without bound",
                    name_token,
                )
        if name in ("size",) and target not in (STRING, BYTES, LIST, MAP, DYN):
            self.check(False, f"found no matching overload for 'size' applied to '({target})'", name_token)
        return _RETURN_KINDS.get(name, DYN)

    def _comprehension(
        self, node: lark.Tree, name: str, receiver: lark.Tree, args: list[lark.Tree],
        scope: frozenset[str], depth: int,
    ) -> str:  # fmt: skip
        target = self.visit(receiver, scope, depth)
        if depth + 1 > MAX_COMPREHENSION_NESTING:
            self.fail(
                f"comprehensions may be nested at most {MAX_COMPREHENSION_NESTING} deep"
                " (the cost of an evaluation grows with the product of the list sizes)",
                node.children[1],
            )
        arity = 3 if name == "map" else 2
        two_variables = len(args) == arity + 1 and _ident_name(args[1]) is not None
        self.check(len(args) == arity or (name == "map" and len(args) == 2),
                   "two-variable comprehensions are not supported" if two_variables
                   else f"wrong number of arguments to {name}()", node.children[1])  # fmt: skip
        self.check(target in (LIST, MAP, DYN),
                   f"expression of type '{target}' cannot be the range of a comprehension", receiver)  # fmt: skip
        bound = {_ident_name(args[0])}
        body = args[1:]
        if two_variables:
            bound.add(_ident_name(args[1]))
            body = args[2:]
        inner = scope | frozenset(b for b in bound if b)
        kinds = [self.visit(arg, inner, depth + 1) for arg in body]
        if name in _PREDICATE_MACROS or (name == "map" and len(body) == 2):
            self.check(kinds[0] in (BOOL, DYN), f"the condition of {name}() must be a bool, not {kinds[0]}", body[0])
        return LIST if name in ("map", "filter") else BOOL

    def _primary(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self.visit(node.children[0], scope, depth)

    def _literal(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        token = node.children[0]
        if token.type in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            bad = _bad_escape(token.value)
            if bad is not None:
                self.check(False, f"invalid escape sequence {bad!r} in a string literal", token)
        return _LITERAL_KINDS.get(token.type, DYN)

    def _paren_expr(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self.visit(node.children[0], scope, depth)

    def _list_lit(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            self.visit(child, scope, depth)
        return LIST

    def _map_lit(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            self.visit(child, scope, depth)
        return MAP

    def _exprlist(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            self.visit(child, scope, depth)
        return LIST

    _mapinits = _exprlist

    def _ident(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        token = node.children[0]
        name = token.value
        if name in scope:
            return DYN
        if name in VARIABLE_KINDS:
            self.paths.add((name,))
            return VARIABLE_KINDS[name]
        if name in TYPE_IDENTIFIERS:
            return TYPE
        self.check(False, f"undeclared reference to '{name}'", token)
        return DYN

    def _dot_ident(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self._ident(node, frozenset(), depth)

    def _ident_arg(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        token = node.children[0]
        name = token.value
        args: list[lark.Tree] = list(node.children[1].children) if len(node.children) == 2 else []
        if name == "has":
            self.check(len(args) == 1 and _select(args[0]) is not None, "has() argument must be a field selection", token)
            for arg in args:
                self.visit(arg, scope, depth)
            return BOOL
        kinds = [self.visit(arg, scope, depth) for arg in args]
        if name == "dyn":
            self.check(len(args) == 1, "dyn() takes one argument", token)
            return DYN
        self.check(name in self.functions and name not in MACROS, f"undeclared reference to '{name}'", token)
        if name == "size" and kinds:
            self.check(kinds[0] in (STRING, BYTES, LIST, MAP, DYN),
                       f"found no matching overload for 'size' applied to '({kinds[0]})'", token)  # fmt: skip
        return _RETURN_KINDS.get(name, DYN)

    _dot_ident_arg = _ident_arg


_OPERATOR_TEXT: Final[Mapping[str, str]] = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
    "relation_eq": "==", "relation_ne": "!=", "relation_in": "in",
    "addition_add": "+", "addition_sub": "-",
    "multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%",
}  # fmt: skip
_VALID_ESCAPE: Final = re.compile(r"\\(?:[abfnrtv\"'`?\\]|[0-3][0-7]{2}|[xX][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _bad_escape(text: str) -> str | None:
    """The first escape sequence CEL does not define in the text of a string literal
    (raw strings have none), or None. cel-python's lexer accepts any ``\\c``; cel-cpp
    does not."""
    prefix = text[: len(text) - len(text.lstrip("rRbB"))]
    if "r" in prefix.lower():
        return None
    position = 0
    while (start := text.find("\\", position)) >= 0:
        match = _VALID_ESCAPE.match(text, start)
        if match is None:
            return text[start : start + 2]
        position = match.end()
    return None


def _unifies(left: str, right: str) -> bool:
    """Whether two static kinds may be compared for equality (or be the two branches
    of ``?:``): the same kind, or one not known."""
    return left == right or DYN in (left, right)


def _arithmetic_kind(op: str, left: str, right: str) -> str | None:
    """The kind of ``left op right``, DYN when unknown, None when it is a type error."""
    if DYN in (left, right):
        known = right if left == DYN else left
        if op == "_+_" and known in (_NUMERIC | {STRING, BYTES, LIST}):
            return known
        if op in ("_*_", "_/_", "_%_", "_-_") and known in _NUMERIC:
            return known
        return DYN
    if op == "_+_":
        if left == right and left in (_NUMERIC | {STRING, BYTES, LIST, DURATION}):
            return left
        if {left, right} == {TIMESTAMP, DURATION}:
            return TIMESTAMP
        return None
    if op == "_-_":
        if left == right and left in (_NUMERIC | {DURATION}):
            return left
        if left == TIMESTAMP and right in (TIMESTAMP, DURATION):
            return DURATION if right == TIMESTAMP else TIMESTAMP
        return None
    if op == "_%_":
        return left if left == right and left in (INT, UINT) else None
    return left if left == right and left in _NUMERIC else None


def _descend(node: Any) -> Any:
    """Skip the pass-through nodes of a sub-expression."""
    while isinstance(node, lark.Tree) and node.data in _PASS_THROUGH and len(node.children) == 1:
        node = node.children[0]
    return node


def _ident_name(node: Any) -> str | None:
    """The name if the sub-expression is a bare identifier."""
    node = _descend(node)
    if isinstance(node, lark.Tree) and node.data == "ident":
        return node.children[0].value
    return None


def _select(node: Any) -> lark.Tree | None:
    node = _descend(node)
    return node if isinstance(node, lark.Tree) and node.data == "member_dot" else None


def _string_literal(node: Any) -> str | None:
    node = _descend(node)
    if isinstance(node, lark.Tree) and node.data == "literal":
        token = node.children[0]
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            try:
                return str(celstr(token))
            except Exception:  # a malformed escape: not a usable literal
                return None
    return None


def _path(node: lark.Tree, scope: frozenset[str]) -> tuple[str, ...] | None:
    """The variable path of a chain of selects and simple string indexes, or None."""
    segments: list[str] = []
    while True:
        node = _descend(node)
        if not isinstance(node, lark.Tree):
            return None
        if node.data == "member_dot":
            segments.append(node.children[1].value)
            node = node.children[0]
        elif node.data == "member_index":
            key = _string_literal(node.children[1])
            if key is None or not _SIMPLE_KEY.match(key):
                return None
            segments.append(key)
            node = node.children[0]
        elif node.data in ("ident", "dot_ident"):
            name = node.children[0].value
            if name not in VARIABLE_KINDS or (node.data == "ident" and name in scope):
                return None
            segments.append(name)
            return tuple(reversed(segments))
        else:
            return None


def _growing_replace(args: list[lark.Tree]) -> bool:
    """Whether a ``replace(old, new[, n])`` call can make its receiver longer."""
    if len(args) < 2:
        return False
    old, new = _string_literal(args[0]), _string_literal(args[1])
    return old is None or new is None or old == "" or len(new) > len(old)


def _may_be_large(node: lark.Tree) -> bool:
    """Whether a sub-expression contains a call that can build a large string."""
    for sub in node.iter_subtrees():
        if sub.data == "member_dot_arg":
            name = sub.children[1].value
            args = list(sub.children[2].children) if len(sub.children) == 3 else []
            if name in _GROWTH_FUNCTIONS or (name == "replace" and _growing_replace(args)):
                return True
    return False


def _tree_depth(tree: lark.Tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node.children if isinstance(child, lark.Tree))
    return deepest


def _minimal(paths: set[tuple[str, ...]]) -> frozenset[str]:
    """Dotted paths, dropping any path that a shorter one already covers."""
    kept = [p for p in paths if not any(len(q) < len(p) and p[: len(q)] == q for q in paths)]
    return frozenset(".".join(p) for p in kept)


def analyse(
    tree: lark.Tree,
    *,
    strict: bool,
    functions: frozenset[str] = frozenset(),
    namespaces: Mapping[str, frozenset[str]] | None = None,
) -> Analysis:
    """Walk a parsed expression: its static kind, its references; CompileError for the
    shared cost rules and, when ``strict``, for undeclared names and visible type errors."""
    if _tree_depth(tree) > MAX_AST_DEPTH:
        raise CompileError(f"expression nested too deeply (more than {MAX_AST_DEPTH} syntax levels)")
    walk = _Walk(strict=strict, functions=functions, namespaces=namespaces or {})
    kind = walk.visit(tree, frozenset(), 0)
    return Analysis(kind=kind, references=_minimal(walk.paths), variables=frozenset(p[0] for p in walk.paths))


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


# --- the optional syntax of cel-cpp, seen through cel-python's grammar ----------------

_STRING_LITERAL: Final = re.compile(
    r"""[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
    re.S,
)
_OPTIONAL_MARK: Final = re.compile(r"([.\[{,]\s*)\?")
_IDENTIFIER: Final = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")


def mask_strings(source: str) -> str:
    """The source with the inside of every string literal blanked (same length)."""
    return _STRING_LITERAL.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 1), source)


def without_optional_syntax(source: str) -> str:
    """``a.?b``, ``m[?k]``, ``{?k: v}``, ``[?x]`` read as their non-optional forms (same
    length), so that cel-python's grammar can analyse a cel-cpp rule."""
    masked = mask_strings(source)
    chars = list(source)
    for match in _OPTIONAL_MARK.finditer(masked):
        chars[match.end() - 1] = " "
    return "".join(chars)


def scan_variables(source: str) -> frozenset[str]:
    """The variables a source may read, found by scanning identifiers (a fallback)."""
    return frozenset(name for name in _IDENTIFIER.findall(mask_strings(source)) if name in VARIABLE_KINDS)


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
