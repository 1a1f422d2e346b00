"""The cel-python engine (the default): cel-python 0.5.0's interpreter, made to behave
like cel-spec and cel-cpp where rule authors would notice.

Compiling: ``celpy``'s lark grammar parses the rule (through the shared
:func:`wsgi_gateway.policy.engine.parse`); the static walk of
:func:`~wsgi_gateway.policy.engine.analyse` in strict mode then refuses what cel-python
would only notice at evaluation: an identifier that is not one of
:data:`~wsgi_gateway.policy.engine.VARIABLES` (names bound by ``all``, ``exists``,
``exists_one``, ``map`` and ``filter`` are fine), an unknown function, a type error
between literals (``1 == 1.0``, ``'a' + 1``), a ``has()`` whose argument is not a field
selection, cel-python's non-standard ``reduce``/``min`` macros, and with ``result=bool``
an expression whose kind is known and not ``bool``.

Evaluating: :class:`celpy.evaluation.Evaluator` (cel-python's default interpreter,
what ``InterpretedRunner`` uses) with the strings extension
(:data:`~wsgi_gateway.policy.cel_strings.STRING_EXT_FUNCTIONS`) and these replacements:

* ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``: heterogeneous equality and
  cross-type numeric comparison (cel-spec; what cel-cpp does at run time); equality of
  different kinds is ``false``, ordering of different non-numeric kinds an error;
* ``_[_]``: a negative or too large list index is an error (plain cel-python wraps
  around), map keys compare across ``int``/``uint``/``double``;
* ``has(e.f)``: an error when ``e`` is an error (cel-python said ``false``), ``false``
  only for a map without the key;
* the macros ``all``/``exists`` (short-circuit at the first decisive element, errors
  absorbed as cel-spec says), ``exists_one``, ``map`` (also the three-argument form)
  and ``filter``: errors become values instead of escaping as exceptions, and every
  step is counted (below);
* ``&&``, ``||``, ``?:``: short-circuit (cel-python evaluated both sides of ``&&`` and
  ``||``), with cel-spec's error absorption (``error || true`` is ``true``);
* arithmetic: only CEL's overloads (cel-python's types would add a double to an int,
  or repeat a string: ``'a' * 1000000000``);
* ``size`` (``size(null)`` is an error, not 0), ``contains`` (strings only),
  ``timestamp(int)`` (epoch seconds, as in cel-cpp);
* ``replace``, ``join``, ``format``: refuse to build a string longer than
  :data:`~wsgi_gateway.policy.engine.MAX_RESULT_STRING_LENGTH`.

Speed: the activation is built directly from cel-python's ``NameContainer``/``Referent``
classes (``InterpretedRunner`` loads the protobuf annotations for every call, about a
fifth of a simple rule); the parsed tree is prepared once (:func:`prepare_tree`:
pass-through chains dropped, literals pre-computed) and the hot node methods of the
interpreter are re-implemented without cel-python's per-node ``typing.cast`` overhead.
Measured on this 2-core host (best of 7): ``claims.sub != ''`` 6 µs against 150 µs with
``InterpretedRunner`` and 32 µs with ``CompiledRunner``; converting a 15-claim token
15 µs against 84 µs for ``celpy.json_to_cel``. All of this leans on cel-python internals,
pinned by ``cel-python>=0.5,<0.6``; the string_ext conformance cases and
``tests/policy/test_engines.py`` guard it.

Cost bound
----------
Every comprehension step goes through :class:`_Budget`: reaching
:data:`~wsgi_gateway.policy.engine.MAX_ITERATIONS` steps in one evaluation, or running
past :data:`MAX_EVAL_SECONDS` (checked every :data:`DEADLINE_CHECK_STEPS` steps and
while ``in`` scans a long list), stops the evaluation with :class:`EvalError`. With the
static rules (comprehensions nested at most twice, the ``replace()`` rule) and the limits
of :meth:`CelPythonEngine.convert` (lists of 1,000, strings of 8 KiB), the slowest
evaluation stays well under a second.

CompiledRunner
--------------
cel-python's ``CompiledRunner`` (transpile to Python, ``exec``) is not used. Findings on
0.5.0:

* ``'Tree' object has no attribute 'checked_exception'``: ``CELParser`` keeps one lark
  parser per process, built with the tree class of the first ``Environment``; after any
  interpreted environment every compiled one fails. Resetting
  ``CELParser.CEL_PARSER = None`` works around it.
* It cannot call the strings extension: functions are emitted as the text
  ``module.qualname`` and looked up in ``celpy.evaluation``'s globals, so
  ``'a'.lowerAscii()`` fails with ``name 'wsgi_gateway' is not defined``.
* It is not thread-safe: ``Transpiler.evaluate`` stores the activation and the result in
  ``celpy.evaluation``'s module globals. With two threads evaluating
  ``claims.sub == 'alice'`` for ``alice`` and ``bob``, 11 of 6,000 results were the other
  thread's answer; under gthread workers that is one request's decision given to another.
* It could not carry the replacements above (operators, macros, the step budget).
It was about five times faster than ``InterpretedRunner`` (32 µs against 150 µs on
``claims.sub != ''``), and this engine is faster still (6 µs), so nothing is lost.
"""

from __future__ import annotations

import datetime
import operator
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final

import lark
from celpy.celtypes import (
    BoolType,
    BytesType,
    DoubleType,
    DurationType,
    IntType,
    ListType,
    MapType,
    StringType,
    TimestampType,
    UintType,
)
from celpy.evaluation import Activation, CELEvalError, Evaluator, NameContainer, Referent, base_functions

from .cel_strings import STRING_EXT_FUNCTIONS
from .engine import (
    DYN,
    MACROS,
    MAP_VARIABLES,
    MAX_BYTES_LENGTH,
    MAX_ITERATIONS,
    MAX_LIST_LENGTH,
    MAX_MAP_SIZE,
    MAX_RESULT_STRING_LENGTH,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
    MAX_VALUE_NODES,
    CompileError,
    EvalError,
    Rejected,
    analyse,
    check_result,
    iter_names,
    parse,
    result_kind,
)

__all__ = ["DEADLINE_CHECK_STEPS", "MAX_EVAL_SECONDS", "CelPythonEngine", "CelPythonProgram"]

#: Wall-clock bound of one evaluation (cel-python only; cel-cpp has none).
MAX_EVAL_SECONDS: Final = 0.5
#: How often (in comprehension steps, or list elements scanned by ``in``) the deadline is read.
DEADLINE_CHECK_STEPS: Final = 64

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_UTC = datetime.timezone.utc


# --- errors and the budget -------------------------------------------------------------


def _error(message: str, cls: type[Exception] = TypeError) -> CELEvalError:
    return CELEvalError(message, cls, (message,))


def _no_overload(name: str, *args: Any) -> CELEvalError:
    kinds = ", ".join(_kind_name(arg) for arg in args)
    return _error(f"no such overload: {name}({kinds})")


class _CostExceeded(Exception):
    """Raised through the interpreter when an evaluation is over its budget.

    Not a CELEvalError: nothing in cel-python or in the macros below catches it.
    """


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_EVAL_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps >= MAX_ITERATIONS:
            raise _CostExceeded(f"evaluation cost limit exceeded: {MAX_ITERATIONS} comprehension steps")
        if not self.steps % DEADLINE_CHECK_STEPS:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _CostExceeded(f"evaluation time limit exceeded: {MAX_EVAL_SECONDS} s")


_CURRENT_BUDGET: ContextVar[_Budget | None] = ContextVar("cel_python_budget", default=None)


# --- kinds, equality, ordering ---------------------------------------------------------

_NUM, _OTHER = "num", "other"
_KINDS: Final[Mapping[type, str]] = {
    BoolType: "bool", bool: "bool",
    IntType: _NUM, UintType: _NUM, int: _NUM, DoubleType: _NUM, float: _NUM,
    StringType: "string", str: "string", BytesType: "bytes", bytes: "bytes",
    ListType: "list", list: "list", MapType: "map", dict: "map",
    type(None): "null", TimestampType: "timestamp", DurationType: "duration",
}  # fmt: skip
_TYPE_ALIASES: Final[Mapping[type, type]] = {
    str: StringType, list: ListType, dict: MapType, int: IntType, float: DoubleType,
    bool: BoolType, bytes: BytesType, datetime.datetime: TimestampType, datetime.timedelta: DurationType,
}  # fmt: skip


def _kind(value: Any) -> str:
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


def _kind_name(value: Any) -> str:
    kind = _kind(value)
    if kind == _NUM:
        return "uint" if isinstance(value, UintType) else "double" if isinstance(value, float) else "int"
    return kind


def _number(value: Any) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


_MISSING: Final = object()


def _map_get(mapping: Mapping[Any, Any], key: Any) -> Any:
    """``mapping[key]`` with CEL's key equality (numbers across types), or _MISSING."""
    try:
        return dict.__getitem__(mapping, key) if isinstance(mapping, dict) else mapping[key]
    except (KeyError, TypeError):
        pass
    kind = _kind(key)
    if kind in (_NUM, "bool", "string"):
        for candidate, value in mapping.items():
            if _kind(candidate) == kind and _equal(candidate, key):
                return value
    return _MISSING


def _equal(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality of two non-error values."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == _NUM:
        return _number(a) == _number(b)
    if kind == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if kind == "map":
        if len(a) != len(b):
            return False
        for key, value in a.items():
            other = _map_get(b, key)
            if other is _MISSING or not _equal(value, other):
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
        ka, kb = _kind(a), _kind(b)
        if ka == kb == _NUM:
            return BoolType(compare(_number(a), _number(b)))
        if ka == kb and ka in _ORDERED_KINDS:
            if ka == "string":
                return BoolType(compare(str(a), str(b)))
            if ka == "bool":
                return BoolType(compare(int(a), int(b)))
            return BoolType(compare(a, b))
        return _no_overload(name, a, b)

    ordered.__name__ = name
    return ordered


_TRUE_VALUE, _FALSE_VALUE = BoolType(True), BoolType(False)
_STRING_TYPES: Final = (StringType, str)
_NUMBER_TYPES: Final = (IntType, UintType, DoubleType, int, float)
_IN_CHUNK: Final = 4096


def _contains_item(elements: list[Any], item: Any) -> bool:
    """Whether ``item`` equals an element (CEL equality), with fast paths for the usual
    string and number lookups (``'admin' in token.scopes``)."""
    kind = _kind(item)
    if kind == "string":
        text = str(item)
        return any(type(element) in _STRING_TYPES and str.__eq__(element, text) for element in elements)
    if kind == _NUM:
        number = _number(item)
        return any(type(element) in _NUMBER_TYPES and _number(element) == number for element in elements)
    return any(_equal(item, element) for element in elements)


def _in(item: Any, container: Any) -> Any:
    if isinstance(item, CELEvalError):
        return item
    if isinstance(container, CELEvalError):
        return container
    kind = _kind(container)
    if kind == "list":
        if len(container) > _IN_CHUNK:
            budget = _CURRENT_BUDGET.get()
            for start in range(0, len(container), _IN_CHUNK):
                if budget is not None:
                    budget.check_time()
                if _contains_item(container[start : start + _IN_CHUNK], item):
                    return _TRUE_VALUE
            return _FALSE_VALUE
        return _TRUE_VALUE if _contains_item(container, item) else _FALSE_VALUE
    if kind == "map":
        return BoolType(_map_get(container, item) is not _MISSING)
    return _no_overload("@in", item, container)


def _index(container: Any, key: Any) -> Any:
    if isinstance(container, CELEvalError):
        return container
    if isinstance(key, CELEvalError):
        return key
    kind = _kind(container)
    if kind == "list":
        if _kind(key) == _NUM and not isinstance(key, float):
            index = int(key)
            if 0 <= index < len(container):
                return container[index]
            return _error(f"index out of range: {index} (size {len(container)})", IndexError)
        return _no_overload("_[_]", container, key)
    if kind == "map":
        value = _map_get(container, key)
        if value is _MISSING:
            return _error(f"no such key: {key!r}", KeyError)
        return value
    return _no_overload("_[_]", container, key)


def _size(value: Any = _MISSING, *extra: Any) -> Any:
    if isinstance(value, CELEvalError):
        return value
    if not extra and _kind(value) in ("string", "bytes", "list", "map"):
        return IntType(len(value))
    return _no_overload("size", *((value, *extra) if value is not _MISSING else extra))


def _contains(text: Any, part: Any = _MISSING) -> Any:
    for arg in (text, part):
        if isinstance(arg, CELEvalError):
            return arg
    if _kind(text) == "string" and _kind(part) == "string":
        return BoolType(str(part) in str(text))
    return _no_overload("contains", text, part)


def _timestamp(value: Any = _MISSING, *extra: Any) -> Any:
    if isinstance(value, CELEvalError):
        return value
    if extra or value is _MISSING:
        return _no_overload("timestamp", *extra)
    kind = _kind_name(value)
    try:
        if kind == "string":
            return _utc_timestamp(TimestampType(str(value)))
        if kind == "int":
            return _utc_timestamp(datetime.datetime.fromtimestamp(int(value), _UTC))
        if kind == "timestamp":
            return value
    except (ValueError, OverflowError, OSError, TypeError) as ex:
        return _error(f"timestamp: {ex}", ValueError)
    return _no_overload("timestamp", value)


def _capped(name: str, function: Callable[..., Any], estimate: Callable[..., int | None] | None = None) -> Callable[..., Any]:
    """A strings-extension function that refuses results over MAX_RESULT_STRING_LENGTH."""

    def capped(*args: Any) -> Any:
        if estimate is not None:
            size = estimate(*args)
            if size is not None and size > MAX_RESULT_STRING_LENGTH:
                return _error(f"{name}: result longer than {MAX_RESULT_STRING_LENGTH} characters", ValueError)
        result = function(*args)
        if isinstance(result, str) and len(result) > MAX_RESULT_STRING_LENGTH:
            return _error(f"{name}: result longer than {MAX_RESULT_STRING_LENGTH} characters", ValueError)
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


_FUNCTIONS: Final[dict[str, Any]] = {
    **base_functions,
    **STRING_EXT_FUNCTIONS,
    "_==_": _eq,
    "_!=_": _ne,
    "_<_": _ordering("_<_", operator.lt),
    "_<=_": _ordering("_<=_", operator.le),
    "_>_": _ordering("_>_", operator.gt),
    "_>=_": _ordering("_>=_", operator.ge),
    "_in_": _in,
    "_[_]": _index,
    "size": _size,
    "contains": _contains,
    "timestamp": _timestamp,
    "replace": _capped("replace", STRING_EXT_FUNCTIONS["replace"], _replace_size),
    "join": _capped("join", STRING_EXT_FUNCTIONS["join"], _join_size),
    "format": _capped("format", STRING_EXT_FUNCTIONS["format"]),
}
#: Names a rule may call (functions and methods); operators and namespaces excluded.
FUNCTION_NAMES: Final = frozenset(
    name for name in _FUNCTIONS if name[0].isalpha() and name not in ("strings", "quote", "list", "map", "null_type")
)
NAMESPACES: Final[Mapping[str, frozenset[str]]] = {"strings": frozenset({"quote"})}


# --- the interpreter -----------------------------------------------------------------


def _new_activation(identifiers: NameContainer) -> Activation:
    activation = Activation.__new__(Activation)
    activation.identifiers = identifiers
    activation.functions = _FUNCTIONS
    activation.package = None
    return activation


def _referent(value: Any) -> Referent:
    referent = Referent()
    referent.value = value
    return referent


def _as_error(value: Any) -> CELEvalError | None:
    return value if isinstance(value, CELEvalError) else None


_TRUE, _FALSE = BoolType(True), BoolType(False)
_BOOLS: Final = (BoolType, bool)


def _logical_or(left: Any, right: Any) -> Any:
    """CEL ``||``: true wins over errors; otherwise an error or a non-bool is an error."""
    if (type(left) in _BOOLS and left) or (type(right) in _BOOLS and right):
        return _TRUE
    if type(left) in _BOOLS and type(right) in _BOOLS:
        return _FALSE
    return _as_error(left) or _as_error(right) or _no_overload("_||_", left, right)


def _logical_and(left: Any, right: Any) -> Any:
    """CEL ``&&``: false wins over errors; otherwise an error or a non-bool is an error."""
    if (type(left) in _BOOLS and not left) or (type(right) in _BOOLS and not right):
        return _FALSE
    if type(left) in _BOOLS and type(right) in _BOOLS:
        return _TRUE
    return _as_error(left) or _as_error(right) or _no_overload("_&&_", left, right)


_RELATIONS: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "relation_eq": _FUNCTIONS["_==_"], "relation_ne": _FUNCTIONS["_!=_"],
    "relation_lt": _FUNCTIONS["_<_"], "relation_le": _FUNCTIONS["_<=_"],
    "relation_gt": _FUNCTIONS["_>_"], "relation_ge": _FUNCTIONS["_>=_"],
    "relation_in": _FUNCTIONS["_in_"],
}  # fmt: skip
_ARITHMETIC: Final[Mapping[str, tuple[str, Callable[[Any, Any], Any]]]] = {
    "addition_add": ("_+_", operator.add), "addition_sub": ("_-_", operator.sub),
    "multiplication_mul": ("_*_", operator.mul), "multiplication_div": ("_/_", operator.truediv),
    "multiplication_mod": ("_%_", operator.mod),
}  # fmt: skip


_SAME_KIND_OPERANDS: Final[Mapping[str, frozenset[str]]] = {
    "_+_": frozenset({"int", "uint", "double", "string", "bytes", "list", "duration"}),
    "_-_": frozenset({"int", "uint", "double", "duration"}),
    "_*_": frozenset({"int", "uint", "double"}),
    "_/_": frozenset({"int", "uint", "double"}),
    "_%_": frozenset({"int", "uint"}),
}
_MIXED_OPERANDS: Final[Mapping[str, frozenset[tuple[str, str]]]] = {
    "_+_": frozenset({("timestamp", "duration"), ("duration", "timestamp")}),
    "_-_": frozenset({("timestamp", "timestamp"), ("timestamp", "duration")}),
}


def _arithmetic(name: str, function: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    """CEL arithmetic: only the overloads CEL has (cel-python's types would also add a
    double to an int, or repeat a string: ``'a' * 1000000000``)."""
    if isinstance(left, CELEvalError):
        return left
    if isinstance(right, CELEvalError):
        return right
    kinds = (_kind_name(left), _kind_name(right))
    if not (
        (kinds[0] == kinds[1] and kinds[0] in _SAME_KIND_OPERANDS[name])
        or kinds in _MIXED_OPERANDS.get(name, frozenset())
    ):
        return _no_overload(name, left, right)
    try:
        result = function(left, right)
    except ZeroDivisionError:
        return _error("divide by zero" if name == "_/_" else "modulus by zero", ZeroDivisionError)
    except (ValueError, OverflowError):
        return _error("return error for overflow", ValueError)
    except TypeError:
        return _no_overload(name, left, right)
    if result is NotImplemented:
        return _no_overload(name, left, right)
    return result


# Single-child nodes that only pass their child's value through; ``primary`` and
# ``paren_expr`` stay (cel-python's ``primary`` dispatches on its child).
_COLLAPSIBLE: Final = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member"})


def _collapse(node: Any) -> Any:
    while isinstance(node, lark.Tree) and node.data in _COLLAPSIBLE and len(node.children) == 1:
        node = node.children[0]
    return node


def prepare_tree(tree: lark.Tree) -> lark.Tree:
    """Make a parsed (and analysed) tree cheaper to interpret, same semantics:

    * drop the pass-through chains (``expr`` → ``conditionalor`` → ... → ``member``
      around every operand): a third of the visits of a simple rule;
    * make every ``data`` a plain ``str`` (lark's ``Token.__eq__`` ran on every dispatch);
    * store the value of every scalar literal on its node (``cel_value``), so string
      literals are not re-parsed at each evaluation.
    """
    root = _collapse(tree)
    evaluator = Evaluator(root, Activation())
    for node in root.iter_subtrees():
        node.data = str(node.data)
        node.children = [_collapse(child) for child in node.children]
        if node.data == "literal":
            node.cel_value = Evaluator.literal(evaluator, node)
    return root


class _Evaluator(Evaluator):
    """cel-python's interpreter with the macros and ``has()`` replaced (see module doc).

    The methods for the common nodes (``expr`` to ``primary``) are re-implemented with
    the same semantics, minus the ``typing.cast(Tuple[...], ...)`` calls of cel-python
    (whose run-time hashing of ``typing`` objects took about 40 % of an evaluation) and
    with ``&&``/``||`` short-circuiting as cel-cpp does; everything else is cel-python's.
    """

    def __init__(self, ast: lark.Tree, activation: Activation, budget: _Budget) -> None:
        self.ast = ast
        self.base_activation = self.activation = activation
        self.level = 0
        self.budget = budget

    def visit(self, tree: lark.Tree) -> Any:
        return getattr(self, tree.data)(tree)

    def _visit_value(self, tree: lark.Tree) -> Any:
        try:
            return self.visit(tree)
        except CELEvalError as ex:
            return ex

    def expr(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        condition = self.visit(children[0])
        if type(condition) not in _BOOLS:
            return _as_error(condition) or _no_overload("_?_:_", condition)
        return self.visit(children[1] if condition else children[2])

    def conditionalor(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        left = self.visit(children[0])
        if type(left) in _BOOLS and left:
            return _TRUE
        return _logical_or(left, self.visit(children[1]))

    def conditionaland(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        left = self.visit(children[0])
        if type(left) in _BOOLS and not left:
            return _FALSE
        return _logical_and(left, self.visit(children[1]))

    def relation(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        op_tree, right_tree = children
        return _RELATIONS[op_tree.data](self.visit(op_tree.children[0]), self.visit(right_tree))

    def addition(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        op_tree, right_tree = children
        name, function = _ARITHMETIC[op_tree.data]
        return _arithmetic(name, function, self.visit(op_tree.children[0]), self.visit(right_tree))

    multiplication = addition

    def unary(self, tree: lark.Tree) -> Any:
        children = tree.children
        if len(children) == 1:
            return self.visit(children[0])
        op_tree, operand_tree = children
        value = self.visit(operand_tree)
        if isinstance(value, CELEvalError):
            return value
        if op_tree.data == "unary_not":
            return BoolType(not value) if type(value) in _BOOLS else _no_overload("!_", value)
        try:
            return operator.neg(value)
        except (ValueError, OverflowError):
            return _error("return error for overflow", ValueError)
        except TypeError:
            return _no_overload("-_", value)

    def member(self, tree: lark.Tree) -> Any:
        return self.visit(tree.children[0])

    def member_dot(self, tree: lark.Tree) -> Any:
        member_tree, name_token = tree.children
        member = self.visit(member_tree)
        if isinstance(member, CELEvalError):
            return member
        if isinstance(member, Mapping):
            value = _map_get(member, name_token.value)
            if value is _MISSING:
                return _error(f"no such key: '{name_token.value}'", KeyError)
            return value.value if isinstance(member, NameContainer) else value
        return _error(f"type '{_kind_name(member)}' does not support field selection")

    def member_index(self, tree: lark.Tree) -> Any:
        return _index(self.visit(tree.children[0]), self.visit(tree.children[1]))

    def primary(self, tree: lark.Tree) -> Any:
        child = tree.children[0]
        data = child.data
        if data == "ident":
            name = child.children[0].value
            identifiers = self.activation.identifiers
            while identifiers is not None:
                referent = dict.get(identifiers, name)
                if referent is not None:
                    return referent.value
                identifiers = identifiers.parent
            function = _FUNCTIONS.get(name)  # type names: int, string, ...
            return function if function is not None else _error(f"undeclared reference to '{name}'", KeyError)
        if data == "literal":
            return self.literal(child)
        if data == "paren_expr":
            return self.visit(child.children[0])
        return super().primary(tree)

    def literal(self, tree: lark.Tree) -> Any:
        try:
            return tree.cel_value
        except AttributeError:
            return super().literal(tree)

    def exprlist(self, tree: lark.Tree) -> Any:
        values = [self.visit(child) for child in tree.children]
        for value in values:
            if isinstance(value, CELEvalError):
                return value
        return ListType(values)

    def macro_has_eval(self, exprlist: lark.Tree) -> Any:
        select = _find_select(exprlist)
        if select is None:
            return _error("has() argument must be a field selection")
        operand = self._visit_value(select.children[0])
        if isinstance(operand, CELEvalError):
            return operand
        if isinstance(operand, (Mapping, NameContainer)):
            return BoolType(_map_get(operand, StringType(select.children[1].value)) is not _MISSING)
        return _error(f"has(): type '{_kind_name(operand)}' does not support field selection")

    def member_dot_arg(self, tree: lark.Tree) -> Any:
        name = tree.children[1].value
        if name not in MACROS or len(tree.children) != 3:
            return super().member_dot_arg(tree)
        args = tree.children[2].children
        target = self._visit_value(tree.children[0])
        if isinstance(target, CELEvalError):
            return target
        kind = _kind(target)
        if kind == "map":
            items: list[Any] = list(target)
        elif kind == "list":
            items = target
        else:
            return _error(f"{name}(): expression of type '{_kind_name(target)}' cannot be the range of a comprehension")
        variable = _bound_name(args[0])
        # One child activation per comprehension; its variable is rebound at each step.
        referent = Referent()
        identifiers = NameContainer(parent=self.activation.identifiers)
        dict.__setitem__(identifiers, variable, referent)
        child = _Evaluator(tree, _new_activation(identifiers), self.budget)
        budget = self.budget

        def body(expr: lark.Tree, item: Any, step: bool = True) -> Any:
            if step:  # one step per element, as cel-cpp counts (map(x, p, t) included)
                budget.step()
            referent.value = item
            return child._visit_value(expr)

        if name in ("all", "exists"):
            return self._quantifier(name == "exists", items, args[1], body)
        if name == "exists_one":
            count, error = 0, None
            for item in items:
                value = body(args[1], item)
                if type(value) in _BOOLS:
                    count += bool(value)
                else:
                    error = error or _as_error(value) or _error("exists_one(): the condition is not a bool")
            return error or BoolType(count == 1)
        results = ListType()
        filtering = name == "filter" or len(args) == 3  # filter(x, p) or map(x, p, t)
        transform = args[2] if len(args) == 3 else None if name == "filter" else args[1]
        for item in items:
            if filtering:
                keep = body(args[1], item)
                if type(keep) not in _BOOLS:
                    return _as_error(keep) or _error(f"{name}(): the condition is not a bool")
                if not keep:
                    continue
            value = item if transform is None else body(transform, item, step=not filtering)
            if isinstance(value, CELEvalError):
                return value
            results.append(value)
        return results

    @staticmethod
    def _quantifier(exists: bool, items: list[Any], predicate: lark.Tree, body: Callable[[lark.Tree, Any], Any]) -> Any:
        """``exists`` (any true) or ``all`` (all true), with cel-spec's error absorption."""
        error = None
        for item in items:
            value = body(predicate, item)
            if type(value) in _BOOLS:
                if bool(value) is exists:
                    return BoolType(exists)
            else:
                error = error or _as_error(value) or _error("the condition of a comprehension is not a bool")
        return error or BoolType(not exists)


def _find_select(exprlist: lark.Tree) -> lark.Tree | None:
    node: Any = exprlist.children[0] if len(exprlist.children) == 1 else None
    while isinstance(node, lark.Tree) and node.data != "member_dot" and len(node.children) == 1:
        node = node.children[0]
    return node if isinstance(node, lark.Tree) and node.data == "member_dot" else None


def _bound_name(tree: lark.Tree) -> str:
    return next(tree.find_data("ident")).children[0].value


# --- values in and out -----------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _utc_timestamp(value: datetime.datetime) -> TimestampType:
    value = value.astimezone(_UTC) if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    return TimestampType(value)


def _cel_int(value: int) -> Any:
    if _INT64_MIN <= value <= _INT64_MAX:
        return int.__new__(IntType, value)
    if 0 <= value <= _UINT64_MAX:
        return int.__new__(UintType, value)
    return float.__new__(DoubleType, float(value))


def _cel_string(value: str) -> StringType:
    if len(value) > MAX_STRING_LENGTH:
        raise _TooLarge(f"a string of {len(value)} characters is longer than {MAX_STRING_LENGTH}")
    return str.__new__(StringType, value)


def _cel_key(key: Any) -> Any:
    kind = type(key)
    if kind is str or kind is StringType:
        return str(_cel_string(key))
    if kind is bool or kind is BoolType:
        return int.__new__(BoolType, key)
    if kind is int or kind is IntType or kind is UintType:
        return _cel_int(key)
    raise TypeError(f"map keys must be strings, ints or bools, not {type(key).__name__}")


def _to_cel(value: Any, depth: int, nodes: list[int]) -> Any:
    nodes[0] -= 1
    if nodes[0] < 0:
        raise _TooLarge(f"more than {MAX_VALUE_NODES} values")
    kind = type(value)
    if kind is str:
        if len(value) > MAX_STRING_LENGTH:
            raise _TooLarge(f"a string of {len(value)} characters is longer than {MAX_STRING_LENGTH}")
        return str.__new__(StringType, value)
    if kind is dict:
        if len(value) > MAX_MAP_SIZE:
            raise _TooLarge(f"a map of {len(value)} entries is larger than {MAX_MAP_SIZE}")
        if depth >= MAX_VALUE_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        result = MapType()
        for key, item in value.items():
            # Plain ``str`` keys: cel-python looks fields up by plain ``str`` anyway, and
            # StringType's Python-level __hash__ would double the cost of a claims set.
            if type(key) is str and len(key) <= MAX_STRING_LENGTH:
                dict.__setitem__(result, key, _to_cel(item, depth + 1, nodes))
            else:
                dict.__setitem__(result, _cel_key(key), _to_cel(item, depth + 1, nodes))
        return result
    if kind is list or kind is tuple:
        if len(value) > MAX_LIST_LENGTH:
            raise _TooLarge(f"a list of {len(value)} elements is longer than {MAX_LIST_LENGTH}")
        if depth >= MAX_VALUE_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        return ListType([_to_cel(item, depth + 1, nodes) for item in value])
    if kind is bool:
        return int.__new__(BoolType, value)
    if kind is int:
        return _cel_int(value)
    if kind is float:
        return float.__new__(DoubleType, value)
    if value is None:
        return None
    return _to_cel_other(value, depth, nodes)


def _to_cel_other(value: Any, depth: int, nodes: list[int]) -> Any:
    """The rare cases: bytes, timestamps, durations, subclasses (celtypes values)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_BYTES_LENGTH:
            raise _TooLarge(f"{len(value)} bytes are longer than {MAX_BYTES_LENGTH}")
        return BytesType(bytes(value))
    if isinstance(value, datetime.datetime):
        if depth:
            raise _TooLarge("a timestamp inside a map or list cannot be bound (cel-expr-python cannot either)")
        return _utc_timestamp(value)
    if isinstance(value, datetime.timedelta):
        if depth:
            raise _TooLarge("a duration inside a map or list cannot be bound (cel-expr-python cannot either)")
        try:
            return DurationType(value)
        except ValueError:
            raise _TooLarge("a duration out of CEL's range") from None
    if isinstance(value, BoolType) or isinstance(value, bool):
        return int.__new__(BoolType, value)
    if isinstance(value, UintType):
        return _cel_int(int(value)) if int(value) > _INT64_MAX else int.__new__(UintType, value)
    if isinstance(value, int):
        return _cel_int(int(value))
    if isinstance(value, float):
        return float.__new__(DoubleType, value)
    if isinstance(value, str):
        return _cel_string(str(value))
    if isinstance(value, Mapping):
        return _to_cel(dict(value), depth, nodes)
    if isinstance(value, (list, tuple)):
        return _to_cel(list(value), depth, nodes)
    raise TypeError(f"cannot convert a {type(value).__name__} into a CEL value")


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
    kind_name = _kind(value)
    if kind_name == "bool":
        return bool(value)
    if kind_name == _NUM:
        return _number(value)
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

    __slots__ = ("_engine", "_tree", "references", "source", "variables")

    def __init__(self, engine: CelPythonEngine, source: str, tree: lark.Tree, references: frozenset[str], variables: frozenset[str]) -> None:
        self._engine = engine
        self._tree = tree
        self.source = source
        self.references = references
        self.variables = variables

    def __repr__(self) -> str:
        return f"CelPythonProgram({self.source!r})"

    def evaluate(self, activation: Mapping[str, object]) -> object:
        try:
            identifiers = NameContainer()
            for name, value in iter_names(activation, self.variables):
                dict.__setitem__(identifiers, name, _referent(self._engine.bind(name, value)))
            budget = _Budget()
            token = _CURRENT_BUDGET.set(budget)
            try:
                result = _Evaluator(self._tree, _new_activation(identifiers), budget).visit(self._tree)
            finally:
                _CURRENT_BUDGET.reset(token)
            if isinstance(result, CELEvalError):
                raise EvalError(_message(result))
            return _to_python(result)
        except EvalError:
            raise
        except (CELEvalError, _CostExceeded) as ex:
            raise EvalError(_message(ex)) from None
        except RecursionError:
            raise EvalError("evaluation failed: expression too deeply nested") from None
        except Exception as ex:  # anything else inside cel-python or a function
            raise EvalError(f"evaluation failed: {type(ex).__name__}: {ex}") from None


class CelPythonEngine:
    """The cel-python engine; use :func:`wsgi_gateway.policy.engine.get_engine`."""

    name = "cel-python"

    def compile(self, source: str, *, result: type | None = None) -> CelPythonProgram:
        wanted = result_kind(result)
        tree = parse(source)
        try:
            analysis = analyse(tree, strict=True, functions=FUNCTION_NAMES, namespaces=NAMESPACES)
        except RecursionError:
            raise CompileError("expression nested too deeply") from None
        check_result(source, analysis.kind, wanted if wanted != DYN else None)
        return CelPythonProgram(self, source, prepare_tree(tree), analysis.references, analysis.variables)

    def convert(self, value: object) -> object:
        """A Python value → a cel-python value (or :class:`Rejected`); TypeError for types
        that are not JSON-like."""
        try:
            return _to_cel(value, 0, [MAX_VALUE_NODES])
        except _TooLarge as ex:
            return Rejected(str(ex))

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

