"""Every authentication method under real gunicorn, each API sharing one rule file and
one set of policies: the rules and limits treat every kind of client alike."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

import pytest
import requests
import yaml

from tests.authn.test_signatures import cavage, http_date
from tests.support.gateways import SECRET_ENV, mint, provider
from tests.support.idp import TestIdP
from tests.support.processes import REPO, GatewayProcess
from wsgi_gateway.authn.users_file import add_user

pytestmark = pytest.mark.e2e

RULES = """\
map:
  id: "token.method + ':' + token.sub"   # token is normalised for every method
assign:
  - {policy: partner, when: "token.method in ['hmac', 'service-token']"}
deny:
  - {when: "request.method == 'DELETE'", reason: "nobody deletes"}
headers:
  X-Who: "identity.id"
  X-Quota-Left: "has(limits.quota.remaining) ? string(limits.quota.remaining) : 'none'"
"""
HMAC_SECRET = "e2e-hmac-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def idp():
    provider = TestIdP().start()
    provider.add_client("gateway", "e2e-introspection-secret")
    yield provider
    provider.stop()


@pytest.fixture
def served(tmp_path, memcached, idp):
    (tmp_path / "rules.yaml").write_text(RULES)
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "wonderland", method="scrypt:1024:8:1")
    (tmp_path / "signing.yaml").write_text(yaml.safe_dump({"keys": {"k1": {"env": "E2E_HMAC"}}}))
    tokens = tmp_path / "service-tokens.yaml"
    tokens.write_text(yaml.safe_dump({"billing": hashlib.sha256(b"svc-token").hexdigest()}))
    custom = {"method": "custom", "class": "contrib.authenticators.service_token:ServiceToken",
              "options": {"tokens_file": str(tokens)}}
    methods = {"jwt": ["jwt"], "apikey": ["apikey"],
               "basic": [{"method": "basic", "users_file": "users.yaml"}],
               "hmac": [{"method": "hmac", "secrets_file": "signing.yaml"}], "custom": [custom],
               "introspection": [{"method": "introspection", "issuer": idp.issuer, "discovery": True,
                                  "client_id": "gateway", "client_secret": {"env": "E2E_INTROSPECTION"}}]}
    config = {
        "app": "contrib.demo.echo:app",
        "store": {"backend": "memcached", "servers": [memcached.address]},
        "providers": [provider()],
        "policies": {"basic": {"quota": "100/1d"}, "partner": {"quota": "1000/1d"}},
        "apis": [{"name": name, "path": f"/{name}", "auth": auth, "rules": "rules.yaml",
                  "default_policy": "basic"} for name, auth in methods.items()],
    }
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**SECRET_ENV, "E2E_HMAC": HMAC_SECRET, "E2E_INTROSPECTION": "e2e-introspection-secret",
           "PATH": "/usr/bin:/bin"}
    created = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "keys", "-c", str(path), "create", "--api", "apikey"],
        cwd=REPO, capture_output=True, text=True, timeout=30, env=env)
    assert created.returncode == 0, created.stderr
    gw = GatewayProcess(path, workers=2, env=env).start()
    yield gw, created.stdout.strip(), idp
    gw.stop()


def credentials(name: str, key: str, method: str = "GET", idp=None) -> dict:
    if name == "jwt":
        return {"Authorization": f"Bearer {mint(sub='ann')}"}
    if name == "apikey":
        return {"X-API-Key": key}
    if name == "basic":
        return {"Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}
    if name == "hmac":
        headers = {"Date": http_date()}
        headers["Authorization"] = cavage(method, "/hmac/x", headers, key_id="k1", secret=HMAC_SECRET)
        return headers
    if name == "introspection":
        return {"Authorization": f"Bearer {idp.issue_opaque({'sub': 'opaque-user'})}"}
    return {"X-Service-Token": "svc-token"}


@pytest.mark.parametrize("name, who, quota", [
    pytest.param("jwt", "jwt:ann", "99", id="jwt"),
    pytest.param("apikey", "apikey:", "99", id="apikey"),
    pytest.param("basic", "basic:alice", "99", id="basic"),
    pytest.param("hmac", "hmac:k1", "999", id="hmac"),
    pytest.param("custom", "service-token:billing", "999", id="custom"),
    pytest.param("introspection", "introspection:opaque-user", "99", id="introspection"),
])
def test_one_rule_file_and_one_policy_set_for_every_method(served, name, who, quota):
    gw, key, idp = served
    response = requests.get(f"{gw.url}/{name}/x", headers=credentials(name, key, idp=idp), timeout=10)
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert seen["X-Who"].startswith(who)
    assert seen["X-Quota-Left"] == quota  # the policy the rules assigned, counted in memcached
    assert not any(h in seen for h in ("Authorization", "X-Api-Key", "X-Service-Token"))
    denied = requests.delete(f"{gw.url}/{name}/x", headers=credentials(name, key, "DELETE", idp),
                             timeout=10)
    assert denied.status_code == 403 and denied.json()["detail"] == "nobody deletes"
