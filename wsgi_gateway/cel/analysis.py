"""The static walk over a parsed rule: its kind, the variable paths it reads, the shared
cost rules and, in strict mode, the type errors visible without data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import lark

from .api import CompileError
from .bounds import MAX_AST_DEPTH, MAX_COMPREHENSION_NESTING
from .literals import decode_literal
from .library import LIBRARY_KINDS
from .shapes import Shapes
from .kinds import (
    ARITHMETIC_OPS, BOOL, BYTES, DOUBLE, DURATION, DYN, INT, LIST, LITERAL_KINDS, MACROS, MAP, NULL, NUMERIC,
    ORDERED, PASS_THROUGH, PREDICATE_MACROS, RELATION_OPS, RETURN_KINDS, STRING, TIMESTAMP, TYPE,
    TYPE_IDENTIFIERS, UINT, VARIABLE_KINDS,
)

_RETURN_KINDS: Final = {**LIBRARY_KINDS, **RETURN_KINDS}
_SIMPLE_KEY: Final = re.compile(r"^[^.\[\]]+$")
#: Paths whose value is always a map of strings (request.headers, request.query).
STRING_MAPS: Final = frozenset({("request", "headers"), ("request", "query")})
_GROWTH_FUNCTIONS: Final = frozenset({"join", "format"})

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
    shapes: Shapes | None = None  # declared variables: their fields are checked, kinds used

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

    def check_kind(self, condition: bool, message: str, node: lark.Tree | lark.Token | None) -> None:
        """A type check on kinds: in strict mode, and whenever shapes are declared (then
        kinds come from the declarations, which cel-cpp's checker sees only as ``dyn``)."""
        if (self.strict or self.shapes is not None) and not condition:
            self.fail(message, node)

    def check_operator(self, condition: bool, message: str, op_node: lark.Tree) -> None:
        """Like :meth:`check_kind`, reporting the position of the operator (as cel-cpp does)."""
        if (self.strict or self.shapes is not None) and not condition:
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
        self.check_kind(cond in (BOOL, DYN) and _unifies(left, right),
                   f"found no matching overload for '_?_:_' applied to '({cond}, {left}, {right})'", node)  # fmt: skip
        return left if left == right else DYN

    def _logic(self, op: str) -> Any:
        def visit(node: lark.Tree, scope: frozenset[str], depth: int) -> str:
            if len(node.children) == 1:
                return self.visit(node.children[0], scope, depth)
            left, right = (self.visit(child, scope, depth) for child in node.children)
            self.check_kind(left in (BOOL, DYN) and right in (BOOL, DYN),
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
        op = RELATION_OPS[op_node.data]
        presence = self._presence(op_node.children[0], right_node, scope) if op == "@in" else None
        if presence is not None:  # 'x-tenant' in request.headers reads one header, not all
            self.paths.add(presence)
            right = MAP
        else:
            right = self.visit(right_node, scope, depth)
        message = f"found no matching overload for '{op}' applied to '({left}, {right})'"
        if op == "@in":
            self.check_operator(right in (LIST, MAP, DYN), message, op_node)
            self._check_key_case(op_node.children[0], right_node, scope)
        elif op in ("_==_", "_!=_"):
            self.check_operator(_unifies(left, right), message, op_node)
        else:
            known = [kind for kind in (left, right) if kind != DYN]
            self.check_operator(all(kind in ORDERED for kind in known) and len(set(known)) <= 1, message, op_node)
        return BOOL

    def _presence(self, key_node: Any, map_node: Any, scope: frozenset[str]) -> tuple[str, ...] | None:
        """The path of ``'k' in m`` when ``m`` is one of the variables' maps of strings
        (:data:`STRING_MAPS`) and ``k`` a simple literal: the result depends only on that
        entry, so the memo keys on it (for a list, or an open map, it would not)."""
        key = _string_literal(key_node)
        path = _path(map_node, scope)
        if key is None or path not in STRING_MAPS or not _SIMPLE_KEY.match(key):
            return None
        return (*path, key)

    def _check_key_case(self, key_node: lark.Tree, map_node: lark.Tree, scope: frozenset[str]) -> None:
        """``'X-Tenant' in request.headers``: a key with capitals in a map whose keys are
        declared lower-case can never be found."""
        key, path = _string_literal(key_node), _path(map_node, scope)
        if self.shapes is None or key is None or path is None or key == key.lower():
            return
        shape, _, _ = self.shapes.resolve(path)
        if shape is not None and shape.lower_keys:
            self.fail(f"{'.'.join(path)} names are lower-case, so {key!r} is never in it; "
                      f"did you mean {key.lower()!r}?", key_node)

    def _arithmetic(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        if len(node.children) == 1:
            return self.visit(node.children[0], scope, depth)
        op_node, right_node = node.children
        left = self.visit(op_node.children[0], scope, depth)
        right = self.visit(right_node, scope, depth)
        op = ARITHMETIC_OPS[op_node.data]
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
            self.check_kind(operand in (BOOL, DYN), f"found no matching overload for '!_' applied to '({operand})'", node)
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
        if self.shapes is not None:
            shape, reason, depth = self.shapes.resolve(path)
            if reason is not None:
                self.fail(reason, _segment_node(node, len(path) - 1 - depth))
            if shape is not None:
                return shape.kind
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
        if name == "format" and namespace not in self.namespaces:
            problem = format_problem(receiver)
            if problem is not None:
                self.fail(problem, name_token)
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
        if name in PREDICATE_MACROS or (name == "map" and len(body) == 2):
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
        return LITERAL_KINDS.get(token.type, DYN)

    def _paren_expr(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        return self.visit(node.children[0], scope, depth)

    def _list_lit(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            self.visit(child, scope, depth)
        return LIST

    def _map_lit(self, node: lark.Tree, scope: frozenset[str], depth: int) -> str:
        for child in node.children:
            if isinstance(child, lark.Tree) and child.data == "mapinits":
                for key in child.children[::2]:
                    kind = self.visit(key, scope, depth)
                    if kind in (DOUBLE, NULL):  # cel-cpp: "Invalid map key type"; cel-python took it
                        self.fail(f"a map key may not be a {kind}", key)
                for value in child.children[1::2]:
                    self.visit(value, scope, depth)
            else:
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
        escape = match.group(0)
        if escape[1] in "uU":
            code = int(escape[2:], 16)
            # cel-cpp refuses \u in bytes and surrogates or values past U+10FFFF anywhere
            if "b" in prefix.lower() or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                return escape
        position = match.end()
    return None


_PRECISION: Final = re.compile(r"%\.(\d+)")
#: The largest ``format`` precision both engines accept (cel-python's strings extension).
MAX_FORMAT_PRECISION: Final = 100


def format_problem(receiver: Any) -> str | None:
    """Why a ``format()`` call is refused (both engines): a template that is not a string
    literal (its clauses, and so its cost, are unknown at load), or a precision over
    :data:`MAX_FORMAT_PRECISION` (cel-python refuses it, cel-cpp would build it)."""
    template = _string_literal(receiver)
    if template is None:
        return "format() needs a string literal as its template"
    for match in _PRECISION.finditer(template):
        if int(match.group(1)) > MAX_FORMAT_PRECISION:
            return f"format() precision {match.group(1)} is over {MAX_FORMAT_PRECISION}"
    return None


def _unifies(left: str, right: str) -> bool:
    """Whether two static kinds may be compared for equality (or be the two branches
    of ``?:``): the same kind, or one not known."""
    return left == right or DYN in (left, right)


def _arithmetic_kind(op: str, left: str, right: str) -> str | None:
    """The kind of ``left op right``, DYN when unknown, None when it is a type error."""
    if DYN in (left, right):
        known = right if left == DYN else left
        if op == "_+_" and known in (NUMERIC | {STRING, BYTES, LIST}):
            return known
        if op in ("_*_", "_/_", "_%_", "_-_") and known in NUMERIC:
            return known
        return DYN
    if op == "_+_":
        if left == right and left in (NUMERIC | {STRING, BYTES, LIST, DURATION}):
            return left
        if {left, right} == {TIMESTAMP, DURATION}:
            return TIMESTAMP
        return None
    if op == "_-_":
        if left == right and left in (NUMERIC | {DURATION}):
            return left
        if left == TIMESTAMP and right in (TIMESTAMP, DURATION):
            return DURATION if right == TIMESTAMP else TIMESTAMP
        return None
    if op == "_%_":
        return left if left == right and left in (INT, UINT) else None
    return left if left == right and left in NUMERIC else None


def _descend(node: Any) -> Any:
    """Skip the pass-through nodes of a sub-expression."""
    while isinstance(node, lark.Tree) and node.data in PASS_THROUGH and len(node.children) == 1:
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
                value = decode_literal(token.value)
                return value if isinstance(value, str) else None
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


def _segment_node(node: lark.Tree, up: int) -> lark.Tree | lark.Token:
    """The field name (or index) token of the select ``up`` levels inside ``node``."""
    for _ in range(up):
        node = _descend(node).children[0]
    node = _descend(node)
    target = node.children[1]
    if isinstance(target, lark.Tree):  # an index: point inside the quotes
        literal = _descend(target)
        token = literal.children[0] if isinstance(literal, lark.Tree) and literal.children else None
        if isinstance(token, lark.Token) and token.column:
            return lark.Token("KEY", "", line=token.line, column=token.column + 1)
    return target


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
    shapes: Shapes | None = None,
) -> Analysis:
    """Walk a parsed expression: its static kind, its references; CompileError for the
    shared cost rules and, when ``strict``, for undeclared names and visible type errors."""
    if _tree_depth(tree) > MAX_AST_DEPTH:
        raise CompileError(f"expression nested too deeply (more than {MAX_AST_DEPTH} syntax levels)")
    walk = _Walk(strict=strict, functions=functions, namespaces=namespaces or {}, shapes=shapes)
    kind = walk.visit(tree, frozenset(), 0)
    return Analysis(kind=kind, references=_minimal(walk.paths), variables=frozenset(p[0] for p in walk.paths))


