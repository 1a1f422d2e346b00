"""``rules test``: assertions on the deciding rule, rule errors, identity and headers;
an empty ``expect`` fails; ``--coverage`` and ``--format json`` (issue 11, item 7)."""

from __future__ import annotations

import json
import textwrap

import pytest

from wsgi_gateway.cli import main
from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.testing import Coverage, run_test_file

ENGINES = ["cel-python", "cel-cpp"]

RULES = """\
map:
  tenant: "has(claims.tenant) ? claims.tenant : ''"
deny:
  - {name: no-delete, when: "request.method == 'DELETE'", reason: "no deletes"}
  - {name: broken, when: "request.path == '/broken' && claims.missing.deeper == 1", reason: "broken"}
allow:
  - {name: reads, when: "request.method == 'GET'"}
  - {name: never, when: "request.method == 'TRACE'"}
headers:
  X-Tenant: "identity.tenant"
"""


def run(tmp_path, cases: str, engine: str, coverage=None):
    (tmp_path / "r.yaml").write_text(RULES)
    test = tmp_path / "r.test.yaml"
    test.write_text("cases:\n" + textwrap.indent(textwrap.dedent(cases), "  "))
    return run_test_file(test, get_engine(engine), coverage)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case, diff", [
    pytest.param("- {name: e, claims: {sub: a}, request: {method: GET}, expect: {}}",
                 "expect is empty", id="empty expect is an error"),
    pytest.param("- {name: e, claims: {sub: a}, request: {method: DELETE}, expect: {decision: deny, rule: reads}}",
                 "rule: expected 'reads' to decide, got 'no-delete'", id="wrong deciding rule"),
    pytest.param("- {name: e, claims: {sub: a}, request: {method: POST}, expect: {rule: never}}",
                 "rule: expected 'never' to decide, got 'allow'", id="no allow rule matched"),
    pytest.param("- {name: e, claims: {sub: a}, request: {method: GET, path: /broken}, expect: {errors: []}}",
                 "errors: expected [], got ['broken']", id="an unexpected rule error"),
    pytest.param("- {name: e, claims: {sub: a}, request: {method: GET}, expect: {errors: [broken]}}",
                 "errors: expected ['broken'], got []", id="an expected error that did not happen"),
    pytest.param("- {name: e, claims: {tenant: acme}, request: {method: GET}, expect: {identity: {tenant: globex}}}",
                 "identity.tenant: expected 'globex', got 'acme'", id="mapped identity"),
    pytest.param("- {name: e, claims: {tenant: acme}, request: {method: GET}, expect: {headers: {X-Tenant: null}}}",
                 "headers.X-Tenant: expected None, got 'acme'", id="injected header"),
])
def test_assertions_fail_with_a_diff(tmp_path, engine, case, diff):
    [result] = run(tmp_path, case, engine)
    assert not result.passed and any(diff in d for d in result.diffs), result.diffs


@pytest.mark.parametrize("engine", ENGINES)
def test_assertions_pass(tmp_path, engine):
    results = run(tmp_path, """\
        - name: deleting
          claims: {sub: a, tenant: acme}
          request: {method: DELETE}
          expect: {decision: deny, rule: no-delete, errors: []}
        - name: the broken rule errors, and errors deny
          claims: {sub: a}
          request: {method: GET, path: /broken}
          expect: {decision: deny, rule: broken, errors: [broken]}
        - name: reading
          claims: {sub: a, tenant: acme}
          request: {method: GET}
          expect: {decision: allow, rule: reads, identity: {tenant: acme}, headers: {X-Tenant: acme}}
    """, engine)
    assert all(r.passed for r in results), [r.diffs for r in results]


def test_coverage_lists_rules_and_branches_no_case_exercised(tmp_path):
    coverage = Coverage()
    run(tmp_path, "- {name: e, claims: {sub: a}, request: {method: GET}, expect: {decision: allow}}",
        "cel-python", coverage)
    gaps = {g["rule"]: g["never"] for g in coverage.gaps()}
    assert gaps == {"no-delete": ["true"], "broken": ["true"], "never": ["true"], "reads": ["false"]}
    # map and headers ran: nothing else is missing


def test_cli_json_and_coverage(tmp_path, capsys):
    run(tmp_path, "- {name: e, claims: {sub: a}, request: {method: GET}, expect: {decision: deny}}", "cel-python")
    status = main(["rules", "test", str(tmp_path), "--format", "json", "--coverage"])
    out = json.loads(capsys.readouterr().out)
    assert status == 1 and out["failed"] == 1 and out["passed"] == 0
    assert out["cases"][0]["diffs"] == ["decision: expected deny, got allow"]
    assert {g["rule"] for g in out["coverage"]["gaps"]} == {"no-delete", "broken", "never", "reads"}
