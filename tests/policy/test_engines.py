"""The CEL engine seam, run against both engines (cel-python and cel-cpp).

Every test that takes the ``engine`` fixture runs once per engine; expected values are
computed by hand, so passing on both means the engines agree. Tests that only one engine
can pass (documented differences, engine-specific bounds) say so in their names and
docstrings. The cel-cpp runs are skipped, with the reason printed, when cel-expr-python
(the ``fast-cel`` extra) is not installed.
"""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from wsgi_gateway.cel import (
    INSTALL_HINT,
    MAX_ITERATIONS,
    MAX_LIST_LENGTH,
    MAX_RESULT_STRING_LENGTH,
    MAX_STRING_LENGTH,
    VARIABLES,
    CompileError,
    Engine,
    EngineUnavailable,
    EvalError,
    Program,
    Rejected,
    Unresolved,
    get_engine,
    lookup,
)

UTC = datetime.timezone.utc
ENGINE_NAMES = ("cel-python", "cel-cpp")


@pytest.fixture(params=ENGINE_NAMES)
def engine(request: pytest.FixtureRequest) -> Engine:
    try:
        return get_engine(request.param)
    except EngineUnavailable as ex:
        pytest.skip(f"cel-cpp engine not available: {ex}")


# --- realistic inputs ------------------------------------------------------------------

CLAIMS: dict[str, Any] = {
    "iss": "https://idp.example.com",
    "sub": "user-123",
    "aud": ["https://api.example.com", "account"],
    "exp": 1700003600,  # 2023-11-14T23:13:20Z
    "iat": 1700000000.0,  # a double, as some IdPs send it: 2023-11-14T22:13:20Z
    "nbf": 1700000000,
    "email": "Alice@Example.COM",
    "email_verified": True,
    "name": "Alice Example",
    "groups": ["dev", "ops"],
    "org_id": "org-1",
    "azp": "mobile-app",
    "scope": "openid orders:read orders:write",
    "realm_access": {"roles": ["admin", "user"]},
    "tenant": {"id": "t-42", "tier": "gold"},
    "big_id": 2**63 + 5,  # above int64: a uint on both engines
    "amr": ["pwd", "mfa"],
}
TOKEN: dict[str, Any] = {
    "iss": "https://idp.example.com",
    "sub": "user-123",
    "aud": ["https://api.example.com", "account"],
    "scopes": ["openid", "orders:read", "orders:write"],
    "client_id": "mobile-app",
    "exp": 1700003600,
}
REQUEST: dict[str, Any] = {
    "method": "GET",
    "path": "/v1/orders/42",
    "host": "api.example.com",
    "scheme": "https",
    "headers": {
        "x-foo": "bar",
        "x-request-id": "abc-123",
        "accept": "application/json",
        "x-forwarded-for": "10.0.0.1, 10.0.0.2",
    },
    "query": {"page": "2", "expand": "items"},
    "remote_addr": "10.0.0.2",
}
IDENTITY: dict[str, Any] = {"id": "https://idp.example.com|user-123", "groups": ["dev", "ops"], "org": "org-1"}
SESSION: dict[str, Any] = {"id": "s-1", "policies": ["gold"]}
NOW = datetime.datetime(2023, 11, 14, 23, 0, 0, tzinfo=UTC)  # a Tuesday, 1700002800


def variables(**overrides: Any) -> dict[str, Any]:
    values = {
        "claims": CLAIMS,
        "token": TOKEN,
        "identity": IDENTITY,
        "request": REQUEST,
        "session": SESSION,
        "api": "orders",
        "now": NOW,
    }
    values.update(overrides)
    return values


def activation(engine: Engine, **overrides: Any) -> dict[str, object]:
    """The variables converted the way the gateway does it (once per token / request)."""
    return {name: engine.convert(value) for name, value in variables(**overrides).items()}


def evaluate(engine: Engine, source: str, **overrides: Any) -> object:
    return engine.compile(source).evaluate(activation(engine, **overrides))


def same(actual: object, expected: object) -> bool:
    """Equal, with the same Python types all the way down (True is not 1, 1 is not 1.0)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))  # type: ignore[arg-type]
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)  # type: ignore[attr-defined,index]
    return actual == expected


# --- the registry -----------------------------------------------------------------------


def test_engines_are_singletons_with_their_names(engine: Engine) -> None:
    assert get_engine(engine.name) is engine
    assert engine.name in ENGINE_NAMES
    assert isinstance(engine, Engine)
    assert isinstance(engine.compile("true"), Program)


def test_default_engine_is_cel_python() -> None:
    assert get_engine().name == "cel-python"


def test_unknown_engine_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cel-python, cel-cpp"):
        get_engine("cel-go")


def test_missing_cel_expr_python_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgi_gateway.cel import celcpp_engine as engine_celcpp

    for module in [name for name in sys.modules if name.startswith("cel_expr_python")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "cel_expr_python", None)  # makes the import fail
    with pytest.raises(EngineUnavailable) as raised:
        engine_celcpp.CelCppEngine()
    assert INSTALL_HINT in str(raised.value)
    assert INSTALL_HINT == "pip install 'wsgi-gateway[fast-cel]'"


def test_variables() -> None:
    assert VARIABLES == ("claims", "token", "identity", "request", "session", "api", "now", "limits", "cert")


# --- compile errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        pytest.param("claims.sub == 'a' &&\n  (claims.x == )", 2, 16, "syntax error", id="parse-error"),
        pytest.param("claims.sub == 'a' &&\n  clams == 1", 2, 3, "undeclared reference to 'clams'", id="undeclared"),
        pytest.param("reqest == 'GET'", 1, 1, "undeclared reference to 'reqest'", id="undeclared-first"),
        pytest.param("1 == 1.0", 1, 3, "no matching overload", id="int-vs-double-literals"),
        pytest.param("claims.exp + 1 == 'a' + 1", 1, 23, "no matching overload", id="string-plus-int"),
        pytest.param("claims.sub == 'x' && 'a' * 3 == 'aaa'", 1, 26, "no matching overload", id="string-times-int"),
        pytest.param(
            "claims.l.all(x, claims.l.all(y, claims.l.all(z, x == y)))", 1, 42, "nested at most 2", id="nesting"
        ),
        pytest.param("claims.s.replace('', claims.s).replace('', claims.s)", 1, 32, "replace()", id="replace-blowup"),
        pytest.param("claims.groups.map(g, claims.s.replace('a', g))", 1, 31, "replace()", id="replace-in-loop"),
        pytest.param("claims.groups.join(',').replace(',', claims.s)", 1, 25, "replace()", id="replace-of-join"),
    ],
)
def test_compile_errors_have_positions(engine: Engine, source: str, line: int, column: int, words: str) -> None:
    with pytest.raises(CompileError) as raised:
        engine.compile(source)
    error = raised.value
    assert (error.line, error.column) == (line, column), error
    assert words in error.message.lower() or words in error.message
    assert str(error) == error.message


@pytest.mark.parametrize(
    "source",
    [
        "foo(1)",
        "claims.sub.fooBar()",
        "has(claims)",
        "[1].reduce(r, x, 0, r + x)",
        "'\\q' == 'q'",
        "Foo{a: 1}",
        "'x'.quote()",
        "1 +",
        "a @ b",
    ],
)
def test_other_compile_errors(engine: Engine, source: str) -> None:
    """Unknown functions, bad has(), cel-python's own macros, bad escapes: refused by
    both (the positions differ between engines, see the engine module)."""
    with pytest.raises(CompileError) as raised:
        engine.compile(source)
    assert raised.value.line >= 1 and raised.value.column >= 1


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("'abc'", "string"),
        ("  claims.exp + 1", "int"),
        ("[1, 2]", "list"),
        ("{'a': 1}", "map"),
        ("claims.sub.size()", "int"),
        ("claims.email_verified ? 'yes' : 'no'", "string"),
        ("token.scopes.map(s, s == 'a')", "list"),
    ],
)
def test_non_bool_result_is_a_compile_error(engine: Engine, source: str, kind: str) -> None:
    with pytest.raises(CompileError) as raised:
        engine.compile(source, result=bool)
    assert kind in raised.value.message
    assert (raised.value.line, raised.value.column) == (1, len(source) - len(source.lstrip()) + 1)


@pytest.mark.parametrize(
    "source",
    ["claims.email_verified", "claims.a == 1", "has(claims.x) || 1 < 2", "!claims.x", "token.aud.exists(a, a == 'x')"],
)
def test_possibly_bool_results_compile(engine: Engine, source: str) -> None:
    engine.compile(source, result=bool)


def test_macro_variables_are_declared(engine: Engine) -> None:
    program = engine.compile("token.aud.exists(a, a.startsWith('https://')) && [1, 2].all(n, n > 0)", result=bool)
    assert program.evaluate(activation(engine)) is True


def test_a_long_expression_is_refused(engine: Engine) -> None:
    with pytest.raises(CompileError, match="longer than"):
        engine.compile("claims.sub == 'x' || " * 500 + "true")


# --- evaluation errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("claims.nope == 'x'", id="missing-key"),
        pytest.param("claims.tenant.nope.id == 'x'", id="missing-nested-key"),
        pytest.param("request.headers['x-missing'] == 'x'", id="missing-header"),
        pytest.param("claims.sub > 1", id="type-mismatch-ordering"),
        pytest.param("claims.sub + 1 == 2", id="type-mismatch-arithmetic"),
        pytest.param("claims.iat + 60 > 0", id="double-plus-int"),
        pytest.param("claims.sub * claims.exp == ''", id="string-times-int"),
        pytest.param("claims.big_id + claims.exp > 0", id="uint-plus-int"),
        pytest.param("claims.exp / 0 == 1", id="division-by-zero"),
        pytest.param("1 / 0 == 0", id="literal-division-by-zero"),
        pytest.param("claims.exp % 0 == 1", id="modulus-by-zero"),
        pytest.param("claims.sub.matches('[')", id="bad-regex"),
        pytest.param("{'a': 1, 'a': 2}.size() == 1", id="duplicate-map-key"),
        pytest.param("{'a': 1 / 0}", id="error-inside-result"),
        pytest.param("token.scopes[10] == 'x'", id="index-out-of-range"),
        pytest.param("token.scopes[-1] == 'orders:write'", id="negative-index"),
        pytest.param("int('x') == 1", id="bad-conversion"),
        pytest.param("claims.exp * 9223372036854775807 > 0", id="overflow"),
        pytest.param("claims.sub.charAt(100) == ''", id="string-ext-error"),
        pytest.param("claims.groups.all(g, g)", id="non-bool-predicate"),
        pytest.param("claims.email_verified ? 1 / 0 : 2", id="error-branch"),
        pytest.param("!claims.sub", id="not-of-string"),
        pytest.param("claims.sub ? true : false", id="non-bool-condition"),
        pytest.param("type(claims.sub)", id="type-result"),
        pytest.param("timestamp('not a time') < now", id="bad-timestamp"),
    ],
)
def test_evaluation_errors_raise_eval_error(engine: Engine, source: str) -> None:
    program = engine.compile(source)
    with pytest.raises(EvalError) as raised:
        program.evaluate(activation(engine))
    assert raised.value.message and str(raised.value) == raised.value.message


def test_errors_are_absorbed_where_cel_says(engine: Engine) -> None:
    assert evaluate(engine, "claims.nope == 'x' || true") is True
    assert evaluate(engine, "false && claims.nope == 'x'") is False
    assert evaluate(engine, "token.scopes.exists(s, s == 'openid' || 1 / 0 == 0)") is True
    assert evaluate(engine, "claims.email_verified ? 1 : 1 / 0") == 1


def test_missing_variable_is_an_eval_error(engine: Engine) -> None:
    program = engine.compile("token.sub == 'x'")
    with pytest.raises(EvalError, match="token"):
        program.evaluate({"claims": engine.convert(CLAIMS)})
    # a variable the rule does not read need not be there
    assert engine.compile("claims.sub == 'user-123'").evaluate({"claims": engine.convert(CLAIMS)}) is True


@pytest.mark.parametrize(("name", "value"), [("api", 5), ("claims", "not a map"), ("now", "2024-01-01"), ("token", None)])
def test_variable_of_the_wrong_kind_is_an_eval_error(engine: Engine, name: str, value: object) -> None:
    program = engine.compile(f"{name} == {name}")
    with pytest.raises(EvalError, match=name):
        program.evaluate(activation(engine, **{name: value}))


def test_plain_values_are_converted_on_the_fly(engine: Engine) -> None:
    """Forgetting convert() is slower but gives the same result."""
    program = engine.compile("claims.iat == 1700000000 && 'orders:read' in token.scopes && api == 'orders' && now > timestamp(0)")
    assert program.evaluate(variables()) is True


# --- a table of typical rules ----------------------------------------------------------------

RULES: list[tuple[str, object]] = [
    ("claims.sub != ''", True),
    ("'orders:write' in token.scopes", True),
    ("'admin' in token.scopes && request.method == 'GET'", False),
    ("request.method in ['GET', 'HEAD']", True),
    ("token.aud.exists(a, a == 'https://api.example.com')", True),
    ("has(claims.groups) ? claims.groups : []", ["dev", "ops"]),
    ("has(claims.missing)", False),
    ("has(claims.tenant.id) && claims.tenant.tier == 'gold'", True),
    ("token.iss + '|' + claims.sub", "https://idp.example.com|user-123"),
    ("claims.email.lowerAscii()", "alice@example.com"),
    ("claims.email.lowerAscii().endsWith('@example.com')", True),
    ("claims.scope.split(' ').exists(s, s == 'orders:read')", True),
    ("claims.scope.split(' ').size()", 3),
    ("claims.groups.join(',')", "dev,ops"),
    ("request.headers['x-foo'] == 'bar'", True),
    ("'x-missing' in request.headers", False),
    ("request.headers.accept.contains('json')", True),
    ("request.headers['x-forwarded-for'].split(',').map(s, s.trim())", ["10.0.0.1", "10.0.0.2"]),
    ("request.path.startsWith('/v1/orders/') && request.path.matches('^/v1/orders/[0-9]+$')", True),
    ("request.path.substring(11)", "42"),
    ("int(request.path.substring(11)) > 40", True),
    ("request.query.page == '2' && has(request.query.expand)", True),
    ("size(claims.groups) == 2 && claims.groups.all(g, g.size() <= 3)", True),
    ("claims.realm_access.roles.exists_one(r, r == 'admin')", True),
    ("claims.amr.filter(m, m != 'pwd')", ["mfa"]),
    ("claims.groups.map(g, g.upperAscii())", ["DEV", "OPS"]),
    ("now < timestamp(token.exp)", True),
    ("now - timestamp(int(claims.iat)) < duration('1h')", True),
    ("timestamp(token.exp) - now", datetime.timedelta(seconds=800)),
    ("timestamp(token.exp)", datetime.datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC)),
    ("now.getHours() == 23 && now.getDayOfWeek() == 2 && now.getFullYear() == 2023", True),
    ("claims.iat == 1700000000", True),
    ("claims.iat >= 1700000000 && 1700000000 <= claims.iat && claims.iat < claims.exp", True),
    ("claims.iat + 3600.0 == 1700003600.0", True),
    ("dyn(claims.exp) == 1700003600.0", True),
    ("claims.big_id == 9223372036854775813u && claims.big_id > 0", True),
    ("claims.email_verified == true && claims.email_verified != 1", True),
    ("claims.sub == 1", False),
    ("'user-123' in [1, 'user-123']", True),
    ("[claims.exp, claims.iat]", [1700003600, 1700000000.0]),
    ("api == 'orders' ? 'gold' : 'bronze'", "gold"),
    ("'%s/%s'.format([claims.org_id, claims.sub])", "org-1/user-123"),
    ("strings.quote(claims.name)", '"Alice Example"'),
    ("claims.tenant", {"id": "t-42", "tier": "gold"}),
    ("request.method == 'DELETE' && !('ops' in identity.groups)", False),
    ("identity.id.split('|')[1] == claims.sub", True),
    ("session.policies.exists(p, p == 'gold')", True),
    ("token.client_id == 'mobile-app'", True),
    ("claims.name.indexOf(' ') == 5 && claims.name.charAt(0) == 'A'", True),
    ("claims.aud.size() > 1 ? claims.azp : claims.aud[0]", "mobile-app"),
    ("claims.tenant.tier in ['gold', 'silver'] || false", True),
    ("claims.exists(k, k == 'org_id') && 'org_id' in claims", True),
    ("{'org': claims.org_id, 'n': size(claims.groups)}", {"org": "org-1", "n": 2}),
    ("b'\\x00\\xff'", b"\x00\xff"),
    ("null", None),
    ("type(claims.exp) == int && type(claims.iat) == double && type(claims.sub) == string", True),
]


@pytest.mark.parametrize(("source", "expected"), RULES, ids=[source for source, _ in RULES])
def test_typical_rules(engine: Engine, source: str, expected: object) -> None:
    result = evaluate(engine, source)
    assert same(result, expected), f"{engine.name}: {source!r} gave {result!r}, expected {expected!r}"


def test_rules_give_the_same_result_with_a_shared_activation(engine: Engine) -> None:
    """engine.activation(): one per request, reused for every rule (cel-cpp caches)."""
    shared = engine.activation(activation(engine))
    for source, expected in RULES:
        program = engine.compile(source)
        assert same(program.evaluate(shared), expected), source
        assert same(program.evaluate(shared), expected), source  # and again, from the cache


def test_results_are_plain_python(engine: Engine) -> None:
    result = evaluate(engine, "{'l': [1, 2.5, 'x', true, null, b'b'], 'm': {'k': claims.tenant}, 't': now}")
    assert same(result, {"l": [1, 2.5, "x", True, None, b"b"], "m": {"k": {"id": "t-42", "tier": "gold"}}, "t": NOW})
    assert result["t"].tzinfo is not None and result["t"].utcoffset() == datetime.timedelta(0)  # type: ignore[index]


# --- numbers and conversion ------------------------------------------------------------------------


def test_json_numbers_keep_their_type(engine: Engine) -> None:
    values = {"i": 1700000000, "f": 1700000000.0, "u": 2**64 - 1, "huge": 2**70, "neg": -(2**63), "t": True}
    source = "[type(claims.i) == int, type(claims.f) == double, type(claims.u) == uint, type(claims.huge) == double, type(claims.neg) == int, type(claims.t) == bool]"
    assert evaluate(engine, source, claims=values) == [True] * 6
    assert same(evaluate(engine, "claims.f", claims=values), 1700000000.0)
    assert same(evaluate(engine, "claims.i == claims.f && claims.i <= claims.f && !(claims.i < claims.f)", claims=values), True)


def test_naive_now_is_utc(engine: Engine) -> None:
    naive = datetime.datetime(2023, 11, 14, 23, 0, 0)
    assert evaluate(engine, "now == timestamp('2023-11-14T23:00:00Z')", now=naive) is True


def nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"big": list(range(MAX_LIST_LENGTH + 1))}, "longer than"),
        ({"s": "x" * (MAX_STRING_LENGTH + 1)}, "longer than"),
        ({f"k{i}": i for i in range(1001)}, "larger than"),
        ({"deep": nested(40)}, "deeper"),
        ({"many": [[0] * 1000] * 11}, "more than"),
        ({"at": datetime.datetime(2024, 1, 1, tzinfo=UTC)}, "timestamp inside"),
    ],
    ids=["list", "string", "map", "depth", "nodes", "nested-timestamp"],
)
def test_values_over_the_limits_are_rejected(engine: Engine, value: dict[str, Any], reason: str) -> None:
    converted = engine.convert(value)
    assert isinstance(converted, Rejected) and reason in converted.reason
    program = engine.compile("claims.sub == 'x'")
    with pytest.raises(EvalError, match="cannot be used"):
        program.evaluate(activation(engine, claims=value))
    # a rule that does not read the rejected variable still works
    assert engine.compile("token.sub == 'user-123'").evaluate(activation(engine, claims=value)) is True


def test_values_at_the_limits_are_accepted(engine: Engine) -> None:
    value = {"big": list(range(MAX_LIST_LENGTH)), "s": "é" * MAX_STRING_LENGTH}
    assert not isinstance(engine.convert(value), Rejected)
    assert evaluate(engine, "size(claims.big) == 1000 && size(claims.s) == 8192", claims=value) is True


@pytest.mark.parametrize("value", [{"x": {1, 2}}, {"x": object()}, {"x": 1j}, {(1, 2): "tuple key"}])
def test_non_json_values_are_a_type_error(engine: Engine, value: object) -> None:
    with pytest.raises(TypeError):
        engine.convert(value)


def test_tuples_are_lists(engine: Engine) -> None:
    assert evaluate(engine, "claims.t == ['a', 'b']", claims={"t": ("a", "b")}) is True


# --- references -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "references"),
    [
        ("claims.sub != ''", {"claims.sub"}),
        ("'admin' in token.scopes && request.method == 'GET'", {"token.scopes", "request.method"}),
        ("request.headers['x-foo'] == 'bar'", {"request.headers.x-foo"}),
        ("request.headers['a.b'] == 'c'", {"request.headers"}),
        ("claims[request.method] == 1", {"claims", "request.method"}),
        ("token.aud.exists(a, a == claims.sub)", {"token.aud", "claims.sub"}),
        ("size(token) > 0", {"token"}),
        ("has(claims.email)", {"claims.email"}),
        ("claims.tenant.id == 'x' && claims.tenant == {}", {"claims.tenant"}),
        ("[1].exists(claims, claims == 1)", set()),
        ("now > timestamp(token.exp) && api == 'x'", {"now", "token.exp", "api"}),
        ("identity.groups.exists(g, g in session.policies)", {"identity.groups", "session.policies"}),
        ("claims.groups[0] == 'dev'", {"claims.groups"}),
        ("'lit' == 'lit'", set()),
    ],
)
def test_references(engine: Engine, source: str, references: set[str]) -> None:
    program = engine.compile(source)
    assert program.references == frozenset(references)
    assert program.variables == frozenset(path.split(".")[0] for path in references)
    assert program.source == source


def test_results_depend_only_on_the_references(engine: Engine) -> None:
    """Memoising on lookup() of every reference is safe: change what is not referenced,
    the key and the result stay; change what is, the key changes."""
    program = engine.compile("claims.tenant.tier == 'gold' && request.headers['x-foo'] == 'bar'")
    paths = sorted(program.references)
    assert paths == ["claims.tenant.tier", "request.headers.x-foo"]
    base = variables()
    unrelated = variables(
        claims={**CLAIMS, "sub": "someone-else", "tenant": {"tier": "gold", "id": "other"}},
        request={**REQUEST, "method": "POST", "headers": {**REQUEST["headers"], "accept": "*/*"}},
    )
    assert [lookup(unrelated, path) for path in paths] == [lookup(base, path) for path in paths]
    assert program.evaluate(activation(engine, **unrelated)) is program.evaluate(activation(engine)) is True
    related = variables(claims={**CLAIMS, "tenant": {"tier": "bronze"}})
    assert [lookup(related, path) for path in paths] != [lookup(base, path) for path in paths]
    assert program.evaluate(activation(engine, **related)) is False


def test_lookup() -> None:
    values = variables()
    assert lookup(values, "request.headers.x-foo") == "bar"
    assert lookup(values, "claims") is CLAIMS
    assert lookup(values, "request.headers.nope") == Unresolved(2, "missing")
    assert lookup(values, "claims.sub.x") == Unresolved(2, "not a map")
    assert lookup(values, "nothing") == Unresolved(0, "missing")
    assert lookup(values, "claims.missing.x") != lookup(values, "claims.tenant.missing")


# --- cost bounds -------------------------------------------------------------------------------------

BIG = {"big": list(range(10_000))}
THOUSAND = {"big": list(range(1000))}


def timed(program: Program, values: Mapping[str, object]) -> tuple[float, object]:
    start = time.perf_counter()
    try:
        outcome: object = program.evaluate(values)
    except EvalError as ex:
        outcome = ex
    return time.perf_counter() - start, outcome


def test_pathological_rule_over_10000_elements_fails_fast(engine: Engine) -> None:
    program = engine.compile("claims.big.all(x, claims.big.all(y, x != y))")
    elapsed, outcome = timed(program, activation(engine, claims=BIG))
    assert isinstance(outcome, EvalError) and elapsed < 1.0


@pytest.mark.parametrize(
    "source",
    [
        "claims.big.all(x, claims.big.all(y, x != y || x == y))",
        "claims.big.exists(x, claims.big.exists(y, x == y + 100000))",
        "claims.big.map(x, claims.big.filter(y, y == x)).size() > 0",
    ],
)
def test_nested_comprehension_over_1000_elements_hits_the_budget(engine: Engine, source: str) -> None:
    elapsed, outcome = timed(engine.compile(source), activation(engine, claims=THOUSAND))
    assert isinstance(outcome, EvalError), outcome
    assert elapsed < 1.0


def test_short_circuit_keeps_the_briefs_example_cheap(engine: Engine) -> None:
    """``x != y`` is false at the first ``y == x``: both engines stop there."""
    elapsed, outcome = timed(engine.compile("claims.big.all(x, claims.big.all(y, x != y))"), activation(engine, claims=THOUSAND))
    assert outcome is False and elapsed < 1.0


@pytest.mark.parametrize(("size", "ok"), [(99, True), (100, False)])
@pytest.mark.parametrize(
    "source",
    [
        "claims.big.all(x, claims.big.all(y, true))",
        "claims.big.exists(x, claims.big.exists(y, false)) == false",
        "claims.big.map(x, claims.big.map(y, true, y)).size() > 0",
        "claims.big.map(x, claims.big.filter(y, true)).size() > 0",
        "claims.big.filter(x, claims.big.exists_one(y, y == x)).size() > 0",
    ],
)
def test_both_engines_count_the_same_steps(engine: Engine, source: str, size: int, ok: bool) -> None:
    """99 + 99² = 9,900 steps pass, 100 + 100² = 10,100 do not (MAX_ITERATIONS = 10,000),
    for every form of comprehension (one step per element, also for map(x, p, t))."""
    assert MAX_ITERATIONS == 10_000
    _, outcome = timed(engine.compile(source), activation(engine, claims={"big": list(range(size))}))
    assert (outcome is True) if ok else isinstance(outcome, EvalError), outcome


def test_membership_scan_of_a_large_list_is_bounded(engine: Engine) -> None:
    elapsed, outcome = timed(engine.compile("claims.big.all(x, x in claims.big)"), activation(engine, claims=THOUSAND))
    assert outcome is True and elapsed < 1.0


def test_huge_strings_are_refused_at_load_on_both_engines(engine: Engine) -> None:
    """replace() whose result could be 64 MB (8 KiB × 8 KiB) is refused by the static
    estimate on both engines (cel-cpp has no run-time string bound)."""
    with pytest.raises(CompileError, match="could build a value"):
        engine.compile("claims.s.replace('a', claims.t).size() > 0")


def test_cel_python_refuses_huge_strings_at_run_time() -> None:
    """cel-python only, behind the static estimate: the run-time cap of replace()."""
    from wsgi_gateway.cel.celpy_functions import FUNCTIONS

    result = FUNCTIONS["replace"](celpy_string("a" * MAX_STRING_LENGTH), celpy_string("a"),
                                  celpy_string("b" * MAX_STRING_LENGTH))
    assert str(MAX_RESULT_STRING_LENGTH) in str(result)


def celpy_string(text: str):
    from celpy.celtypes import StringType

    return StringType(text)


def test_cel_python_deadline() -> None:
    """cel-python only: the wall-clock bound, read at every step, on an injected clock."""
    from wsgi_gateway.cel.limits import CelLimits

    ticks = iter(range(0, 10_000))
    limits = CelLimits(timeout=0.5, clock=lambda: next(ticks) * 0.01)  # 10 ms per reading
    engine = get_engine("cel-python")
    program = engine.compile("claims.big.all(x, x >= 0)", limits=limits)
    with pytest.raises(EvalError, match="time limit"):
        program.evaluate(activation(engine, claims=THOUSAND))
    assert next(ticks) <= 53  # stopped at the first reading past 0.5 s, not 64 steps later


# --- documented differences ---------------------------------------------------------------------


def test_optional_syntax_is_cel_cpp_only() -> None:
    """Known difference 1: cel-python cannot parse ``.?``; cel-cpp evaluates it."""
    with pytest.raises(CompileError):
        get_engine("cel-python").compile("claims.?email.orValue('') == ''")
    try:
        cpp = get_engine("cel-cpp")
    except EngineUnavailable as ex:
        pytest.skip(f"cel-cpp engine not available: {ex}")
    program = cpp.compile("claims.?missing.orValue('none') == 'none' && claims.?sub.hasValue()", result=bool)
    assert program.references == {"claims.missing", "claims.sub"}
    assert program.evaluate(activation(cpp)) is True
    with pytest.raises(CompileError, match="optional"):  # refused at load now (no crash path)
        cpp.compile("claims.?sub")
    with pytest.raises(EvalError, match="optional"):
        cpp.compile("dyn(claims.?sub)").evaluate(activation(cpp))
    assert cpp.compile("google.protobuf.Timestamp{}").evaluate({}) == datetime.datetime(1970, 1, 1, tzinfo=UTC)


def test_cel_cpp_checks_argument_types_at_compile_time() -> None:
    """Known difference 2: what cel-cpp's checker refuses, cel-python fails at evaluation."""
    source = "claims.sub.startsWith(1)"
    with pytest.raises(EvalError):
        get_engine("cel-python").compile(source).evaluate(activation(get_engine("cel-python")))
    try:
        cpp = get_engine("cel-cpp")
    except EngineUnavailable as ex:
        pytest.skip(f"cel-cpp engine not available: {ex}")
    with pytest.raises(CompileError, match="startsWith"):
        cpp.compile(source)


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_evaluations_do_not_mix(engine: Engine) -> None:
    """cel-python's CompiledRunner gave one thread's answer to another; this must not."""
    program = engine.compile("claims.sub == 'alice'", result=bool)
    wrong: list[str] = []

    def worker(sub: str) -> None:
        values = activation(engine, claims={"sub": sub})
        for _ in range(300):
            if program.evaluate(values) is not (sub == "alice"):
                wrong.append(sub)

    threads = [threading.Thread(target=worker, args=(sub,)) for sub in ("alice", "bob", "alice", "bob")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong
