"""The static cost estimate: rules whose worst case is over budget are refused at load on
both engines (cel-cpp cannot be interrupted once a C++ call runs)."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.gateways import gateway_config, mint
from wsgi_gateway.cel import CompileError, get_engine
from wsgi_gateway.cel.limits import DEFAULT_COST_LIMIT, CelLimits
from wsgi_gateway.errors import ConfigError

ENGINES = ["cel-python", "cel-cpp"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("source", [
    pytest.param("claims.list.map(x, claims.s8.split('').join(claims.s8)).size() > 0",
                 id="split('').join(s) per list element (12 s, 3.8 GB on cel-cpp)"),
    pytest.param("request.headers['x-big'].split('').join(request.headers['x-big']).size() > 0",
                 id="split('').join(s) over one header (184 ms, 127 MB per request)"),
    pytest.param("claims.s.replace('', claims.t).size() > 0", id="replace('', s)"),
    pytest.param("claims.s.replace('a', claims.t).replace('b', claims.t).size() > 0", id="replace chained"),
    pytest.param("claims.a.map(x, claims.b.map(y, claims.s + claims.t)).size() > 0",
                 id="nested map building strings"),
    pytest.param("claims.a.all(x, claims.a.all(y, x.matches(y) && y.matches(x)))",
                 id="nested regex over two 8 KiB strings"),
    pytest.param("claims.l.map(x, claims.s + claims.s).size() > 0", id="a list holding 16 MB of strings"),
    pytest.param("claims.s == claims.l.map(x, x + claims.t).join('ab')",
                 id="found by the fuzz test: 8 MB joined (cel-python's run-time cap, none on cel-cpp)"),
])
def test_over_budget_rules_are_refused_at_load(engine, source):
    with pytest.raises(CompileError, match="worst-case cost|could build a value|grow without bound"):
        get_engine(engine).compile(source, result=bool)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("source", [
    pytest.param("claims.groups.exists(g, g.matches('^admin-.*$'))", id="regex per group"),
    pytest.param("identity.groups.exists(g, g in session.policies)", id="membership per group"),
    pytest.param("claims.scope.split(' ').exists(s, s == 'write')", id="split then exists"),
    pytest.param("request.headers['x-tenant'].lowerAscii() == claims.tenant", id="header compare"),
    pytest.param("claims.groups.join(',').size() < 4096", id="join a claims list"),
    pytest.param("'%s/%s'.format([claims.iss, claims.sub]).size() > 0", id="format"),
    pytest.param("claims.groups.map(g, 'team-' + g).exists(g, g == 'team-ops')", id="map prefixing a list"),
])
def test_ordinary_rules_are_within_budget(engine, source):
    program = get_engine(engine).compile(source, result=bool)
    assert 0 < program.cost <= DEFAULT_COST_LIMIT


@pytest.mark.parametrize("engine", ENGINES)
def test_the_budget_comes_from_config(engine):
    source = "claims.groups.exists(g, g.matches('^admin-.*$'))"
    cost = get_engine(engine).compile(source).cost
    with pytest.raises(CompileError, match="cel.cost_limit"):
        get_engine(engine).compile(source, limits=CelLimits(cost_limit=cost - 1))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_gateway_refuses_the_rule_file_with_file_and_line(in_process, tmp_path, engine):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""\
        deny:
          - when: "request.headers['x-big'].split('').join(request.headers['x-big']).size() > 0"
            reason: big
    """))
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    config["cel"] = {"engine": engine}
    with pytest.raises(ConfigError, match=r"rules.yaml:2:12: deny\[0\].when: the expression could build a value"):
        in_process(config)


@pytest.mark.parametrize("engine", ENGINES)
def test_cost_limit_in_config_applies_to_rule_files(in_process, tmp_path, engine):
    (tmp_path / "rules.yaml").write_text('allow: [{when: "claims.groups.exists(g, g == \'ops\')"}]\n')
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    config["cel"] = {"engine": engine, "cost_limit": 100}
    with pytest.raises(ConfigError, match="over the limit of 100"):
        in_process(config)
    config["cel"] = {"engine": engine}
    assert in_process(config, name="ok").get(mint(groups=["ops"])).status_code == 200
