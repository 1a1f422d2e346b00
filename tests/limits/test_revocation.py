"""Revocations survive what they can (issue 10, item 4): one memcached node's restart
(markers on every node), and with ``store.revocations_file`` a restart of all of them.
In-process gateways on a fake clock; real memcached processes, really restarted."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from tests.support.gateways import ISSUER, SECRET_ENV, gateway_config, mint
from tests.support.processes import REPO, Memcached
from wsgi_gateway import load_config
from wsgi_gateway.authn.apikeys_store import ApiKeys, key_digest, new_key
from wsgi_gateway.limits.sessions import Sessions
from wsgi_gateway.store import build_store


@pytest.fixture
def cluster():
    nodes = [Memcached().start(), Memcached().start()]
    yield nodes
    for node in nodes:
        node.stop()


def restart(node: Memcached) -> None:
    node.stop()
    node.start()  # same port, empty


LOST = [pytest.param(0, id="first node restarted"), pytest.param(1, id="second node restarted")]


def cluster_config(nodes, **kw) -> dict:
    config = gateway_config(nodes[0].address, policies={"basic": {}}, **kw)
    config["store"]["servers"] = [n.address for n in nodes]
    return config


@pytest.mark.parametrize("lost", LOST)
def test_a_session_revocation_survives_one_node_restart(clocked, clock, cluster, tmp_path, lost):
    config = cluster_config(cluster)
    gw = clocked(config)
    token = mint(sub="mallory", iat=clock.now - 5)
    assert gw.get(token).status_code == 200
    loaded = load_config(tmp_path / "gw.yaml")
    Sessions(build_store(loaded.store), loaded.sessions, clock=clock).revoke_identity(ISSUER, "mallory")
    restart(cluster[lost])
    clock.advance(1.1)  # past the session cache
    response = gw.get(token)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["detail"] == "the session was revoked"


@pytest.mark.parametrize("lost", LOST)
def test_a_keys_file_key_revocation_survives_one_node_restart(clocked, clock, cluster, tmp_path,
                                                              lost):
    key, key_id = new_key()
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(
        {"keys": [{"id": key_id, "sha256": key_digest(key), "api": "api"}]}))
    config = cluster_config(cluster, api={"auth": [{"method": "apikey", "keys_file": "keys.yaml"}]})
    gw = clocked(config)
    assert gw.get(headers={"X-API-Key": key}).status_code == 200
    loaded = load_config(tmp_path / "gw.yaml")
    from wsgi_gateway.authn.apikey import static_keys

    record = static_keys(loaded.apis[0].auth[0].options, loaded)[key_id]
    ApiKeys(build_store(loaded.store), clock=clock).revoke_static(record)
    restart(cluster[lost])
    clock.advance(1.1)  # past the key cache
    response = gw.get(headers={"X-API-Key": key})
    assert response.status_code == 401 and response.json["detail"] == "the API key was revoked"


def cli(config_path, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", *args[:1], "-c",
                             str(config_path), *args[1:]], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={**SECRET_ENV, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result


def test_with_a_revocations_file_revocation_survives_a_full_restart(clocked, clock, tmp_path,
                                                                     private_memcached):
    key, key_id = new_key()
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(
        {"keys": [{"id": key_id, "sha256": key_digest(key), "api": "api"}]}))
    config = gateway_config(private_memcached.address, policies={"basic": {}},
                            api={"auth": ["jwt", {"method": "apikey", "keys_file": "keys.yaml"}]})
    config["store"]["revocations_file"] = "revoked.jsonl"
    gw = clocked(config)
    token = mint(sub="eve", iat=clock.now - 5)
    assert gw.get(token).status_code == 200
    assert gw.get(headers={"X-API-Key": key}).status_code == 200
    cli(tmp_path / "gw.yaml", "sessions", "revoke", "--identity", ISSUER, "eve")
    cli(tmp_path / "gw.yaml", "keys", "revoke", key_id)
    assert (tmp_path / "revoked.jsonl").read_text().count("\n") == 2
    restart(private_memcached)  # every node: only the file remembers
    clock.advance(1.1)
    assert gw.get(token).status_code == 401
    assert gw.get(headers={"X-API-Key": key}).status_code == 401
    assert gw.get(mint(sub="eve", iat=clock.now + 1)).status_code == 200  # issued later


def test_revocations_file_directory_must_exist(tmp_path):
    from wsgi_gateway.errors import ConfigError

    path = tmp_path / "gw.yaml"
    config = gateway_config(None, policies={"basic": {}})
    config["store"]["revocations_file"] = "nowhere/revoked.jsonl"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any("gw.yaml:" in p and "store.revocations_file" in p and "does not exist" in p
               for p in err.value.problems), err.value.problems
