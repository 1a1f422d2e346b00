"""The gateway library on both engines: IP/CIDR (as Kubernetes' CEL library), sets (as
cel-go's ext.Sets), base64 (as cel-go's ext.Encoders). Same results, or an evaluation
error (fail closed) on both."""

from __future__ import annotations

import pytest

from wsgi_gateway.cel import CompileError, EvalError, get_engine

ENGINES = ["cel-python", "cel-cpp"]
VALUES = {"request": {"remote_addr": "10.2.3.4"}, "claims": {"groups": ["a", "b", 1], "blob": "aGVsbG8="}}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("source, expected", [
    pytest.param("cidr('10.0.0.0/8').containsIP(request.remote_addr)", True, id="containsIP"),
    pytest.param("cidr('192.168.0.0/16').containsIP(request.remote_addr)", False, id="not in network"),
    pytest.param("'10.0.0.0/8'.containsIP('10.9.9.9')", True, id="plain string receiver"),
    pytest.param("cidr('10.1.0.0/8')", "10.0.0.0/8", id="cidr normalises"),
    pytest.param("cidr('2001:db8::/32').containsIP('2001:db8::1')", True, id="ipv6"),
    pytest.param("cidr('10.0.0.0/8').containsIP('::ffff:10.1.2.3')", False, id="mapped v6 is not v4"),
    pytest.param("cidr('10.0.0.0/8').containsCIDR('10.2.0.0/16')", True, id="containsCIDR"),
    pytest.param("cidr('10.0.0.0/8').prefixLength()", 8, id="prefixLength"),
    pytest.param("ip('::1').family() == 6 && ip('127.0.0.1').isLoopback()", True, id="family and loopback"),
    pytest.param("ip('010.1.1.1') == '10.1.1.1'", None, id="leading zeros refused"),
    pytest.param("isIP('1.2.3.4') && !isIP('1.2.3') && isCIDR('::/0') && !isCIDR('1.2.3.4')", True, id="isIP isCIDR"),
    pytest.param("sets.contains(claims.groups, ['a', 1])", True, id="sets.contains"),
    pytest.param("sets.contains(claims.groups, ['c'])", False, id="sets.contains missing"),
    pytest.param("sets.contains([1, 2], [dyn(2.0)])", True, id="numbers compare by value"),
    pytest.param("sets.contains([true], [dyn(1)])", False, id="true is not 1"),
    pytest.param("sets.intersects(claims.groups, ['x', 'b'])", True, id="sets.intersects"),
    pytest.param("sets.intersects([], claims.groups)", False, id="empty intersects nothing"),
    pytest.param("sets.equivalent([1, 1, 2], [2, 1])", True, id="sets.equivalent"),
    pytest.param("sets.equivalent([[1], {'a': 1}], [{'a': 1}, [1]])", True, id="nested elements"),
    pytest.param("base64.decode(claims.blob) == b'hello'", True, id="base64.decode"),
    pytest.param("base64.decode('aGk') == b'hi'", True, id="unpadded"),
    pytest.param("base64.encode(b'hi')", "aGk=", id="base64.encode"),
    pytest.param("'abc'.contains('b')", True, id="string contains unchanged"),
])
def test_library(engine, source, expected):
    program = get_engine(engine).compile(source)
    if expected is None:
        with pytest.raises(EvalError):
            program.evaluate(VALUES)
    else:
        assert program.evaluate(VALUES) == expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("source", [
    pytest.param("cidr('not-a-net').containsIP('1.1.1.1')", id="bad cidr"),
    pytest.param("cidr('10.0.0.1').containsIP('10.0.0.1')", id="cidr without prefix"),
    pytest.param("cidr('10.0.0.0/8').containsIP('nope')", id="bad ip"),
    pytest.param("base64.decode('!!!')", id="bad base64"),
])
def test_bad_input_fails_closed(engine, source):
    with pytest.raises(EvalError):
        get_engine(engine).compile(source).evaluate(VALUES)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("source", [
    pytest.param("sets.union([1], [2])", id="unknown set function"),
    pytest.param("base64.decode(b'aGk=')", id="decode takes a string"),
    pytest.param("'x'.intersects(['x'])", id="namespace function as a method"),
    pytest.param("cidr('10.0.0.0/8').containsIP(1)", id="containsIP takes a string"),
])
def test_misuse_is_refused(engine, source):
    """Refused at compile time, or (cel-python has no overload checker) at evaluation."""
    try:
        program = get_engine(engine).compile(source)
    except CompileError:
        return
    with pytest.raises(EvalError):
        program.evaluate(VALUES)


@pytest.mark.parametrize("source, least", [
    pytest.param("sets.contains(claims.groups, claims.roles)", 2 * 1000, id="sets visit both lists"),
    pytest.param("base64.decode(request.headers['x-b']).size() > 0", 0.1 * 8192, id="base64 traverses its input"),
])
def test_library_costs_are_estimated(source, least):
    from wsgi_gateway.cel.cost import estimate
    from wsgi_gateway.cel.parse import parse

    assert estimate(parse(source)).cost >= least
