"""The rule layer end to end under gunicorn: decisions, headers, shadow, hot reload."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import requests
import yaml

from tests.support.gateways import SECRET_ENV, gateway_config, mint
from tests.support.processes import REPO, GatewayProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

RULES = """\
validate:
  - {expr: "claims.tenant == 'acme'", message: "this API is for acme"}
map:
  groups: "has(claims.groups) ? claims.groups : []"
assign:
  - {policy: gold, when: "'admins' in identity.groups"}
default_policy: basic
deny:
  - {when: "request.method == 'DELETE' && !('ops' in identity.groups)", reason: "only ops may delete"}
  - {when: "request.path.startsWith('/api/broken') && claims.missing.deeper == 1", reason: "broken rule"}
  - {when: "request.path.startsWith('/api/shadow')", reason: "shadowed", shadow: true}
allow:
  - {when: "request.method in ['GET', 'DELETE']"}
headers:
  X-User-Id: "claims.sub"
  X-Groups: "identity.groups"
"""


@pytest.fixture
def served(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    config = gateway_config(None, policies={"basic": {}, "gold": {}}, api={"rules": "rules.yaml"})
    config.update({"app": "contrib.demo.echo:app"})
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = GatewayProcess(path, workers=2, env=SECRET_ENV).start()
    yield gw, tmp_path
    gw.stop()


def call(gw, method="GET", path="/api/x", token=None, headers=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, gw.url + path, headers=headers, timeout=5)


def test_decisions_under_gunicorn(served):
    gw, _ = served
    acme = mint(tenant="acme", groups=["admins"])
    ok = call(gw, token=acme, headers={"X-User-Id": "spoofed", "X-Groups": "spoofed"})
    assert ok.status_code == 200
    seen = ok.json()["headers"]
    assert seen["X-User-Id"] == "ann" and seen["X-Groups"] == "admins"
    assert ok.json()["gateway"]["policies"] == ["gold"]  # the context, as the upstream sees it
    assert "Authorization" not in seen
    invalid = call(gw, token=mint(tenant="globex"))
    assert invalid.status_code == 401 and invalid.json()["detail"] == "this API is for acme"
    assert 'error="invalid_token"' in invalid.headers["WWW-Authenticate"]
    denied = call(gw, "DELETE", token=acme)
    assert denied.status_code == 403 and denied.json()["detail"] == "only ops may delete"
    missed = call(gw, "POST", token=acme)
    assert missed.status_code == 403 and missed.json()["detail"] == "no allow rule matched"
    broken = call(gw, path="/api/broken", token=acme)
    assert broken.status_code == 403 and broken.json()["detail"] == "broken rule"  # errors deny
    shadow = call(gw, path="/api/shadow", token=acme)
    assert shadow.status_code == 200
    deadline = time.monotonic() + 5
    while "shadow rule" not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "shadow rule" in gw.log() and "would=\"shadow: would deny\"" in gw.log()


def test_bad_rules_on_reload_keep_the_old_ones(served):
    gw, tmp_path = served
    acme = mint(tenant="acme")
    (tmp_path / "rules.yaml").write_text("deny:\n  - {when: \"request.method ==\", reason: broken}\n")
    old_workers = gw.worker_pids()
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload rejected" not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "reload rejected" in gw.log() and "rules.yaml:2" in gw.log()
    eventually(lambda: (pids := gw.worker_pids()) and len(pids) == 2 and not pids & old_workers,
               what="two new workers after SIGHUP")  # they start with the old rules
    assert call(gw, token=acme).status_code == 200
    assert call(gw, token=mint(tenant="globex")).status_code == 401  # old validate still applies
    (tmp_path / "rules.yaml").write_text('deny:\n  - {when: "true", reason: "closed for today"}\n')
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = call(gw, token=acme)
        if response.status_code == 403:
            break
        time.sleep(0.2)
    assert response.status_code == 403 and response.json()["detail"] == "closed for today"


def test_explain(served):
    gw, tmp_path = served
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"iss": "https://limits.test", "sub": "bob", "tenant": "acme",
                                  "groups": ["sales"], "azp": "app"}))
    result = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "explain", "-c", str(tmp_path / "gw.yaml"),
         "--claims", str(claims), "--request", "DELETE /api/orders/7"],
        cwd=REPO, capture_output=True, text=True, timeout=30, env={**SECRET_ENV, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "api: api (rules: rules.yaml)" in out
    assert "validate[0]: true" in out and "deny[0]: true  (denies)" in out
    assert "policies: basic" in out
    assert "decided by: deny[0]" in out
    assert out.strip().endswith("decision: 403 forbidden only ops may delete")
    token = mint(tenant="acme", groups=["ops"])
    result = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "explain", "-c", str(tmp_path / "gw.yaml"),
         "--token", token, "--request", "GET /api/orders/7"],
        cwd=REPO, capture_output=True, text=True, timeout=30, env={**SECRET_ENV, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "authentication: jwt via t: subject 'ann'" in result.stdout
    assert result.stdout.strip().endswith("decision: allow")
    assert token not in result.stdout
