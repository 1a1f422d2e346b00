"""API keys end to end: the keys CLI as a process, real gunicorn workers, real memcached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
import yaml

from tests.support.processes import REPO, GatewayProcess

pytestmark = pytest.mark.e2e

def pid_app(environ, start_response):
    """The upstream: answers with the worker's process id."""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"pid": os.getpid()}).encode()]


def keys_cli(config, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "keys", "-c",
                             str(config), *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_revoked_key_is_refused_by_every_worker_within_a_second(tmp_path, memcached):
    config = tmp_path / "keys.yaml"
    config.write_text(yaml.safe_dump({
        "app": "tests.e2e.test_apikey_serve:pid_app",
        "store": {"backend": "memcached", "servers": [memcached.address]},
        "policies": {"gold": {"rate": "1000/s"}},
        "apis": [{"name": "orders", "path": "/orders", "auth": ["apikey"], "default_policy": "gold"}],
    }))
    key = keys_cli(config, "create", "--api", "orders", "--policy", "gold")
    gateway = GatewayProcess(config, workers=2).start()
    try:
        url, headers = gateway.url + "/orders/1", {"X-API-Key": key}
        pids = set()
        for _ in range(200):  # until both workers have served (and cached) the key
            response = requests.get(url, headers=headers, timeout=5)
            assert response.status_code == 200
            pids.add(response.json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2
        keys_cli(config, "revoke", key.split("_")[1])
        time.sleep(1.0)
        statuses = [requests.get(url, headers=headers, timeout=5).status_code for _ in range(40)]
        assert statuses == [401] * 40
        log = gateway.log()
        assert f"identity={key.split('_')[1]}:" in log and key.split("_", 2)[2] not in log
    finally:
        gateway.stop()
