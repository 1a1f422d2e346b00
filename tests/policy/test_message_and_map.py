"""``messageExpression`` reasons (bounded, no control characters, fixed fallback), and a
``map`` entry that ``identity`` cannot hold does not poison ``identity`` (issue 11:
``map: {issued: "timestamp(claims.iat)"}`` made every rule reading identity deny)."""

from __future__ import annotations

import textwrap

import pytest

from wsgi_gateway.errors import ConfigError
from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.evaluate import CelRuleSet
from wsgi_gateway.policy.messages import MAX_MESSAGE_LENGTH
from wsgi_gateway.policy.rulefile import load_rule_file
from wsgi_gateway.policy.testing import case_identity, decide

ENGINES = ["cel-python", "cel-cpp"]

RULES = """\
map:
  issued: "[timestamp(claims.iat)]"
  tenant: "claims.tenant"
validate:
  - expr: "identity.tenant == 'acme'"
    message: "wrong tenant"
    messageExpression: "'tenant ' + identity.tenant + ' is not allowed'"
deny:
  - when: "has(claims.why)"
    reason: "blocked"
    messageExpression: "'blocked: ' + claims.why"
"""


def decision(tmp_path, engine, claims, rules=RULES):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(rules))
    ruleset = CelRuleSet(load_rule_file(path, get_engine(engine)), get_engine(engine), "api", {})
    return decide(ruleset, case_identity({"claims": claims}, {}), {"method": "GET", "path": "/"})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expression, kind", [
    pytest.param("timestamp(claims.iat)", "timestamp", id="timestamp"),
    pytest.param("now - timestamp(claims.iat)", "duration", id="duration"),
])
def test_a_map_entry_identity_cannot_hold_is_refused_at_load(tmp_path, engine, expression, kind):
    path = tmp_path / "r.yaml"
    path.write_text(f"map:\n  issued: \"{expression}\"\n")
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, get_engine(engine))
    assert info.value.problems == [f"{path}:2: map.issued: a map entry cannot be a {kind}: identity is a map, "
                                   "and a map cannot hold one on every engine (use int(...) for epoch "
                                   "seconds, or string(...))"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_map_entry_identity_cannot_hold_is_left_out(tmp_path, engine):
    """A value only known at run time (a list of timestamps) errors in its own entry."""
    result = decision(tmp_path, engine, {"sub": "a", "iat": 1700000000, "tenant": "acme"})
    assert result.allowed, result.steps
    assert "issued" not in result.identity and result.identity["tenant"] == "acme"
    step = dict((name, value) for name, value, _ in result.steps)
    assert step["issued"].startswith("error: identity.issued cannot hold this value")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("claims, reason", [
    pytest.param({"tenant": "globex"}, "tenant globex is not allowed", id="validate message from the token"),
    pytest.param({"tenant": "acme", "why": "too\nmany\x1b[31m\u202etries\u2028!"}, "blocked: too many[31mtries !",
                 id="control, bidi and line separators stripped"),
    pytest.param({"tenant": "acme", "why": "x" * 1000}, "blocked: " + "x" * (MAX_MESSAGE_LENGTH - 9),
                 id="length bounded"),
    pytest.param({"tenant": "acme", "why": 7}, "blocked", id="an error falls back to the reason"),
    pytest.param({"tenant": "acme", "why": " \t"}, "blocked: ", id="blank text is stripped"),
])
def test_message_expressions(tmp_path, engine, claims, reason):
    result = decision(tmp_path, engine, {"sub": "a", "iat": 1, **claims})
    assert not result.allowed and result.reason == reason.strip()
    assert len(result.reason) <= MAX_MESSAGE_LENGTH


@pytest.mark.parametrize("engine", ENGINES)
def test_a_message_expression_must_be_a_string(tmp_path, engine):
    path = tmp_path / "r.yaml"
    path.write_text("deny:\n  - {when: 'true', reason: r, messageExpression: '1 + 1'}\n")
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, get_engine(engine))
    assert "deny[0].messageExpression" in info.value.problems[0] and "string" in info.value.problems[0]
