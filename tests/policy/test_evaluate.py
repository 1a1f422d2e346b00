"""Rule evaluation in the stack: decisions, fail-closed errors, shadow mode, headers,
caching; on both engines. Identities come from real HMAC-signed tokens."""

from __future__ import annotations

import json
import logging
import textwrap
import time

import pytest

from tests.support.gateways import gateway_config, mint

ENGINES = ["cel-python", "cel-cpp"]


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def gw(in_process, tmp_path, engine):
    def make(rules: str, policies=None, **kw):
        (tmp_path / "rules.yaml").write_text(textwrap.dedent(rules))
        config = gateway_config(None, policies=policies or {"basic": {}},
                                api={"rules": "rules.yaml", **kw.pop("api", {})}, **kw)
        config["cel"] = {"engine": engine}
        return in_process(config)
    return make


def echoed(response) -> dict:
    return json.loads(response.get_data())["headers"]


def test_validate_failure_is_401_with_the_static_message(gw):
    g = gw('validate: [{expr: "claims.tenant == \'acme\'", message: "wrong tenant"}]\n')
    response = g.get(mint(tenant="globex"))
    assert response.status_code == 401 and response.json["detail"] == "wrong tenant"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert g.get(mint(tenant="acme")).status_code == 200


def test_deny_403_with_reason_and_allow_miss(gw):
    g = gw("""\
        deny: [{when: "request.method == 'DELETE'", reason: "no deletes here"}]
        allow: [{when: "request.method == 'GET'"}]
    """)
    token = mint()
    assert g.get(token).status_code == 200
    deleted = g.client.delete("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert deleted.status_code == 403 and deleted.json["detail"] == "no deletes here"
    assert "DELETE" not in deleted.get_data(as_text=True).replace("no deletes", "")  # no expression
    posted = g.client.post("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert posted.status_code == 403 and posted.json["detail"] == "no allow rule matched"
    assert g.upstream.calls == 1


def test_insufficient_scope(gw):
    g = gw('allow: [{when: "\'write\' in token.scopes", code: insufficient_scope}]\n')
    response = g.get(mint(scope="read"))
    assert response.status_code == 403 and response.json["type"].endswith(":insufficient_scope")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    assert g.get(mint(scope="read write")).status_code == 200


@pytest.mark.parametrize("section, rules, status", [
    pytest.param("deny", 'deny: [{when: "claims.missing.deep == 1", reason: "rule error"}]', 403,
                 id="an error in deny denies"),
    pytest.param("validate", 'validate: [{expr: "claims.missing == 1", message: "bad"}]', 401,
                 id="an error in validate fails validation"),
    pytest.param("allow", 'allow: [{when: "claims.missing == 1"}]', 403,
                 id="an error in allow does not allow"),
])
def test_runtime_errors_fail_closed(gw, section, rules, status):
    g = gw(rules + "\n")
    response = g.get(mint())
    assert response.status_code == status and g.upstream.calls == 0
    assert response.status_code != 500


def test_an_error_in_assign_does_not_assign(gw):
    g = gw("""\
        assign:
          - {policy: gold, when: "claims.missing == 1"}
          - {policy: basic, when: "true"}
    """, policies={"gold": {}, "basic": {}})
    assert g.get(mint()).status_code == 200


def test_policies_and_mapped_identity_in_the_context(gw):
    g = gw("""\
        map: {org: "claims.org", groups: "claims.groups"}
        assign: [{policy: gold, when: "'admins' in identity.groups"}]
        default_policy: basic
    """, policies={"gold": {}, "basic": {}})
    g.get(mint(org="acme", groups=["admins"]))
    ctx = g.upstream.environ["wsgi_gateway.context"]
    assert ctx.policies == ("gold",) and ctx.mapped_identity["org"] == "acme"
    g.get(mint(org="acme", groups=[]))
    assert g.upstream.environ["wsgi_gateway.context"].policies == ("basic",)


def test_injected_headers_replace_client_copies_and_credentials_are_stripped(gw):
    g = gw("""\
        map: {groups: "claims.groups"}
        headers:
          X-User-Id: "claims.sub"
          X-Groups: "identity.groups"
          X-Admin: "'admins' in identity.groups"
          X-Nothing: "null"
          X-Evil: "'a\\\\r\\\\nX-Injected: 1'"
    """)
    response = g.get(mint(sub="ann", groups=["admins", "ops"]),
                     headers={"X-User-Id": "mallory", "X-Nothing": "spoofed", "X-Evil": "spoofed"})
    seen = echoed(response)
    assert seen["X-User-Id"] == "ann" and seen["X-Groups"] == "admins, ops" and seen["X-Admin"] == "true"
    assert "X-Nothing" not in seen and "X-Evil" not in seen and "X-Injected" not in seen
    assert "Authorization" not in seen


def test_shadow_rule_changes_nothing_but_is_recorded(gw, caplog):
    g = gw("""\
        deny:
          - {when: "true", reason: "would block everyone", shadow: true}
    """)
    assert g.get(mint()).status_code == 200
    trail = g.upstream.environ["wsgi_gateway.context"].trail
    assert any(t.name == "deny[0]" and "shadow: would deny" in t.detail for t in trail)


def test_shadow_file_logs_what_it_would_have_changed(gw, caplog):
    g = gw("""\
        shadow: true
        map: {id: "'mapped-' + claims.sub"}
        assign: [{policy: gold, when: "true"}]
        deny: [{when: "true", reason: "everyone"}]
        headers: {X-Shadow: "'yes'"}
    """, policies={"gold": {}, "basic": {}})
    with caplog.at_level(logging.INFO, logger="wsgi_gateway.rules"):
        response = g.get(mint(sub="ann"))
    assert response.status_code == 200 and "X-Shadow" not in echoed(response)
    ctx = g.upstream.environ["wsgi_gateway.context"]
    assert ctx.policies == ("basic",)  # the API default, not the shadow rules' gold
    record = next(r for r in caplog.records if r.getMessage() == "shadow rules evaluated")
    assert record.gw["would"] == "403 everyone" and record.gw["policies"] == "gold"
    assert record.gw["identity"] == "mapped-ann" and record.gw["headers"] == "-"  # denied: none


def test_token_results_are_computed_once_per_token(gw):
    g = gw("""\
        map: {id: "claims.sub"}
        assign: [{policy: gold, when: "'a' in token.scopes"}]
        deny: [{when: "request.method == 'DELETE'", reason: "no"}]
    """, policies={"gold": {}, "basic": {}})
    ruleset = g.gateway.apis["api"].rules
    token = mint(scope="a")
    for _ in range(5):
        assert g.get(token).status_code == 200
    assert len(ruleset._tokens) == 1  # one identity, one cached part
    part = next(iter(ruleset._tokens.values()))
    assert set(part.static) == {"map.id", "assign[0]"}  # the token-only rules
    assert len(ruleset._memo) == 1  # the deny rule, memoised on request.method
    g.client.delete("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert len(ruleset._memo) == 2


def test_rules_with_the_same_name_are_refused(gw):
    from wsgi_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="duplicate rule name 'block' in deny"):
        gw("""\
            deny:
              - {name: block, when: "claims.sub == 'nobody'", reason: one}
              - {name: block, when: "claims.banned == true", reason: two}
        """)


def test_each_rule_runs_even_with_similar_outcomes(gw):
    # every rule keys its caches on its position, never on its (display) name
    g = gw("""\
        deny:
          - {name: first, when: "claims.sub == 'nobody'", reason: one}
          - {name: second, when: "has(claims.banned) && claims.banned == true", reason: banned}
    """)
    assert g.get(mint(sub="mallory", banned=True)).status_code == 403
    assert g.get(mint(sub="carol")).status_code == 200


def test_cost_bounds(gw):
    from wsgi_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="nested at most 2 deep"):
        gw('deny: [{when: "claims.big.all(x, claims.big.all(y, claims.big.all(z, x != z)))", '
           'reason: slow}]\n')
    g = gw('deny: [{when: "claims.big.all(x, claims.big.all(y, x != y || true))", reason: slow}]\n')
    started = time.monotonic()
    response = g.get(mint(big=[0] * 1200))  # over the list bound (1000): the rule fails closed
    assert response.status_code == 403 and time.monotonic() - started < 1.0
    assert g.get(mint(big=list(range(50)))).status_code == 403  # within bounds: it runs (and denies)


def test_headers_can_read_the_limits_just_counted(gw, memcached, in_process, tmp_path, engine):
    from tests.support.gateways import gateway_config as config_for

    (tmp_path / "late.yaml").write_text(textwrap.dedent("""\
        headers:
          X-Quota-Remaining: "has(limits.quota.remaining) ? string(limits.quota.remaining) : 'none'"
          X-User: "claims.sub"
    """))
    config = config_for(memcached.address, policies={"basic": {"quota": "5/1d"}},
                        api={"rules": "late.yaml"})
    config["cel"] = {"engine": engine}
    g = in_process(config, name="late-gateway")
    token = mint(sub="quota-reader")
    seen = [echoed(g.get(token))["X-Quota-Remaining"] for _ in range(3)]
    assert seen == ["4", "3", "2"]
    assert echoed(g.get(token))["X-User"] == "quota-reader"


def test_only_headers_may_read_limits(gw):
    from wsgi_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="only headers may read limits"):
        gw('deny: [{when: "limits.rate.remaining == 0", reason: x}]\n')
