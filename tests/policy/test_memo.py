"""Memo with the idioms the README requires: a rule that checks a header's presence
(``'x-tenant' in request.headers``) or reads it (``request.headers['x-tenant']``)
references only that header, so it is memoised like any other request rule."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from wsgi_gateway.cel import get_engine
from wsgi_gateway.config.policies import PolicyConfig
from wsgi_gateway.policy.evaluate import CelRuleSet
from wsgi_gateway.policy.rulefile import load_rule_file
from wsgi_gateway.policy.testing import case_identity, decide

RULE = "'x-tenant' in request.headers && request.headers['x-tenant'] != claims.tenant"


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
def test_header_presence_references_only_that_header(engine):
    program = get_engine(engine).compile(RULE, result=bool)
    assert program.references == {"request.headers.x-tenant", "claims.tenant"}


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
def test_header_presence_rule_is_memoised_and_still_right(tmp_path, engine):
    (tmp_path / "r.yaml").write_text(f'deny: [{{when: "{RULE}", reason: "wrong tenant"}}]\n')
    ruleset = CelRuleSet(load_rule_file(tmp_path / "r.yaml", get_engine(engine)), get_engine(engine),
                         "api", MappingProxyType({"basic": PolicyConfig()}), default_policy="basic")
    identity = case_identity({"claims": {"sub": "ann", "tenant": "acme"}}, {})
    requests = [
        ({"path": "/a", "headers": {"X-Tenant": "acme"}}, True),
        ({"path": "/b", "headers": {"X-Tenant": "acme", "X-Other": "1"}}, True),   # memo hit
        ({"path": "/c", "headers": {"X-Tenant": "globex"}}, False),
        ({"path": "/d", "headers": {}}, True),
        ({"path": "/e", "headers": {"X-Other": "2"}}, True),                       # memo hit
    ]
    for request, allowed in requests:
        assert decide(ruleset, identity, request).allowed is allowed, request
    # one memo entry per distinct x-tenant value (acme, globex, absent): other headers
    # and paths do not defeat it (white-box: the memo is the thing under test)
    assert len(ruleset._memo) == 3


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
def test_a_request_only_rule_is_shared_by_every_identity(tmp_path, engine):
    """Issue 15: the memo was keyed per token, so every new identity re-ran a rule that
    reads only the request. A rule that also reads the token stays per identity."""
    (tmp_path / "r.yaml").write_text(
        'allow: [{when: "request.method in [\'GET\', \'HEAD\']"}]\n'
        'deny: [{when: "request.method == \'GET\' && claims.sub == \'mallory\'", reason: "no"}]\n')
    ruleset = CelRuleSet(load_rule_file(tmp_path / "r.yaml", get_engine(engine)), get_engine(engine),
                         "api", MappingProxyType({"basic": PolicyConfig()}), default_policy="basic")
    for sub in ("ann", "bob", "cy", "mallory"):
        identity = case_identity({"claims": {"sub": sub}}, {})
        assert decide(ruleset, identity, {"method": "GET", "path": "/x"}).allowed is (sub != "mallory")
    # the allow rule: one entry for GET whoever asks; the deny rule: one per identity
    assert len(ruleset._memo) == 1 + 4


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
def test_identities_reading_alike_share_a_memo_entry_typed(tmp_path, engine):
    """The memo keys on the token values a rule reads, with their types: identities with
    the same groups share an entry; ``true`` and ``1`` (equal in Python) do not."""
    (tmp_path / "r.yaml").write_text(
        'deny:\n'
        '  - {when: "request.method == \'DELETE\' && !(\'ops\' in identity.groups)", reason: "ops"}\n'
        '  - {when: "request.method == \'GET\' && dyn(claims.flag) == true", reason: "flagged"}\n')
    ruleset = CelRuleSet(load_rule_file(tmp_path / "r.yaml", get_engine(engine)), get_engine(engine),
                         "api", MappingProxyType({"basic": PolicyConfig()}), default_policy="basic")
    for sub, flag, allowed in [("ann", 1, True), ("bob", True, False), ("cy", 1, True),
                               ("dee", True, False)]:
        identity = case_identity({"claims": {"sub": sub, "flag": flag, "groups": ["sales"]}}, {})
        assert decide(ruleset, identity, {"method": "GET", "path": "/x"}).allowed is allowed, sub
    # the groups rule: one entry for GET and groups [sales]; the flag rule: 1 and true apart
    assert len(ruleset._memo) == 1 + 2
