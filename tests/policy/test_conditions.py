"""One rule for every section: a condition must be a bool; anything else is an error and
an error fails closed (deny denies, allow does not allow, validate rejects, assign does
not assign). Through build_app and a werkzeug Client, on both engines."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.gateways import gateway_config, mint

ENGINES = ["cel-python", "cel-cpp"]

# (section, rule file, status when the condition is true, status otherwise)
SECTIONS = {
    "validate": ('validate: [{expr: "claims.v", message: "bad"}]', 200, 401),
    "assign": ('assign: [{policy: gold, when: "claims.v"}]', 200, 403),
    "deny": ('deny: [{when: "claims.v", reason: "blocked"}]', 403, 200),
    "allow": ('allow: [{when: "claims.v"}]', 200, 403),
}
# what claims.v is, and whether it counts as true; anything not a bool is an error
VALUES = [
    pytest.param({"v": True}, "true", id="true"),
    pytest.param({"v": False}, "false", id="false"),
    pytest.param({"v": "true"}, "error", id="string true"),
    pytest.param({"v": 1}, "error", id="int 1"),
    pytest.param({"v": 1.0}, "error", id="double 1.0"),
    pytest.param({"v": [1]}, "error", id="list"),
    pytest.param({"v": None}, "error", id="null"),
    pytest.param({"v": {"a": True}}, "error", id="map"),
    pytest.param({}, "error", id="evaluation error (missing claim)"),
]


def _expected(section: str, truth: str) -> int:
    _, when_true, otherwise = SECTIONS[section]
    if truth == "true":
        return when_true
    if truth == "false":
        return otherwise
    return 403 if section in ("deny", "allow", "assign") else 401  # errors fail closed


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("section", list(SECTIONS))
@pytest.mark.parametrize(("claims", "truth"), VALUES)
def test_condition_must_be_a_bool_and_errors_fail_closed(in_process, tmp_path, engine, section, claims, truth):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(SECTIONS[section][0]) + "\n")
    config = gateway_config(None, policies={"basic": {}, "gold": {}},
                            api={"rules": "rules.yaml", "default_policy": None})
    config["cel"] = {"engine": engine}
    gateway = in_process(config)
    response = gateway.get(mint(**claims))
    assert response.status_code == _expected(section, truth), response.get_data(as_text=True)
    assert gateway.upstream.calls == (1 if response.status_code == 200 else 0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expr", [
    pytest.param("'true'", id="string literal"),
    pytest.param("1", id="int literal"),
    pytest.param("[true]", id="list literal"),
    pytest.param("null", id="null literal"),
    pytest.param("claims.sub + 'x'", id="string concatenation"),
    pytest.param("size(claims)", id="size"),
])
def test_a_known_non_bool_condition_is_refused_at_load(engine, expr):
    from wsgi_gateway.cel import CompileError, get_engine

    with pytest.raises(CompileError, match="bool"):
        get_engine(engine).compile(expr, result=bool)
