"""Authentication methods by id: how each one's options parse and how it is built.

An API's ``auth`` list names methods by id, either plainly (``keyless``) or as a
mapping with options (``{method: apikey, header: X-Key}``). Each method registers
a frozen options dataclass and a factory; options are validated when the config loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config.model import AuthMethodConfig
from ..config.typed import Invalid, Where, build_dataclass, did_you_mean
from .base import Authenticator


@dataclass(frozen=True)
class Method:
    """A registered authentication method."""

    id: str
    options: type                                   # a frozen dataclass of its options
    factory: Callable[[Any, Any, Any], Authenticator]  # (options, BuildContext, ApiConfig)


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make ``method`` available to configs under its id."""
    if method.id in _METHODS:
        raise ValueError(f"authentication method {method.id!r} is registered twice")
    _METHODS[method.id] = method
    return method


def get_method(method_id: str) -> Method:
    """The registered method ``method_id``; KeyError when unknown."""
    _load_builtins()
    return _METHODS[method_id]


def parse_method(node: object, where: Where) -> AuthMethodConfig:
    """One ``auth`` entry, validated against its method's options."""
    _load_builtins()
    if isinstance(node, str):
        method_id, options_node = node, {}
    elif isinstance(node, dict) and isinstance(node.get("method"), str):
        method_id = node["method"]
        options_node = type(node)((k, v) for k, v in node.items() if k != "method")
        options_node.line, options_node.lines = getattr(node, "line", 0), getattr(node, "lines", {})
        options_node.marks = getattr(node, "marks", {})
    else:
        where.problem("expected a method id (keyless, ...) or a mapping with 'method'")
        raise Invalid
    if method_id not in _METHODS:
        where.problem(f"unknown authentication method {method_id!r}"
                      f"{did_you_mean(method_id, _METHODS)}; "
                      f"known: {', '.join(sorted(_METHODS))}")
        raise Invalid
    options = build_dataclass(_METHODS[method_id].options, options_node, where)
    return AuthMethodConfig(method_id, options)


def _load_builtins() -> None:
    """Import the built-in methods so they register themselves."""
    from . import apikey, basic, custom, introspection, keyless, mtls, signatures  # noqa: F401
    from .jwt import method  # noqa: F401
    from .oidc_login import method as _oidc_login  # noqa: F401
