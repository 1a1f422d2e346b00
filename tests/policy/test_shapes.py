"""Declared shapes: typos in fields, header names with capitals and non-boolean
conditions are load errors with file:line:col, a caret and "did you mean", on both
engines (issue 11: they passed `check` with 0 warnings and denied quietly at run time)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from tests.support.gateways import SECRET_ENV, gateway_config
from wsgi_gateway.cli import main
from wsgi_gateway.errors import ConfigError
from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.rulefile import load_rule_file

ENGINES = ["cel-python", "cel-cpp"]


def problems(tmp_path, text: str, engine: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, get_engine(engine))
    return [p.replace(str(path), "FILE") for p in info.value.problems]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rules, where, message, caret_under", [
    pytest.param("allow:\n  - when: \"request.methd == 'GET'\"\n", "FILE:2: allow[0].when",
                 "request has no field 'methd'; did you mean 'method'?", "methd", id="request.methd"),
    pytest.param("deny:\n  - {when: \"'admin' in token.scops\", reason: r}\n", "FILE:2: deny[0].when",
                 "token has no field 'scops'; did you mean 'scopes'?", "scops", id="token.scops"),
    pytest.param("headers:\n  X-Id: \"identity.idd\"\n", "FILE:2: headers.X-Id",
                 "identity has no field 'idd'; did you mean 'id'?", "idd", id="identity.idd in a header"),
    pytest.param("allow:\n  - when: \"request.headers['X-Tenant'] == 'acme'\"\n", "FILE:2: allow[0].when",
                 "names are lower-case, so 'X-Tenant' never matches; did you mean 'x-tenant'?", "X-Tenant",
                 id="header name with capitals"),
    pytest.param("allow:\n  - when: \"'X-Tenant' in request.headers\"\n", "FILE:2: allow[0].when",
                 "'X-Tenant' is never in it; did you mean 'x-tenant'?", "'X-Tenant'", id="header presence with capitals"),
    pytest.param("allow:\n  - when: \"has(request.headers.X_Org)\"\n", "FILE:2: allow[0].when",
                 "did you mean 'x_org'?", "X_Org", id="header capitals in has()"),
    pytest.param("allow:\n  - when: \"identity.tenant == 'a'\"\n", "FILE:2: allow[0].when",
                 "identity has no field 'tenant'", "tenant", id="identity field no map defines"),
    pytest.param("allow:\n  - when: \"request.method.x == 'a'\"\n", "FILE:2: allow[0].when",
                 "request.method is a string: it has no field 'x'", "x", id="field of a string"),
    pytest.param("allow:\n  - when: \"cert.san.dnss.size() > 0\"\n", "FILE:2: allow[0].when",
                 "cert.san has no field 'dnss'; did you mean 'dns'?", "dnss", id="nested record"),
])
def test_a_path_the_shapes_rule_out_is_a_load_error(tmp_path, engine, rules, where, message, caret_under):
    [found] = problems(tmp_path, rules, engine)
    first, excerpt, caret = found.splitlines()
    file, line, column, rest = first.split(":", 3)
    assert f"{file}:{line}:{rest}".startswith(where + ": ") and message in first, found
    # file:line:col points at the fault in the file, and the caret at it in the excerpt
    assert rules.splitlines()[int(line) - 1][int(column) - 1:].startswith(caret_under), found
    assert excerpt[4:][caret.index("^") - 4:].startswith(caret_under), found


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rules", [
    pytest.param("map:\n  tenant: claims.tenant\nallow:\n  - when: \"identity.tenant == 'a'\"\n", id="mapped field"),
    pytest.param("allow:\n  - when: \"claims.anything.goes == 'a'\"\n", id="claims are open"),
    pytest.param("allow:\n  - when: \"request.headers['x-tenant'] == 'a' && request.query.q == 'b'\"\n",
                 id="lower-case header, any query"),
    pytest.param("allow:\n  - when: \"session.meta.anything == 1\"\n", id="open session meta"),
])
def test_declared_paths_load(tmp_path, engine, rules):
    path = tmp_path / "r.yaml"
    path.write_text(rules)
    load_rule_file(path, get_engine(engine))


def test_check_fails_on_a_misspelt_field(tmp_path, monkeypatch, capsys):
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "rules.yaml").write_text("allow:\n  - when: \"request.methd == 'GET'\"\n")
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
    status = main(["check", "-c", str(tmp_path / "gw.yaml"), "--app", "contrib.demo.echo:app"])
    assert status == 2
    assert "did you mean 'method'?" in capsys.readouterr().err


def test_check_json_lists_the_errors(tmp_path, monkeypatch, capsys):
    import json

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "rules.yaml").write_text("allow:\n  - when: \"token.scops == []\"\n")
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
    status = main(["check", "-c", str(tmp_path / "gw.yaml"), "--app", "contrib.demo.echo:app",
                   "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 2 and out["ok"] is False
    assert "did you mean 'scopes'?" in out["errors"][0]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rules, message", [
    pytest.param("allow:\n  - when: \"request.method\"\n", "expression must return bool, but it returns string",
                 id="non-boolean condition"),
    pytest.param("deny:\n  - {when: \"identity.groups\", reason: r}\n", "expression must return bool, but it returns list",
                 id="non-boolean deny"),
    pytest.param("validate:\n  - {expr: \"token.exp\", message: m}\n", "expression must return bool, but it returns int",
                 id="non-boolean validate"),
    pytest.param("allow:\n  - when: \"request.method == 1\"\n", "'_==_' applied to '(string, int)'",
                 id="string compared with int"),
    pytest.param("allow:\n  - when: \"token.scopes == 'admin'\"\n", "'_==_' applied to '(list, string)'",
                 id="list compared with string"),
    pytest.param("allow:\n  - when: \"identity.anonymous && request.path\"\n", "'_&&_' applied to '(bool, string)'",
                 id="string in a conjunction"),
    pytest.param("assign:\n  - {policy: p, when: \"request.path.startsWith('/a') ? token.sub : false\"}\n",
                 "'_?_:_' applied to '(bool, string, bool)'", id="ternary of mixed kinds"),
])
def test_declared_kinds_are_type_checked(tmp_path, engine, rules, message):
    [found] = problems(tmp_path, rules, engine)
    assert message in found.splitlines()[0], found


@pytest.mark.parametrize("engine", ENGINES)
def test_map_entries_are_typed_as_their_expressions(tmp_path, engine):
    [found] = problems(tmp_path, """\
        map:
          group_count: "size(claims.groups)"
          tenant: "claims.tenant"
        allow:
          - when: "identity.group_count == 'many' || identity.tenant == 1"
    """, engine)
    assert "'_==_' applied to '(int, string)'" in found.splitlines()[0], found
