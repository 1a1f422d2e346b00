"""JWT access tokens end to end: real gunicorn workers, a real provider over HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.idp import TestIdP

pytestmark = pytest.mark.e2e


def config(idp: TestIdP, warmup: str = "3s") -> str:
    return f"""
        app: contrib.demo.echo:app
        providers:
          - name: corp
            issuer: {idp.issuer}
            discovery: true
            algorithms: [RS256, ES256]
            audiences: [test-api]
            jwks: {{timeout: 500ms, warmup: {warmup}, refetch_interval: 1s}}
        apis:
          - {{name: orders, path: /orders, auth: [jwt]}}
    """


@pytest.fixture
def idp():
    provider = TestIdP(issuer_path="/realms/e2e").start()
    yield provider
    provider.stop()


def test_tokens_under_gunicorn(gateway, idp):
    gw = gateway(config(idp))
    token = idp.issue({"sub": "ann"})
    response = requests.get(gw.url + "/orders/1", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200
    assert "Authorization" not in response.json()["headers"]
    missing = requests.get(gw.url + "/orders/1", timeout=5)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
    bad = requests.get(gw.url + "/orders/1", headers={"Authorization": f"Bearer {token[:-4]}AAAA"}, timeout=5)
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    assert token not in gw.log() and token[-20:] not in gw.log()
    assert "identity=test-client:ann" in gw.log()


def test_rotation_reaches_every_worker(gateway, idp):
    gw = gateway(config(idp))
    kid = idp.rotate("ES256")
    for _ in range(8):  # sync workers close each connection: requests spread over both
        token = idp.issue(kid=kid)
        r = requests.get(gw.url + "/orders", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200


def test_idp_down_at_start_is_503_then_recovers(gateway, idp):
    idp.stop()
    gw = gateway(config(idp, warmup="300ms"))
    token = idp.issue()
    response = requests.get(gw.url + "/orders", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 503 and response.headers["Retry-After"]
    ready = requests.get(gw.url + "/.gateway/ready", timeout=5)
    assert ready.status_code == 503 and "keys not loaded" in ready.text
    idp.start()
    deadline = time.monotonic() + 10
    while True:
        r = requests.get(gw.url + "/orders", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200
