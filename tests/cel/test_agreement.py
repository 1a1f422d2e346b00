"""The engine differences the issue quotes: each is now the same on both engines, or
refused at load on both."""

from __future__ import annotations

import math

import pytest

from wsgi_gateway.cel import CompileError, EvalError, get_engine

ENGINES = ["cel-python", "cel-cpp"]


def _outcome(engine: str, source: str):
    try:
        program = get_engine(engine).compile(source)
    except CompileError:
        return "refused at load"
    try:
        value = program.evaluate({})
    except EvalError:
        return "error"
    return "nan" if isinstance(value, float) and math.isnan(value) else value


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("0.0/0.0", "nan", id="0.0/0.0 is NaN (was inf on cel-python)"),
    pytest.param("-1.0/0.0", -math.inf, id="-1.0/0.0 is -inf"),
    pytest.param("0.0/0.0 == 0.0/0.0", False, id="NaN is not equal to itself"),
    pytest.param("'a\\?'", "a?", id="escape \\? is ?"),
    pytest.param("'\\X41'", "A", id="escape \\X41 is A"),
    pytest.param("'''a\nb'''", "a\nb", id="raw newline in a triple-quoted string"),
    pytest.param("'''a\r\nb'''", "a\nb", id="raw CR LF in a triple-quoted string"),
    pytest.param("b'''a\nb'''", b"a\nb", id="raw newline in triple-quoted bytes"),
    pytest.param("'%.200f'.format([1.0])", "refused at load", id="format precision over 100"),
    pytest.param("request.path.format([1.0])", "refused at load", id="format with a non-literal template"),
    pytest.param("string(1.0)", "1", id="string(double) as cel-cpp writes it"),
    pytest.param("string(123456789.0)", "1.23456789e+08", id="string(double) exponent form"),
    pytest.param("dyn(9007199254740993) == 9007199254740992.0", True, id="int vs double read as doubles"),
    pytest.param("int(-9223372036854775808.0)", "error", id="int(double) range"),
    pytest.param("'tacocat'.indexOf('a', 30)", "error", id="indexOf offset past the end"),
    pytest.param("''.split('')", [""], id="''.split('')"),
    pytest.param("{1.5: 1}[1.5]", "refused at load", id="double map key"),
    pytest.param("b'\\u00e9'", "refused at load", id="\\u in bytes"),
    pytest.param("duration('9223372036s') + duration('1s')", "error", id="duration overflow"),
    pytest.param("'a\\x00b' == 'a'", False, id="NUL in a literal string is kept"),
    pytest.param("size('a\\000b')", 3, id="octal NUL in a literal"),
    pytest.param("b'a\\x00' == b'a'", False, id="NUL in literal bytes is kept"),
])
@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_or_refuse(engine, source, expected):
    assert _outcome(engine, source) == expected


@pytest.mark.parametrize("claims", [
    pytest.param({"role": "admin\x00x"}, id="string holding NUL"),
    pytest.param({"role": "x", "tag": b"admin\x00x"}, id="bytes holding NUL"),
    pytest.param({"roles": ["admin\x00x"]}, id="NUL inside a list"),
    pytest.param({"role": "x", "m": {"admin\x00x": 1}}, id="NUL in a map key"),
])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_value_holding_nul_is_never_bound(engine, claims):
    """cel-expr-python cuts strings and bytes at NUL, so a claim "admin\\x00x" compared
    equal to 'admin' there (and not on cel-python): such a value is refused on both, and
    a rule reading it errors (which fails closed), never decides on a cut value."""
    cel = get_engine(engine)
    program = cel.compile("claims.role == 'admin' || 'admin' in claims.roles", result=bool)
    with pytest.raises(EvalError, match="NUL"):
        program.evaluate(cel.activation({"claims": cel.convert(claims)}))
