"""The string_ext conformance cases through the gateway's two engines.

``test_cel_string_ext.py`` proves :data:`STRING_EXT_FUNCTIONS` against cel-python
directly; this module runs the same 216 cases through the engine seam, as rules run in
the gateway: ``get_engine("cel-cpp")`` (cel-expr-python with its own ``ExtStrings``) and
``get_engine("cel-python")`` (cel-python with the extension and the engine's
replacements: operators, macros, size caps). The cases, the ``42.charAt`` rewrite and the
skip list come from ``test_cel_string_ext.py``.

How the cases are adapted:

* The engines only know the gateway's variables, so the one variable of the data,
  ``str_var`` (7 cases), is bound as ``request.str_var``.
* Results come back as plain Python, so ``int`` and ``uint`` cannot be told apart (no
  case expects a ``uint``); every other type must match exactly.
* An expected error is met by an :class:`EvalError` or by a :class:`CompileError` (cel-cpp's
  checker finds wrong argument types at compile time), but not by "undeclared reference"
  to the function under test: cel-cpp says that for a call with a wrong number of
  arguments, which counts only for the functions ``test_every_function_exists`` proves
  present.

Skipped, each with its reason printed by ``pytest -ra``:

* the 3 cases that build a protobuf message (``cel.expr.conformance.proto3.TestAllTypes``):
  the gateway declares no message types, so both engines refuse them at compile time and
  that proves nothing about ``format()``;
* on cel-python only, the cases listed in ``test_cel_string_ext.SKIPS`` (cel-python cannot
  build a map holding both ``1`` and ``true`` as keys; cel-cpp runs them);
* on cel-cpp, everything when cel-expr-python is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wsgi_gateway.cel import CompileError, Engine, EngineUnavailable, EvalError, get_engine
from wsgi_gateway.cel.parse import mask_strings


def _base_module() -> ModuleType:
    """``test_cel_string_ext`` (already imported by pytest, or loaded from its path)."""
    module = sys.modules.get("test_cel_string_ext")
    if module is None:
        path = Path(__file__).with_name("test_cel_string_ext.py")
        spec = importlib.util.spec_from_file_location("test_cel_string_ext", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["test_cel_string_ext"] = module
        spec.loader.exec_module(module)
    return module


BASE = _base_module()
CASES: list[dict[str, Any]] = BASE.CASES
ENGINE_NAMES = ("cel-python", "cel-cpp")
PROTO_REASON = (
    "builds a protobuf message (cel.expr.conformance.proto3.TestAllTypes); the gateway declares no message"
    " types, so both engines refuse the expression at compile time, which proves nothing about format()"
)
VARIABLE = re.compile(r"(?<![\w.])str_var\b")


def plain(typed: dict[str, Any]) -> Any:
    """A typed value of the data as the engines return it (plain Python)."""
    kind, raw = typed["type"], typed.get("value")
    if kind == "double":
        return float(raw)
    if kind in ("int", "uint"):
        return int(raw)
    if kind in ("bool", "string"):
        return raw
    raise ValueError(f"no case expects a {kind}: {typed!r}")  # only string, bool, int occur


def same(actual: Any, expected: Any) -> bool:
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return bool(actual == expected)


def run(engine: Engine, case: dict[str, Any]) -> tuple[str, Any]:
    """``("value", v)``, ``("error", message)`` or ``("compile error", message)``."""
    expr = case["expr"]
    if engine.name == "cel-python" and BASE.INT_RECEIVER.match(expr):
        expr = BASE.INT_RECEIVER.sub(r"(\1).", expr)  # cel-python's lexer reads "42." as a double
    values: dict[str, Any] = {}
    if case.get("bindings"):
        assert set(case["bindings"]) == {"str_var"}, case["bindings"]
        expr = _replace_variable(expr, mask_strings(expr))
        values["request"] = {"str_var": plain(case["bindings"]["str_var"])}
    try:
        program = engine.compile(expr)
    except CompileError as ex:
        return "compile error", ex.message
    try:
        return "value", program.evaluate({name: engine.convert(value) for name, value in values.items()})
    except EvalError as ex:
        return "error", ex.message


def _replace_variable(expr: str, masked: str) -> str:
    """``str_var`` → ``request.str_var`` outside string literals."""
    out, last = [], 0
    for match in VARIABLE.finditer(masked):
        out.append(expr[last : match.start()])
        out.append("request.str_var")
        last = match.end()
    out.append(expr[last:])
    return "".join(out)


# Well-formed calls of every function of the extension: each must compile on both engines
# (test_every_function_exists), so that "undeclared reference to 'indexOf'" from cel-cpp's
# checker for a call with a wrong number of arguments is known to mean "no overload".
WELL_FORMED_CALLS: dict[str, str] = {
    "charAt": "'a'.charAt(0)",
    "indexOf": "'a'.indexOf('a')",
    "lastIndexOf": "'a'.lastIndexOf('a')",
    "lowerAscii": "'a'.lowerAscii()",
    "upperAscii": "'a'.upperAscii()",
    "replace": "'a'.replace('a', 'b')",
    "split": "'a'.split(',')",
    "substring": "'a'.substring(0)",
    "trim": "'a'.trim()",
    "join": "['a'].join()",
    "reverse": "'a'.reverse()",
    "format": "'%s'.format(['a'])",
    "strings.quote": "strings.quote('a')",
}
UNDECLARED = re.compile(r"undeclared reference to '([\w.]+)'")


def outcome_matches(outcome: tuple[str, Any], expected: dict[str, Any]) -> bool:
    status, result = outcome
    if "error" in expected:
        if status == "compile error":
            missing = UNDECLARED.search(str(result))
            return missing is None or missing.group(1) in WELL_FORMED_CALLS  # a wrong arity
        return status == "error" and "undeclared reference" not in str(result)
    return status == "value" and same(result, plain(expected["value"]))


def params() -> list[Any]:
    out = []
    for name in ENGINE_NAMES:
        for case in CASES:
            reason = PROTO_REASON if case.get("needs_proto") else None
            if reason is None and name == "cel-python":
                reason = BASE.SKIPS.get(case["id"])
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            out.append(pytest.param(name, case, id=f"{name}:{case['id']}", marks=marks))
    return out


# format() with a template that is not a literal is refused at load on both engines (its
# precision, and so its cost, would be unknown: '%.100000000f' from a header would make
# cel-cpp build a 100 MB string); these cases format a variable's template.
REFUSED_AT_LOAD = re.compile(r"(?<![\w.'\"])str_var\.format\(")


@pytest.mark.parametrize(("engine_name", "case"), params())
def test_conformance_through_the_engine(engine_name: str, case: dict[str, Any]) -> None:
    try:
        engine = get_engine(engine_name)
    except EngineUnavailable as ex:
        pytest.skip(f"cel-cpp engine not available: {ex}")
    accepted = [case["expected"], *case.get("also_accepted", [])]
    outcome = run(engine, case)
    if REFUSED_AT_LOAD.search(case["expr"]):
        assert outcome[0] == "compile error" and "literal" in str(outcome[1]), outcome
        return
    assert any(outcome_matches(outcome, expected) for expected in accepted), (
        f"{engine_name}: {case['expr']!r}: got {outcome!r}, expected one of {accepted!r}"
    )


@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
@pytest.mark.parametrize("call", WELL_FORMED_CALLS.values())
def test_every_function_exists(engine_name: str, call: str) -> None:
    try:
        engine = get_engine(engine_name)
    except EngineUnavailable as ex:
        pytest.skip(f"cel-cpp engine not available: {ex}")
    assert not isinstance(engine.compile(call).evaluate({}), BaseException)


def test_every_case_is_run_or_skipped_with_a_reason() -> None:
    assert len(CASES) == 216
    proto = [case["id"] for case in CASES if case.get("needs_proto")]
    assert len(proto) == 3 and all("TestAllTypes" in case["expr"] for case in CASES if case.get("needs_proto"))
    assert sum(1 for case in CASES if case.get("bindings")) == 7
