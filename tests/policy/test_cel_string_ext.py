"""The CEL strings extension against the cel-spec conformance cases, plus edge cases.

Every case of ``tests/data/cel_conformance/string_ext.json`` is compiled and evaluated
by cel-python with :data:`STRING_EXT_FUNCTIONS`; the typed JSON values of the data are
converted to cel-python values here and results are compared with CEL's strict typing
(an ``int`` never equals a ``uint`` or a ``double``; NaN matches NaN).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
from celpy import celtypes

from wsgi_gateway.cel.celpy_strings import STRING_EXT_FUNCTIONS

DATA = Path(__file__).resolve().parents[1] / "data" / "cel_conformance" / "string_ext.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))

# Cases cel-python cannot express at all; each is skipped with this reason.
SKIPS = {
    "string_ext/format/map support (all key types)": (
        "cel-python 0.5.0 cannot build a map holding both 1 and true as keys: they hash alike"
        " and IntType.__eq__ raises TypeError for a bool (celpy/celtypes.py:253 and :653), so the map literal"
        " is an error before format() runs; covered by test_format_map_with_every_key_type"
    ),
}

# cel-python's lexer reads ``42.`` as a double literal (FLOAT_LIT, celpy/cel.lark:135), so
# ``42.charAt(2)`` does not parse and ``24.indexOf('2')`` parses as ``24. in dexOf('2')``.
# For these cases the test also evaluates the receiver in parentheses, ``(42).charAt(2)``.
INT_RECEIVER = re.compile(r"^(\d+)\.(?=[A-Za-z_])")


class MessageStandIn(celtypes.MessageType):
    """Stand-in for the conformance protobuf message (the cases only build an empty one)."""

    __test__ = False

    def __init__(self, *_fields: Any) -> None:
        super().__init__()


ENV = celpy.Environment(annotations={"cel.expr.conformance.proto3.TestAllTypes": MessageStandIn})


# --- typed JSON values -> cel-python values ------------------------------------------

TYPE_NAMES: Mapping[str, type] = {
    "bool": celtypes.BoolType,
    "int": celtypes.IntType,
    "uint": celtypes.UintType,
    "double": celtypes.DoubleType,
    "string": celtypes.StringType,
    "bytes": celtypes.BytesType,
    "list": celtypes.ListType,
    "map": celtypes.MapType,
    "null_type": type(None),
    "type": celtypes.TypeType,
    "google.protobuf.Timestamp": celtypes.TimestampType,
    "google.protobuf.Duration": celtypes.DurationType,
}


def cel_value(typed: Mapping[str, Any]) -> Any:
    """Convert one typed JSON value of the conformance data to a cel-python value."""
    kind, raw = typed["type"], typed.get("value")
    if kind == "null":
        return None
    if kind == "bool":
        return celtypes.BoolType(raw)
    if kind == "int":
        return celtypes.IntType(raw)
    if kind == "uint":
        return celtypes.UintType(raw)
    if kind == "double":
        return celtypes.DoubleType(float(raw))  # float() reads "NaN", "Infinity", "-Infinity"
    if kind == "string":
        return celtypes.StringType(raw)
    if kind == "bytes":
        return celtypes.BytesType(base64.b64decode(raw))
    if kind == "list":
        return celtypes.ListType([cel_value(item) for item in raw])
    if kind == "map":
        return celtypes.MapType({cel_value(key): cel_value(value) for key, value in raw})
    if kind == "timestamp":
        return celtypes.TimestampType(raw)
    if kind == "duration":
        return celtypes.DurationType(raw)
    if kind == "type":
        return TYPE_NAMES[raw]
    raise ValueError(f"unknown typed value {typed!r}")


# --- CEL equality with strict types --------------------------------------------------

KINDS: tuple[tuple[type, str], ...] = (
    (celtypes.BoolType, "bool"),
    (celtypes.UintType, "uint"),
    (celtypes.IntType, "int"),
    (celtypes.DoubleType, "double"),
    (celtypes.StringType, "string"),
    (celtypes.BytesType, "bytes"),
    (celtypes.ListType, "list"),
    (celtypes.MapType, "map"),
    (celtypes.TimestampType, "timestamp"),
    (celtypes.DurationType, "duration"),
)


def cel_kind(value: Any) -> str:
    """The CEL type of a cel-python value; plain Python values are not CEL values."""
    if value is None:
        return "null"
    if isinstance(value, type):
        return "type"
    for cls, kind in KINDS:
        if isinstance(value, cls):
            return kind
    return f"not a CEL value: {type(value).__name__}"


def cel_equal(actual: Any, expected: Any) -> bool:
    """CEL equality, except that the types must match exactly and NaN equals NaN."""
    kind = cel_kind(actual)
    if kind != cel_kind(expected):
        return False
    if kind == "double":
        return (math.isnan(actual) and math.isnan(expected)) or actual == expected
    if kind == "list":
        return len(actual) == len(expected) and all(map(cel_equal, actual, expected))
    if kind == "map":
        return len(actual) == len(expected) and all(
            any(cel_equal(k, key) and cel_equal(v, value) for k, v in actual.items())
            for key, value in expected.items()
        )
    if kind == "type":
        return actual is expected
    return bool(actual == expected)


# --- running a case ------------------------------------------------------------------


def evaluate(expr: str, bindings: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    """``("value", v)``, ``("error", message)`` or ``("parse error", message)``.

    Any other exception escapes and fails the test.
    """
    try:
        ast = ENV.compile(expr)
    except celpy.CELParseError as ex:
        return "parse error", str(ex)
    program = ENV.program(ast, functions=STRING_EXT_FUNCTIONS)
    try:
        return "value", program.evaluate(dict(bindings or {}))
    except celpy.CELEvalError as ex:
        return "error", str(ex.args[0]) if ex.args else ""


def outcome_matches(outcome: tuple[str, Any], expected: Mapping[str, Any]) -> bool:
    status, result = outcome
    if "error" in expected:
        # Any error will do, but not "the function is missing".
        return status == "error" and "undeclared reference" not in result
    return status == "value" and cel_equal(result, cel_value(expected["value"]))


def conformance_params() -> list[Any]:
    params = []
    for case in CASES:
        skip = SKIPS.get(case["id"])
        marks = [pytest.mark.skip(reason=skip)] if skip else []
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", conformance_params())
def test_conformance(case: dict[str, Any]) -> None:
    bindings = {name: cel_value(typed) for name, typed in case.get("bindings", {}).items()}
    accepted = [case["expected"], *case.get("also_accepted", [])]
    int_receiver = INT_RECEIVER.match(case["expr"])
    expr = INT_RECEIVER.sub(r"(\1).", case["expr"]) if int_receiver else case["expr"]

    outcome = evaluate(expr, bindings)

    assert any(outcome_matches(outcome, expected) for expected in accepted), (
        f"{case['expr']!r}: got {outcome!r}, expected one of {accepted!r}"
    )
    if int_receiver:
        # The unparenthesised expression must still not produce a value.
        assert evaluate(case["expr"], bindings)[0] != "value"


def test_all_cases_loaded() -> None:
    assert len(CASES) == 216
    assert {case["file"] for case in CASES} == {"string_ext"}


# --- hand-written edge cases ---------------------------------------------------------

ERROR = object()  # the expected outcome "an evaluation error"
NO_OVERLOAD = "no such overload"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param(
            "'héllo'.charAt(5) == '' && 'héllo'.charAt(1) == 'é'", True, id="charAt-len-is-empty"
        ),
        pytest.param("'héllo'.charAt(6)", ERROR, id="charAt-len-plus-one-errors"),
        pytest.param(
            "'😀a😀'.indexOf('a') == 1 && '😀a😀'.lastIndexOf('😀') == 2"
            " && '😀a😀'.substring(1, 2) == 'a'",
            True,
            id="indices-count-code-points",
        ),
        pytest.param(
            "'abc'.indexOf('', 2) == 2 && 'abc'.lastIndexOf('') == 3 && ''.lastIndexOf('a') == -1",
            True,
            id="empty-needle-and-empty-haystack",
        ),
        pytest.param(
            "'a,b,c'.split(',', 0) == [] && 'a,b,c'.split(',', -5) == ['a', 'b', 'c']"
            " && 'a,b,c'.split(',', 2) == ['a', 'b,c'] && ''.split(',') == ['']",
            True,
            id="split-limits",
        ),
        pytest.param(
            "'abc'.split('') == ['a', 'b', 'c'] && 'abc'.split('', 2) == ['a', 'bc'] && ''.split('') == ['']",
            True,
            id="split-empty-separator-like-cel-cpp",  # Go gives [] for ''.split(''); cel-cpp ['']
        ),
        pytest.param(
            "'aaa'.replace('a', 'b', 0) == 'aaa' && 'aaa'.replace('a', 'b', -1) == 'bbb'"
            " && 'ab'.replace('', '-') == '-a-b-'",
            True,
            id="replace-limits-and-empty-needle",
        ),
        pytest.param(
            "'\\x1c\\u00a0text\\u3000\\x1f'.trim() == '\\x1c\\u00a0text\\u3000\\x1f'"
            " && '\\u00a0text\\u3000'.trim() == 'text'",
            True,
            id="trim-is-white-space-not-python-isspace",
        ),
        pytest.param(
            "'İIàA'.lowerAscii() == 'İiàa' && 'ßsÿ'.upperAscii() == 'ßSÿ'", True, id="ascii-case-only"
        ),
        pytest.param("(42).charAt(2)", NO_OVERLOAD, id="int-receiver"),
        pytest.param("'abc'.charAt(1u)", NO_OVERLOAD, id="uint-index-is-not-int"),
        pytest.param("'abc'.substring(1.0)", NO_OVERLOAD, id="double-index-is-not-int"),
        pytest.param("['a', 'b'].join(1)", NO_OVERLOAD, id="join-separator-type"),
        pytest.param("['a', 1].join()", ERROR, id="join-non-string-element"),
        pytest.param("'x'.quote()", NO_OVERLOAD, id="quote-is-not-a-method"),
        pytest.param("quote('x')", NO_OVERLOAD, id="quote-needs-the-namespace"),
        pytest.param(
            "strings.quote('a\"b\\\\c\\n') == '\"a\\\\\"b\\\\\\\\c\\\\n\"'", True, id="quote-escapes"
        ),
        pytest.param("'abc'.charAt(1 / 0)", ERROR, id="argument-error-propagates"),
        pytest.param("'%s'.format([{'k': 1 / 0}])", ERROR, id="error-inside-map-propagates"),
        pytest.param(
            "'%d|%s|%s|%x|%b|%o'.format([3.5, 1e21, -0.0, -255, -5, 8u])"
            " == '3.5|1000000000000000000000|-0|-ff|-101|10'",
            True,
            id="format-numbers-like-go",
        ),
        pytest.param(
            "'%s %s %s'.format([duration('-1.5s'), timestamp('2024-01-02T03:04:05.120+01:00'), type(1u)])"
            " == '-1.5s 2024-01-02T02:04:05.12Z uint'",
            True,
            id="format-duration-timestamp-type",
        ),
        pytest.param(
            "'%.2f|%.0e'.format([2.675, 15.0])", "2.67|2e+01", id="format-rounds-exact-binary-value"
        ),
        pytest.param("'50%'.format([1])", ERROR, id="format-trailing-percent"),
        pytest.param("'%.f'.format([1.0])", ERROR, id="format-empty-precision"),
        pytest.param("'%5d'.format([1])", ERROR, id="format-width-unsupported"),
        pytest.param("'%.1000f'.format([1.0])", ERROR, id="format-precision-capped"),
        pytest.param("'%d %d'.format([1])", ERROR, id="format-missing-argument"),
    ],
)
def test_edge_cases(expr: str, expected: Any) -> None:
    status, result = evaluate(expr)
    if expected is ERROR:
        assert status == "error", (expr, status, result)
        assert "undeclared reference" not in result
    elif expected == NO_OVERLOAD:
        assert (status, result) == ("error", NO_OVERLOAD)
    elif isinstance(expected, bool):
        assert status == "value" and cel_equal(result, celtypes.BoolType(expected)), (expr, status, result)
    else:
        assert status == "value" and cel_equal(result, celtypes.StringType(expected)), (expr, status, result)


class PairMap(Mapping[Any, Any]):
    """A mapping that holds keys cel-python's MapType cannot hold together (1 and true)."""

    def __init__(self, *pairs: tuple[Any, Any]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: Any) -> Any:
        for k, v in self._pairs:
            if type(k) is type(key) and k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


def test_format_map_with_every_key_type() -> None:
    """The skipped conformance case, with the map built outside cel-python."""
    value = PairMap(
        (celtypes.IntType(1), celtypes.StringType("value1")),
        (celtypes.UintType(2), celtypes.StringType("value2")),
        (celtypes.BoolType(True), celtypes.DoubleType(math.nan)),
    )
    result = STRING_EXT_FUNCTIONS["format"](celtypes.StringType("%s"), celtypes.ListType([value]))
    assert cel_equal(result, celtypes.StringType("{1: value1, 2: value2, true: NaN}"))


def test_strings_variable_shadows_the_namespace() -> None:
    """Documented limitation: a variable named ``strings`` hides ``strings.quote``."""
    assert evaluate("strings.quote('a')", {"strings": celtypes.StringType("x")}) == ("error", NO_OVERLOAD)
    assert evaluate("strings.quote('a')") == ("value", celtypes.StringType('"a"'))
