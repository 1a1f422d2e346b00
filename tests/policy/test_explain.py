"""``explain`` answers what the gateway answers: status, error code, which rule decided.

Each case runs ``explain`` and the same request through an in-process gateway built
from the same config, and compares them (issue 10: a traceback for a path no API serves,
``decision: 500`` for a garbage token the gateway answers with 401).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.gateways import SECRET_ENV, InProcess, gateway_config, mint
from wsgi_gateway.cli import main
from wsgi_gateway.explain import explain

RULES = """\
validate:
  - {expr: "claims.tenant == 'acme'", message: "this API is for acme"}
map:
  groups: "has(claims.groups) ? claims.groups : []"
default_policy: basic
deny:
  - {name: ops-only-delete, when: "request.method == 'DELETE' && !('ops' in identity.groups)", reason: "only ops may delete"}
allow:
  - {name: reads, when: "request.method in ['GET', 'DELETE']"}
headers:
  X-User-Id: "claims.sub"
  X-Admin: "'admins' in identity.groups"
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "rules.yaml").write_text(RULES)
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
    return tmp_path, InProcess(tmp_path, config, name="live")


@pytest.mark.parametrize("method, path, token, status, code, decided_by", [
    pytest.param("GET", "/nowhere", "acme", 404, "not_found", "router", id="path no API serves"),
    pytest.param("GET", "/api/x", "garbage", 401, "unauthorized", "authentication", id="garbage token"),
    pytest.param("GET", "/api/x", None, 401, "unauthorized", "authentication", id="no token"),
    pytest.param("GET", "/api/x", "globex", 401, "invalid_token", "validate[0]", id="validate fails"),
    pytest.param("DELETE", "/api/x", "acme", 403, "forbidden", "ops-only-delete", id="deny rule"),
    pytest.param("POST", "/api/x", "acme", 403, "forbidden", "allow", id="no allow matched"),
    pytest.param("GET", "/api/x", "acme", 200, None, "reads", id="allowed"),
    pytest.param("GET", "/api//x", "acme", 400, "bad_request", "router", id="empty segment"),
])
def test_explain_answers_what_the_gateway_answers(setup, method, path, token, status, code, decided_by):
    tmp_path, live = setup
    token = {"acme": mint(tenant="acme"), "globex": mint(tenant="globex")}.get(token, token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    real = live.client.open(path, method=method, headers=headers)
    result = explain(str(tmp_path / "gw.yaml"), token=token, claims_file=None,
                     request=f"{method} {path}", headers=[])
    assert result.status == real.status_code
    assert (result.status, result.code, result.decided_by) == (status, code, decided_by)
    if code:
        assert result.code in real.json["type"]


def test_values_are_cel_syntax_with_expressions(setup, capsys):
    tmp_path, _ = setup
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"iss": "https://limits.test", "sub": "bob", "tenant": "acme",
                                  "groups": ["admins"]}))
    status = main(["explain", "-c", str(tmp_path / "gw.yaml"), "--claims", str(claims),
                   "--request", "GET /api/x", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["status"] == 200 and out["decided_by"] == "reads"
    steps = {s["name"]: s for s in out["rules"]}
    assert steps["validate[0]"]["value"] == "true"  # not Python's True
    assert steps["validate[0]"]["expression"] == "claims.tenant == 'acme'"
    assert steps["groups"]["value"] == "['admins']"
    assert steps["X-Admin"]["value"] == "true"
    assert out["upstream_headers"]["X-User-Id"] == "bob"
    main(["explain", "-c", str(tmp_path / "gw.yaml"), "--claims", str(claims), "--request", "GET /nowhere"])
    text = capsys.readouterr().out
    assert "Traceback" not in text and text.strip().endswith("decision: 404 not_found no API is served at this path")


def test_explain_counts_nothing(tmp_path, monkeypatch):
    """explain reads the store but never writes: a quota of 1 is not spent by explaining."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config = gateway_config(None, policies={"basic": {"rate": "1/m"}})
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
    token = mint()
    for _ in range(3):
        result = explain(str(tmp_path / "gw.yaml"), token=token, claims_file=None,
                         request="GET /api/x", headers=[])
        assert result.status == 200, result.text()
