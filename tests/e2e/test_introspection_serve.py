"""Introspection end to end: real gunicorn workers sharing answers through memcached,
a real provider over HTTP."""

from __future__ import annotations

import time

import pytest
import requests
import yaml

from tests.support.idp import INTROSPECTION_PATH, TestIdP
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.e2e
SECRET = "e2e:secret+/%"


@pytest.fixture
def idp():
    provider = TestIdP(issuer_path="/realms/e2e").start()
    provider.add_client("gateway", SECRET)
    yield provider
    provider.stop()


def start(tmp_path, idp: TestIdP, memcached, **options) -> GatewayProcess:
    auth = {"method": "introspection", "issuer": idp.issuer, "discovery": True,
            "client_id": "gateway", "client_secret": {"env": "E2E_INTROSPECTION_SECRET"},
            "timeout": "500ms", **options}
    config = {"app": "contrib.demo.echo:app",
              "store": {"backend": "memcached", "servers": [memcached.address]},
              "apis": [{"name": "orders", "path": "/orders", "auth": [auth]}]}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"E2E_INTROSPECTION_SECRET": SECRET}
    return GatewayProcess(path, workers=2, env=env).start()


def get(gw: GatewayProcess, token: str) -> requests.Response:
    return requests.get(gw.url + "/orders/1", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_workers_share_answers_and_revocation_lands_within_cache_ttl(tmp_path, idp, memcached):
    gw = start(tmp_path, idp, memcached, cache_ttl="2s")
    try:
        token = idp.issue_opaque({"sub": "ann"})
        cached_at = time.monotonic()
        # sync workers close every connection, so these spread over both workers
        assert [get(gw, token).status_code for _ in range(10)] == [200] * 10
        assert idp.requests_count(INTROSPECTION_PATH) == 1
        idp.revoke(token)
        assert get(gw, token).status_code == 200  # cached: the documented window
        # Workers may disagree inside the window (one may re-ask early because memcached
        # rounds TTLs down); past cache_ttl from the first answer, none may accept it.
        time.sleep(max(0.0, cached_at + 2.05 - time.monotonic()))
        assert [get(gw, token).status_code for _ in range(6)] == [401] * 6
        log = gw.log()
        assert token not in log and token[-16:] not in log and SECRET not in log
        assert "identity=test-client:ann" in log
    finally:
        gw.stop()


def test_provider_down_cached_tokens_pass_unknown_get_503(tmp_path, idp, memcached):
    gw = start(tmp_path, idp, memcached)
    try:
        cached, unknown = idp.issue_opaque(), idp.issue_opaque()
        assert get(gw, cached).status_code == 200
        idp.stop()
        assert [get(gw, cached).status_code for _ in range(4)] == [200] * 4
        response = get(gw, unknown)
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
        assert response.headers["Content-Type"] == "application/problem+json"
    finally:
        gw.stop()
