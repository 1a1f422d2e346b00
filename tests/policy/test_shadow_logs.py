"""Shadow logs say whether a rule matched or errored and carry what a replay needs (the
request line, who, the values the rule read), never the token or a credential header."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from tests.support.gateways import gateway_config, mint

ENGINES = ["cel-python", "cel-cpp"]

RULES = """\
deny:
  - {name: admin-path, when: "request.path.startsWith('/api/admin') && claims.tier != 'gold'",
     reason: "admins only", shadow: true}
  - {name: broken, when: "request.path == '/api/broken' && claims.missing.deeper == 1", reason: "b", shadow: true}
  - {name: peeks, when: "request.headers['authorization'] == 'x' || request.headers['x-tenant'] == 'acme'",
     reason: "c", shadow: true}
"""


@pytest.fixture(params=ENGINES)
def gw(in_process, tmp_path, request):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES))
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    config["cel"] = {"engine": request.param}
    return in_process(config)


def shadow_lines(caplog) -> dict[str, dict]:
    return {r.gw["rule"]: r.gw for r in caplog.records if r.getMessage() == "shadow rule"}


@pytest.mark.parametrize("path, headers, rule, outcome, inputs", [
    pytest.param("/api/admin/x", {}, "admin-path", "matched",
                 {"claims.tier": "'silver'", "request.path": "'/api/admin/x'"}, id="matched"),
    pytest.param("/api/broken", {}, "broken", "error",
                 {"claims.missing.deeper": "<absent>", "request.path": "'/api/broken'"}, id="errored"),
    pytest.param("/api/x", {"X-Tenant": "acme"}, "peeks", "matched",
                 {"request.headers.authorization": "<redacted>", "request.headers.x-tenant": "'acme'"},
                 id="credential header redacted"),
])
def test_shadow_rule_lines(gw, caplog, path, headers, rule, outcome, inputs):
    token = mint(tier="silver")
    with caplog.at_level(logging.INFO, logger="wsgi_gateway.rules"):
        response = gw.get(token, path=path, headers=headers)
    assert response.status_code == 200  # shadow: nothing enforced
    line = shadow_lines(caplog)[rule]
    assert line["outcome"] == outcome and line["section"] == "deny"
    assert (line["method"], line["path"], line["sub"], line["iss"]) == ("GET", path, "ann", "https://limits.test")
    assert json.loads(line["inputs"]) == inputs
    if outcome == "error":
        assert line["error"] != "-"
    assert all(token not in str(r.__dict__) for r in caplog.records)
