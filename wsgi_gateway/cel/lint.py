"""Lint helpers on the parsed expression tree (the rule layer words the warnings).

:func:`unguarded_reads`: where an expression reads a path (``claims.email``) without
another (``claims.email_verified``) guarding that read, judged on the tree: the guard
counts when it is the other side of an ``&&`` with the read, or the condition of a
``?:`` whose *true* branch holds the read. ``claims.email_verified || claims.email ...``
and a check in some other rule do not count.
"""

from __future__ import annotations

import lark

from .analysis import _descend, _path
from .api import CompileError
from .parse import parse, without_optional_syntax


def unguarded_reads(source: str, target: str, guard: str) -> list[tuple[int, int]]:
    """1-based (line, column) of each read of ``target`` no read of ``guard`` guards."""
    try:
        tree = parse(without_optional_syntax(source))
    except CompileError:
        return []
    want, check = tuple(target.split(".")), tuple(guard.split("."))
    found: list[tuple[int, int]] = []
    _walk(tree, False, want, check, found)
    return found


def _asserts(node, path: tuple[str, ...]) -> bool:
    """Whether ``node`` being true means ``path`` is true: the path itself, ``path ==
    true``, or a conjunction with one of those (not ``||``, not ``!``)."""
    node = _descend(node)
    if not isinstance(node, lark.Tree):
        return False
    if node.data in ("member_dot", "member_index"):
        return _path(node, frozenset()) == path
    if node.data == "conditionaland":
        return any(_asserts(child, path) for child in node.children)
    if node.data == "relation" and len(node.children) == 2 and node.children[0].data == "relation_eq":
        left, right = node.children[0].children[0], node.children[1]
        return (_asserts(left, path) and _is_true(right)) or (_is_true(left) and _asserts(right, path))
    return False


def _is_true(node) -> bool:
    node = _descend(node)
    return (isinstance(node, lark.Tree) and node.data == "literal"
            and getattr(node.children[0], "value", None) == "true")


def _walk(node, guarded: bool, want, check, found: list) -> None:
    if not isinstance(node, lark.Tree):
        return
    if node.data == "ident_arg" and node.children[0].value == "has":
        return  # a presence test reads no value
    if node.data in ("member_dot", "member_index") and _path(node, frozenset()) == want:
        if not guarded:
            found.append((node.meta.line, node.meta.column) if not node.meta.empty else (1, 1))
        return
    children = node.children
    if node.data == "conditionaland" and len(children) == 2:
        left, right = children
        _walk(left, guarded or _asserts(right, check), want, check, found)
        _walk(right, guarded or _asserts(left, check), want, check, found)
    elif node.data == "expr" and len(children) == 3:
        cond, yes, no = children
        _walk(cond, guarded, want, check, found)
        _walk(yes, guarded or _asserts(cond, check), want, check, found)
        _walk(no, guarded, want, check, found)
    else:
        for child in children:
            _walk(_descend(child) if isinstance(child, lark.Tree) else child, guarded, want, check, found)
