"""The static cost estimate: the worst case of a rule, from declared input bounds.

Like Kubernetes' CEL cost estimation: every variable a rule reads is bounded by what
:func:`~wsgi_gateway.cel.convert.convert` accepts (strings of at most
:data:`~wsgi_gateway.cel.bounds.MAX_STRING_LENGTH` characters, lists and maps of at most
:data:`~wsgi_gateway.cel.bounds.MAX_LIST_LENGTH` entries, at most
:data:`~wsgi_gateway.cel.bounds.MAX_VALUE_CHARS` characters in all the strings of one
variable: a request header is at most 8 KiB, a claims set at most 256 KiB of text), so
every sub-expression gets an upper bound on its size (characters of a string, elements
of a list) and on the work to compute it. A rule whose worst case is over the budget, or
that could build a string or list larger than
:data:`~wsgi_gateway.cel.bounds.MAX_RESULT_STRING_LENGTH`, is refused at load, on both
engines (cel-cpp has no run-time bound Python can see: a C++ call cannot be interrupted,
so the bound must come before the call).

Units (Kubernetes' convention): 1 per node evaluated, 0.1 per character a function
traverses or builds, 1 per list element visited. The default budget
(:data:`DEFAULT_COST_LIMIT`, ``cel.cost_limit`` in the config) admits a predicate
over every element of a claims list (``claims.groups.exists(g, g.matches(...))``) and
refuses ``s.split('').join(s)`` over an 8 KiB header (67 M characters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import lark

from .api import CompileError
from .bounds import (
    MAX_ITERATIONS, MAX_LIST_LENGTH, MAX_RESULT_STRING_LENGTH, MAX_STRING_LENGTH, MAX_VALUE_CHARS, VARIABLES,
)
from .kinds import MACROS, PASS_THROUGH
from .limits import DEFAULT_COST_LIMIT

__all__ = ["DEFAULT_COST_LIMIT", "Estimate", "check_cost", "estimate"]

_CHAR: Final = 0.1
_FORMAT_CLAUSE: Final = 128  # a format clause's own output (precision is capped at 100)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Upper bounds for one sub-expression: work, length (of a string), count (of a list
    or map), the elements' estimate, and the total characters of all the elements."""

    cost: float = 1.0
    length: float = 0.0
    elem: "Estimate | None" = None
    total: float = 0.0
    count: float = 0.0

    def element(self) -> "Estimate":
        return self.elem if self.elem is not None else _SCALAR


_SCALAR: Final = Estimate(0.0, 32.0)


def _input(depth: int = 0) -> Estimate:
    """Any value read from a variable: a string, a list or a map within the bounds."""
    elem = _input(depth + 1) if depth < 3 else Estimate(0.0, MAX_STRING_LENGTH, None, MAX_VALUE_CHARS, MAX_LIST_LENGTH)
    return Estimate(1.0, MAX_STRING_LENGTH, elem, MAX_VALUE_CHARS, MAX_LIST_LENGTH)


_INPUT: Final = _input()


def estimate(tree: lark.Tree) -> Estimate:
    """The worst case of a parsed expression."""
    return _Walk().visit(tree, {})


def check_cost(tree: lark.Tree, limit: float = DEFAULT_COST_LIMIT) -> Estimate:
    """The estimate; CompileError when the worst case is over ``limit`` or could build a
    string or list over :data:`MAX_RESULT_STRING_LENGTH`."""
    walk = _Walk()
    result = walk.visit(tree, {})
    if walk.largest > MAX_RESULT_STRING_LENGTH:
        raise CompileError(f"the expression could build a value of {walk.largest:,.0f} characters or elements"
                           f" (the limit is {MAX_RESULT_STRING_LENGTH:,}), from inputs within their declared bounds")
    if result.cost > limit:
        raise CompileError(f"the expression's worst-case cost is {result.cost:,.0f}, over the limit of {limit:,.0f}"
                           " (cel.cost_limit): bound the inputs it iterates over or builds strings from")
    return result


def _descend(node: Any) -> Any:
    while isinstance(node, lark.Tree) and node.data in PASS_THROUGH and len(node.children) == 1:
        node = node.children[0]
    return node


def _literal_text(node: Any) -> str | None:
    node = _descend(node)
    if isinstance(node, lark.Tree) and node.data == "literal" and node.children[0].type in ("STRING_LIT", "MLSTRING_LIT"):
        text = node.children[0].value
        quote = text.lstrip("rRbB")
        return quote[3:-3] if quote[:3] in ("'''", '"""') else quote[1:-1]  # escapes only shorten
    return None


def _ident(node: Any) -> str | None:
    node = _descend(node)
    if isinstance(node, lark.Tree) and node.data == "ident":
        return node.children[0].value
    return None


class _Walk:
    def __init__(self) -> None:
        self.largest = 0.0
        self.outer = 1.0  # iterations of the enclosing comprehensions

    def note(self, result: Estimate) -> Estimate:
        # a list's elements count too: map(x, s + s) over 1,000 elements holds 16 MB
        self.largest = max(self.largest, result.length, result.count, result.total)
        return result

    def visit(self, node: Any, scope: dict[str, Estimate]) -> Estimate:
        if not isinstance(node, lark.Tree):
            return Estimate(0.0)
        method: Callable | None = getattr(self, "_" + str(node.data), None)
        if method is not None:
            return self.note(method(node, scope))
        parts = [self.visit(child, scope) for child in node.children]
        return self.note(_combine(parts))

    def _literal(self, node: lark.Tree, scope: dict) -> Estimate:
        text = _literal_text(node)  # a number, bool or null literal is a scalar: length 0
        return Estimate(1.0, float(len(text)) if text is not None else 0.0)

    def _ident(self, node: lark.Tree, scope: dict) -> Estimate:
        name = node.children[0].value
        if name in scope:
            return replace(scope[name], cost=1.0)
        return _INPUT if name in VARIABLES else Estimate(1.0)

    _dot_ident = _ident

    def _member_dot(self, node: lark.Tree, scope: dict) -> Estimate:
        operand = self.visit(node.children[0], scope)
        return replace(operand.element(), cost=operand.cost + 1.0)

    def _member_index(self, node: lark.Tree, scope: dict) -> Estimate:
        operand, index = (self.visit(child, scope) for child in node.children)
        return replace(operand.element(), cost=operand.cost + index.cost + 1.0)

    def _list_lit(self, node: lark.Tree, scope: dict) -> Estimate:
        items = [self.visit(child, scope) for child in _flatten(node)]
        return _collection(items)

    _map_lit = _list_lit

    def _relation(self, node: lark.Tree, scope: dict) -> Estimate:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope)
        op_node, right_node = node.children
        left, right = self.visit(op_node.children[0], scope), self.visit(right_node, scope)
        cost = left.cost + right.cost + 1.0
        if op_node.data == "relation_in":  # each comparison reads at most one element's characters
            cost += right.count + _CHAR * min(right.count * left.length, right.total or right.count * left.length)
        else:
            cost += _CHAR * min(left.length, right.length)
        return Estimate(cost)

    def _addition(self, node: lark.Tree, scope: dict) -> Estimate:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope)
        op_node, right_node = node.children
        left, right = self.visit(op_node.children[0], scope), self.visit(right_node, scope)
        if _scalar(left) or _scalar(right):  # no implicit conversions: numbers (or an error)
            return Estimate(left.cost + right.cost + 1.0)
        length, count = left.length + right.length, left.count + right.count
        elem = _widest(left.element(), right.element()) if (left.elem or right.elem) else None
        return Estimate(left.cost + right.cost + 1.0 + _CHAR * length + count, length, elem,
                        left.total + right.total, count)

    def _expr(self, node: lark.Tree, scope: dict) -> Estimate:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope)
        cond, left, right = (self.visit(child, scope) for child in node.children)
        return replace(_widest(left, right), cost=cond.cost + max(left.cost, right.cost) + 1.0)

    def _member_dot_arg(self, node: lark.Tree, scope: dict) -> Estimate:
        receiver_node, name = node.children[0], node.children[1].value
        arg_nodes = list(node.children[2].children) if len(node.children) == 3 else []
        if name in MACROS and len(arg_nodes) >= 2 and _ident(arg_nodes[0]) is not None:
            return self._comprehension(name, receiver_node, arg_nodes, scope)
        receiver = self.visit(receiver_node, scope)
        args = [self.visit(arg, scope) for arg in arg_nodes]
        namespace = _ident(receiver_node)
        if namespace is not None and namespace not in VARIABLES and namespace not in scope and args:
            return _function(name, args[0], args[1:], arg_nodes[1:])  # strings.quote(s), optional.of(x)
        return _function(name, receiver, args, arg_nodes)

    def _ident_arg(self, node: lark.Tree, scope: dict) -> Estimate:
        name = node.children[0].value
        arg_nodes = list(node.children[1].children) if len(node.children) == 2 else []
        args = [self.visit(arg, scope) for arg in arg_nodes]
        if not args:
            return Estimate(1.0)
        if name == "dyn":
            return args[0]
        return _function(name, args[0], args[1:], arg_nodes[1:])

    _dot_ident_arg = _ident_arg

    def _comprehension(self, name: str, receiver_node: Any, args: list, scope: dict) -> Estimate:
        source = self.visit(receiver_node, scope)
        # both engines stop an evaluation at MAX_ITERATIONS comprehension steps in all
        count = min(source.count, MAX_ITERATIONS / self.outer)
        variable = source.element()
        bound = {**scope, _ident(args[0]): variable}
        # the same element with no size (not a scalar: x + s stays a string concatenation)
        empty = {**scope, _ident(args[0]): replace(variable, length=0.0, total=0.0, count=0.0,
                                                   elem=variable.elem or _SCALAR)}
        outer, self.outer = self.outer, max(self.outer * count, 1.0)
        try:
            bodies = [self.visit(arg, bound) for arg in args[1:]]
            flat = [self.visit(arg, empty) for arg in args[1:]]
        finally:
            self.outer = outer
        per_item = sum(b.cost for b in bodies) + 1.0
        constant = sum(b.cost for b in flat) + 1.0
        # work proportional to the element's size is bounded by the characters of all elements
        linear = per_item - constant
        share = min(count, source.total / variable.length) if variable.length else count
        cost = source.cost + count * constant + linear * share
        if name == "map":  # the results' characters: a part per element, a part that grows with it
            body, small = bodies[-1], flat[-1]
            total = count * small.length + max(body.length - small.length, 0.0) * share
            return Estimate(cost, 0.0, replace(body, cost=0.0), total, count)
        if name == "filter":
            return Estimate(cost, 0.0, variable, source.total, count)
        return Estimate(cost)


def _scalar(estimate: Estimate) -> bool:
    return estimate.length == 0 and estimate.count == 0 and estimate.elem is None


def _flatten(node: lark.Tree) -> list:
    out = []
    for child in node.children:
        if isinstance(child, lark.Tree) and child.data in ("exprlist", "mapinits", "fieldinits"):
            out.extend(_flatten(child))
        else:
            out.append(child)
    return out


def _combine(parts: list[Estimate]) -> Estimate:
    if not parts:
        return Estimate(1.0)
    widest = max(parts, key=lambda p: p.length)
    return replace(widest, cost=sum(p.cost for p in parts) + 1.0)


def _widest(a: Estimate, b: Estimate) -> Estimate:
    elem = None
    if a.elem is not None or b.elem is not None:
        elem = _widest(a.element(), b.element()) if a.elem is not None and b.elem is not None else (a.elem or b.elem)
    return Estimate(max(a.cost, b.cost), max(a.length, b.length), elem, max(a.total, b.total))


def _collection(items: list[Estimate]) -> Estimate:
    cost = sum(i.cost for i in items) + 1.0
    if not items:
        return Estimate(cost)
    elem = items[0]
    for item in items[1:]:
        elem = _widest(elem, item)
    return Estimate(cost, 0.0, replace(elem, cost=0.0), sum(i.length for i in items), float(len(items)))


def _function(name: str, receiver: Estimate, args: list[Estimate], arg_nodes: list) -> Estimate:
    """The estimate of ``receiver.name(args)`` (or ``name(receiver, args)``)."""
    base = receiver.cost + sum(a.cost for a in args) + 1.0
    n = receiver.length
    if name == "split":
        sep = _literal_text(arg_nodes[0]) if arg_nodes else None
        if sep == "":
            return Estimate(base + n * (1 + _CHAR), 0.0, Estimate(0.0, 1.0), n, n)
        pieces = n / len(sep) + 1 if sep else n + 1
        return Estimate(base + pieces + _CHAR * n, 0.0, Estimate(0.0, n), n, pieces)
    if name == "join":
        sep = args[0].length if args else 0.0
        items, elem = receiver.count, receiver.element()
        chars = min(items * elem.length, receiver.total or items * elem.length) + max(items - 1, 0) * sep
        return Estimate(base + items + _CHAR * chars, chars)
    if name == "replace":
        old = _literal_text(arg_nodes[0]) if arg_nodes else None
        new = args[1].length if len(args) > 1 else 0.0
        grows = n / len(old) * max(new - len(old), 0) if old else (n + 1) * new
        length = n + grows
        return Estimate(base + _CHAR * (n + length), length)
    if name == "format":
        values = args[0] if args else Estimate(0.0)
        length = n + values.count * (_FORMAT_CLAUSE + values.element().length)
        return Estimate(base + _CHAR * length, length)
    if name in ("size", "has", "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek",
                "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds"):
        return Estimate(base)
    if name in ("lowerAscii", "upperAscii", "trim", "reverse", "substring", "string", "bytes"):
        return Estimate(base + _CHAR * n, max(n, 32.0))
    if name == "quote":
        return Estimate(base + _CHAR * 2 * n, 2 * n + 2)
    if name == "charAt":
        return Estimate(base + _CHAR * n, 1.0)
    library = _library(name, receiver, args, base)
    if library is not None:
        return library
    traversed = n + sum(a.length for a in args)
    return Estimate(base + _CHAR * traversed + receiver.count)


def _library(name: str, receiver: Estimate, args: list[Estimate], base: float) -> Estimate | None:
    """The gateway library (:mod:`.library`): sets hash every element of both lists,
    base64 traverses and builds about 4/3 of its input, cidr()/ip() give short strings."""
    if name in ("intersects", "equivalent") or (name == "contains" and receiver.count and args):
        lists = [receiver, *args]
        return Estimate(base + sum(e.count + _CHAR * e.total for e in lists))
    if name in ("encode", "decode"):
        n = receiver.length
        length = n * 4 / 3 + 4 if name == "encode" else n * 3 / 4
        return Estimate(base + _CHAR * (n + length), length)
    if name in ("cidr", "ip"):
        return Estimate(base + _CHAR * receiver.length, 64.0)
    return None
