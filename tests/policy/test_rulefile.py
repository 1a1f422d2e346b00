"""Loading rule files: every fault reported, with file, line, column and a caret."""

from __future__ import annotations

import textwrap

import pytest

from wsgi_gateway.errors import ConfigError
from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.rulefile import load_rule_file

ENGINES = ["cel-python", "cel-cpp"]


def load(tmp_path, text: str, engine: str = "cel-python", policies=None):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rule_file(path, get_engine(engine), policies)


def problems(tmp_path, text: str, engine: str = "cel-python", policies=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, engine, policies)
    return [p.replace(str(tmp_path / "r.yaml"), "FILE") for p in info.value.problems]


@pytest.mark.parametrize("engine", ENGINES)
def test_three_broken_expressions_are_all_reported_with_carets(tmp_path, engine):
    found = problems(tmp_path, """\
        validate:
          - expr: "clams.sub == 'x'"
            message: typo in a variable
        deny:
          - when: "request.method == 'GET' &&"
            reason: incomplete
          - when: "'not a boolean'"
            reason: wrong type
    """, engine)
    assert len(found) == 3, found
    first, second, third = (p.splitlines() for p in found)
    assert first[0].startswith("FILE:2:") and "validate[0].expr" in first[0] and "clams" in first[0]
    assert first[1].strip() == "clams.sub == 'x'" and first[2].strip() == "^"
    assert second[0].startswith("FILE:5:") and "deny[0].when" in second[0]
    assert third[0].startswith("FILE:7:") and "deny[1].when" in third[0] and "bool" in third[0]
    # the caret sits under the fault: column in the message = column of ^ in the excerpt
    # (engines point at different tokens: cel-python at `clams`, cel-cpp at the select)
    column = int(first[0].split(":")[2])
    caret = first[2].index("^") - 4 + 1  # 1-based column within the expression
    assert column == 11 + caret  # `  - expr: "` is 11 characters


@pytest.mark.parametrize("text, expected", [
    pytest.param("deny:\n  - when: 'true'\n", "deny[0]: missing reason", id="missing reason"),
    pytest.param("allow:\n  - {when: 'true', colour: red}\n", "allow[0].colour: unknown key", id="unknown key"),
    pytest.param("asign: []\n", "asign: unknown section", id="unknown section"),
    pytest.param("headers:\n  'Bad Header': 'x'\n", "headers.Bad Header: not a valid header name",
                 id="bad header name"),
    pytest.param("map:\n  Id: 'claims.sub'\n", "map.Id: map names are lower_snake_case", id="bad map name"),
    pytest.param("map:\n  id: 'request.path'\n", "map.id: map reads only claims, token, identity, cert and api",
                 id="map reading the request"),
    pytest.param("assign:\n  - {policy: platinum, when: 'true'}\n", "assign[0].policy: unknown policy 'platinum'",
                 id="unknown policy"),
    pytest.param("default_policy: platinum\n", "default_policy: unknown policy 'platinum'", id="unknown default"),
    pytest.param("deny:\n  - {when: 'true', reason: x, code: nope}\n", "deny[0].code: expected one of",
                 id="unknown error code"),
    pytest.param("validate:\n  - {expr: 'true', message: ''}\n", "validate[0].message: expected a one-line",
                 id="empty message"),
    pytest.param("shadow: maybe\n", "shadow: expected true or false", id="shadow not a bool"),
])
def test_structure_problems(tmp_path, text, expected):
    found = problems(tmp_path, text, policies={"gold"})
    assert any(expected in p for p in found), found


def test_a_good_file_compiles_every_section(tmp_path):
    rules = load(tmp_path, """\
        shadow: false
        validate: [{expr: "has(claims.sub)", message: no subject}]
        map: {id: "claims.sub"}
        assign: [{policy: gold, when: "'a' in token.scopes"}]
        default_policy: gold
        deny: [{when: "request.method == 'DELETE'", reason: no deletes}]
        allow: [{when: "request.method == 'GET'"}]
        headers: {X-User: "identity.id"}
    """, policies={"gold"})
    assert [r.name for r in rules.rules()] == [
        "validate[0]", "id", "assign[0]", "deny[0]", "allow[0]", "X-User"]
    assert rules.policies == {"gold"}


def test_block_scalar_positions(tmp_path):
    found = problems(tmp_path, """\
        map:
          groups: >-
            claims.groups.map(g,
              g + nowhere)
    """)
    head = found[0].splitlines()[0]
    assert head.startswith("FILE:4:") and "nowhere" in head
