"""Running a cel-spec conformance case through the gateway's engine seam.

The engines only know the gateway's variables, so a case's variable ``x`` is bound as
``request.x`` (outside string literals); a case whose variables are qualified names
(``a.b``, ``com.example.y``) or that needs a container cannot be expressed and counts as
not passed. Results are plain Python, so ``int`` and ``uint`` cannot be told apart.
Works with the old module layout too (``wsgi_gateway.policy.engine``), so that counts
before and after a change use the same rules.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import re
from pathlib import Path
from typing import Any

try:
    from wsgi_gateway.cel import CompileError, EvalError
    from wsgi_gateway.cel.parse import mask_strings
except ImportError:  # the layout before wsgi_gateway/cel/
    from wsgi_gateway.policy.engine import CompileError, EvalError, mask_strings

CASES_PATH = Path(__file__).resolve().parents[1] / "data" / "cel_conformance" / "cases.json"
_SIMPLE = re.compile(r"^[A-Za-z_]\w*$")
_RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
             "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}


def load_cases() -> list[dict[str, Any]]:
    return json.loads(CASES_PATH.read_text())


def plain(typed: dict[str, Any]) -> Any:
    """A typed value of the data as plain Python (what the engines take and return)."""
    kind, raw = typed["type"], typed.get("value")
    if kind == "null":
        return None
    if kind == "double":
        return float(raw)
    if kind in ("int", "uint"):
        return int(raw)
    if kind == "bytes":
        return base64.b64decode(raw)
    if kind == "list":
        return [plain(item) for item in raw]
    if kind == "map":
        return {plain(key): plain(value) for key, value in raw}
    if kind == "timestamp":
        return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")[:26] + "+00:00"
                                               if "." in raw else raw.replace("Z", "+00:00"))
    if kind == "duration":
        return datetime.timedelta(seconds=float(raw.rstrip("s")))
    if kind == "type":
        return ("type", raw)
    return raw


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, float):
        return isinstance(actual, float) and (actual == expected or (math.isnan(expected) and math.isnan(actual)))
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and len(actual) == len(expected)
                and all(k in actual and same(actual[k], v) for k, v in expected.items()))
    return type(actual) is type(expected) and actual == expected


def expressible(case: dict[str, Any]) -> bool:
    names = case.get("bindings") or {}
    return not case.get("container") and all(_SIMPLE.match(n) and n not in _RESERVED for n in names)


def run(engine, case: dict[str, Any]) -> tuple[str, Any]:
    """``("value", v)``, ``("error", message)``, ``("compile error", message)`` or
    ``("inexpressible", reason)``."""
    if not expressible(case):
        return "inexpressible", "qualified variable names or a container"
    expr = case["expr"]
    names = case.get("bindings") or {}
    for name in names:
        expr = _rename(expr, name)
    try:
        program = engine.compile(expr)
    except CompileError as ex:
        return "compile error", ex.message
    values = {"request": {name: plain(value) for name, value in names.items()}} if names else {}
    try:
        return "value", program.evaluate({k: engine.convert(v) for k, v in values.items()})
    except EvalError as ex:
        return "error", ex.message
    except TypeError as ex:  # a binding the converter does not take (a timestamp in a map)
        return "error", str(ex)


def passed(outcome: tuple[str, Any], case: dict[str, Any]) -> bool:
    status, result = outcome
    expected = case["expected"]
    accepted = [expected, *case.get("also_accepted", [])]
    for wanted in accepted:
        if "error" in wanted and status in ("error", "compile error"):
            return True
        if "value" in wanted and status == "value" and same(result, plain(wanted["value"])):
            return True
    return False


def agree(left: tuple[str, Any], right: tuple[str, Any]) -> bool:
    """Whether two engines' outcomes mean the same (error messages aside)."""
    errors = ("error", "compile error")
    if left[0] in errors and right[0] in errors:
        return True
    return left[0] == right[0] == "value" and same(left[1], right[1]) or left == right


def _rename(expr: str, name: str) -> str:
    masked = mask_strings(expr)
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\b(?!\s*\()")
    out, last = [], 0
    for match in pattern.finditer(masked):
        out.append(expr[last:match.start()])
        out.append(f"request.{name}")
        last = match.end()
    out.append(expr[last:])
    return "".join(out)
