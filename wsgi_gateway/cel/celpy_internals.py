"""Everything in the gateway that touches cel-python's *internals*, in one place.

cel-python's public API (``celpy.Environment().program(ast).evaluate(activation)``)
costs about 150 µs for ``claims.sub != ''`` on this host; this module gets it to about
6 µs by: building the ``Activation`` directly from ``NameContainer``/``Referent``
(``InterpretedRunner`` loads protobuf annotations on every call), preparing the parsed
tree once (:func:`prepare_tree`: pass-through chains dropped, literals pre-computed, node
names made plain ``str``), and subclassing ``Evaluator`` to re-implement the hot node
methods (without cel-python's per-node ``typing.cast``), short-circuit ``&&``/``||``/
``?:``, replace the macros (counted steps, errors as values) and ``has()``.

Each of these relies on attributes and method names that are not cel-python's public
API, so this module is checked against one version range only,
:data:`CHECKED_VERSIONS`: importing it with any other installed cel-python raises
:class:`CelPythonVersionError` (and ``tests/cel/test_boundary.py`` fails loudly),
instead of misbehaving quietly. To move to a new cel-python: run the cel tests and the
conformance suite, then widen the range here and the pin in ``setup.cfg``.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Callable, Mapping
from importlib.metadata import version as _installed_version
from typing import Any, Final

import lark
from celpy.celtypes import BoolType, BytesType, DoubleType, ListType, MapType, StringType
from celpy.evaluation import Activation, CELEvalError, Evaluator, NameContainer, Referent

from .celpy_functions import CURRENT_BUDGET, FUNCTIONS, TYPE_VALUES, MISSING, NUM, Budget, index_value, eval_error, kind_name, kind_of, map_get, no_overload
from .kinds import MACROS
from .limits import DEFAULT_LIMITS, CelLimits
from .literals import LiteralError, decode_literal

#: The cel-python versions this module was checked against: ``(lowest, below)``.
CHECKED_VERSIONS: Final = ("0.5.0", "0.6")


class CelPythonVersionError(ImportError):
    """The installed cel-python is outside :data:`CHECKED_VERSIONS`."""


def check_version(installed: str | None = None) -> str:
    """The installed cel-python version; CelPythonVersionError when it was not checked."""
    installed = installed or _installed_version("cel-python")
    parts = tuple(int(p) for p in installed.split(".")[:3] if p.isdigit())
    low = tuple(int(p) for p in CHECKED_VERSIONS[0].split("."))
    high = tuple(int(p) for p in CHECKED_VERSIONS[1].split("."))
    if not (low <= parts < high):
        raise CelPythonVersionError(
            f"wsgi_gateway.cel.celpy_internals was checked against cel-python >={CHECKED_VERSIONS[0]},"
            f" <{CHECKED_VERSIONS[1]}; {installed} is installed. Re-check the interpreter subclass"
            " (see this module's docstring) before widening the range.")
    return installed


check_version()



def _new_activation(identifiers: NameContainer) -> Activation:
    activation = Activation.__new__(Activation)
    activation.identifiers = identifiers
    activation.functions = FUNCTIONS
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
    return _as_error(left) or _as_error(right) or no_overload("_||_", left, right)


def _logical_and(left: Any, right: Any) -> Any:
    """CEL ``&&``: false wins over errors; otherwise an error or a non-bool is an error."""
    if (type(left) in _BOOLS and not left) or (type(right) in _BOOLS and not right):
        return _FALSE
    if type(left) in _BOOLS and type(right) in _BOOLS:
        return _TRUE
    return _as_error(left) or _as_error(right) or no_overload("_&&_", left, right)


_RELATIONS: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "relation_eq": FUNCTIONS["_==_"], "relation_ne": FUNCTIONS["_!=_"],
    "relation_lt": FUNCTIONS["_<_"], "relation_le": FUNCTIONS["_<=_"],
    "relation_gt": FUNCTIONS["_>_"], "relation_ge": FUNCTIONS["_>=_"],
    "relation_in": FUNCTIONS["_in_"],
}  # fmt: skip
_MAX_DURATION: Final = datetime.timedelta(microseconds=(2**63 - 1) // 1000)


def _divide(left: Any, right: Any) -> Any:
    """``/``: IEEE 754 for doubles (cel-python 0.5.0 gave ``inf`` for ``0.0/0.0`` and for
    ``-1.0/0.0``); integers as cel-python does (truncating, errors on zero)."""
    if isinstance(left, float) and isinstance(right, float) and right == 0.0:
        if left == 0.0 or math.isnan(left):  # x86's default NaN (what cel-cpp gives) has the sign bit set
            return DoubleType(left if math.isnan(left) else -math.nan)
        return DoubleType(math.copysign(math.inf, left) * math.copysign(1.0, right))
    return operator.truediv(left, right)


_ARITHMETIC: Final[Mapping[str, tuple[str, Callable[[Any, Any], Any]]]] = {
    "addition_add": ("_+_", operator.add), "addition_sub": ("_-_", operator.sub),
    "multiplication_mul": ("_*_", operator.mul), "multiplication_div": ("_/_", _divide),
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
    kinds = (kind_name(left), kind_name(right))
    if not (
        (kinds[0] == kinds[1] and kinds[0] in _SAME_KIND_OPERANDS[name])
        or kinds in _MIXED_OPERANDS.get(name, frozenset())
    ):
        return no_overload(name, left, right)
    try:
        result = function(left, right)
    except ZeroDivisionError:
        return eval_error("divide by zero" if name == "_/_" else "modulus by zero", ZeroDivisionError)
    except (ValueError, OverflowError):
        return eval_error("return error for overflow", ValueError)
    except TypeError:
        return no_overload(name, left, right)
    if result is NotImplemented:
        return no_overload(name, left, right)
    if isinstance(result, datetime.timedelta) and abs(result) > _MAX_DURATION:
        return eval_error("integer overflow", OverflowError)  # cel-cpp: durations are int64 nanoseconds
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
            node.cel_value = _literal_value(evaluator, node)
    return root


def _literal_value(evaluator: Evaluator, node: lark.Tree) -> Any:
    """A literal's value; strings and bytes decoded as cel-spec and cel-cpp do
    (:mod:`.literals`), not by cel-python's lexer."""
    token = node.children[0]
    if token.type in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
        try:
            value = decode_literal(token.value)
        except LiteralError as ex:
            return CELEvalError(str(ex), ValueError, (str(ex),))
        return BytesType(value) if isinstance(value, bytes) else StringType(value)
    return Evaluator.literal(evaluator, node)


# the names cel-python's member_dot_arg treats as macros (its own min and reduce included)
_CELPY_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one", "reduce", "min"})


class _Evaluator(Evaluator):
    """cel-python's interpreter with the macros and ``has()`` replaced (see module doc).

    The methods for the common nodes (``expr`` to ``primary``) are re-implemented with
    the same semantics, minus the ``typing.cast(Tuple[...], ...)`` calls of cel-python
    (whose run-time hashing of ``typing`` objects took about 40 % of an evaluation) and
    with ``&&``/``||`` short-circuiting as cel-cpp does; everything else is cel-python's.
    """

    def __init__(self, ast: lark.Tree, activation: Activation, budget: Budget) -> None:
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
            return _as_error(condition) or no_overload("_?_:_", condition)
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
            return BoolType(not value) if type(value) in _BOOLS else no_overload("!_", value)
        try:
            return operator.neg(value)
        except (ValueError, OverflowError):
            return eval_error("return error for overflow", ValueError)
        except TypeError:
            return no_overload("-_", value)

    def member(self, tree: lark.Tree) -> Any:
        return self.visit(tree.children[0])

    def member_dot(self, tree: lark.Tree) -> Any:
        member_tree, name_token = tree.children
        member = self.visit(member_tree)
        if isinstance(member, CELEvalError):
            return member
        if isinstance(member, Mapping):
            value = map_get(member, name_token.value)
            if value is MISSING:
                return eval_error(f"no such key: '{name_token.value}'", KeyError)
            return value.value if isinstance(member, NameContainer) else value
        return eval_error(f"type '{kind_name(member)}' does not support field selection")

    def member_index(self, tree: lark.Tree) -> Any:
        return index_value(self.visit(tree.children[0]), self.visit(tree.children[1]))

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
            function = TYPE_VALUES.get(name) or FUNCTIONS.get(name)  # type names: int, string, ...
            return function if function is not None else eval_error(f"undeclared reference to '{name}'", KeyError)
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
            return eval_error("has() argument must be a field selection")
        operand = self._visit_value(select.children[0])
        if isinstance(operand, CELEvalError):
            return operand
        if isinstance(operand, (Mapping, NameContainer)):
            return BoolType(map_get(operand, StringType(select.children[1].value)) is not MISSING)
        return eval_error(f"has(): type '{kind_name(operand)}' does not support field selection")

    def member_dot_arg(self, tree: lark.Tree) -> Any:
        name = tree.children[1].value
        if name not in MACROS or len(tree.children) != 3:
            if name in _CELPY_MACROS:
                return super().member_dot_arg(tree)
            # a method call, as cel-python's member_dot_arg makes it, without the typing
            # subscripts (Callable[...], Tuple[...]) it builds on every call: a third of
            # its time
            return self.method_eval(*self.visit_children(tree))
        args = tree.children[2].children
        target = self._visit_value(tree.children[0])
        if isinstance(target, CELEvalError):
            return target
        kind = kind_of(target)
        if kind == "map":
            items: list[Any] = list(target)
        elif kind == "list":
            items = target
        else:
            return eval_error(f"{name}(): expression of type '{kind_name(target)}' cannot be the range of a comprehension")
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
                    error = error or _as_error(value) or eval_error("exists_one(): the condition is not a bool")
            return error or BoolType(count == 1)
        results = ListType()
        filtering = name == "filter" or len(args) == 3  # filter(x, p) or map(x, p, t)
        transform = args[2] if len(args) == 3 else None if name == "filter" else args[1]
        for item in items:
            if filtering:
                keep = body(args[1], item)
                if type(keep) not in _BOOLS:
                    return _as_error(keep) or eval_error(f"{name}(): the condition is not a bool")
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
                error = error or _as_error(value) or eval_error("the condition of a comprehension is not a bool")
        return error or BoolType(not exists)


def _find_select(exprlist: lark.Tree) -> lark.Tree | None:
    node: Any = exprlist.children[0] if len(exprlist.children) == 1 else None
    while isinstance(node, lark.Tree) and node.data != "member_dot" and len(node.children) == 1:
        node = node.children[0]
    return node if isinstance(node, lark.Tree) and node.data == "member_dot" else None


def _bound_name(tree: lark.Tree) -> str:
    return next(tree.find_data("ident")).children[0].value



def evaluate_tree(tree: lark.Tree, values: dict[str, Any], limits: CelLimits = DEFAULT_LIMITS) -> Any:
    """Evaluate a :func:`prepare_tree` tree over bound cel-python values, counting its
    steps against a fresh :class:`~wsgi_gateway.cel.celpy_functions.Budget`."""
    identifiers = NameContainer()
    for name, value in values.items():
        dict.__setitem__(identifiers, name, _referent(value))
    budget = Budget(limits.timeout, limits.clock)
    token = CURRENT_BUDGET.set(budget)
    try:
        return _Evaluator(tree, _new_activation(identifiers), budget).visit(tree)
    finally:
        CURRENT_BUDGET.reset(token)
