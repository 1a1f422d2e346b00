"""secret_key keys the digests that name credentials in the store (issue 10, item 9).

Whoever can write to memcached must not be able to plant a record for a credential of
their own; with a plain SHA-256 they can (the contrast cases below show it). Real
memcached, real gateways in process, a real introspection provider.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import pytest
from pymemcache.client.base import Client as RawClient

from tests.support.idp import TestIdP
from wsgi_gateway.authn.apikeys_store import ApiKeys, KeyRecord, new_key, record_key
from wsgi_gateway.authn.digests import CredentialDigests
from wsgi_gateway.store.memcached import MemcachedStore

KEY_A, KEY_B = b"a" * 32, b"b" * 32


@pytest.fixture(autouse=True)
def _secret_keys(monkeypatch):
    monkeypatch.setenv("DIGEST_TEST_KEY_A", KEY_A.decode())
    monkeypatch.setenv("DIGEST_TEST_KEY_B", KEY_B.decode())


def secret_keys(current: str | None, *previous: str) -> dict:
    out = {}
    if current:
        out["secret_key"] = {"env": f"DIGEST_TEST_KEY_{current}"}
    if previous:
        out["previous_secret_keys"] = [{"env": f"DIGEST_TEST_KEY_{p}"} for p in previous]
    return out


def plant(memcached, key: str, value: bytes) -> None:
    """Write to memcached as an attacker with network access to it would."""
    client = RawClient(("127.0.0.1", memcached.port))
    client.set(f"gw:{key}", value, expire=600, noreply=False)
    client.close()


# -- the digests themselves -------------------------------------------------------------------

def test_unkeyed_digests_are_plain_sha256_as_before():
    assert CredentialDigests().digest("apikey", "k") == hashlib.sha256(b"k").hexdigest()


def test_keyed_digests_depend_on_key_and_purpose():
    digests = CredentialDigests([KEY_A])
    keyed = digests.digest("apikey", "k")
    assert keyed != hashlib.sha256(b"k").hexdigest()
    assert keyed != digests.digest("introspection", "k")
    assert keyed != CredentialDigests([KEY_B]).digest("apikey", "k")


@pytest.mark.parametrize("written_with, read_with, matches", [
    pytest.param([KEY_A], [KEY_A], True, id="same key"),
    pytest.param([KEY_A], [KEY_B, KEY_A], True, id="rotated: the old key is a previous key"),
    pytest.param([KEY_A], [KEY_B], False, id="rotated: the old key dropped"),
    pytest.param([], [KEY_A], False, id="a plain SHA-256 under a keyed gateway"),
])
def test_matches_under_current_and_previous_keys(written_with, read_with, matches):
    stored = CredentialDigests(written_with).digest("apikey", "k")
    assert CredentialDigests(read_with).matches("apikey", stored, "k") is matches


# -- API key records ----------------------------------------------------------------------------

def apikey_config(memcached, **extra) -> dict:
    return {"store": {"backend": "memcached", "servers": [memcached.address]},
            "logging": {"access_log": False},
            "apis": [{"name": "api", "path": "/api", "auth": [{"method": "apikey", "source": "bearer"}]}],
            **extra}


@pytest.mark.parametrize("keys, status", [
    pytest.param(secret_keys("A"), 401, id="secret_key set: a planted record is refused"),
    pytest.param({}, 200, id="no secret_key: a planted record works (why secret_key matters)"),
])
def test_a_planted_api_key_record(memcached, in_process, keys, status):
    key, key_id = new_key()
    forged = KeyRecord(id=key_id, sha256=hashlib.sha256(key.encode()).hexdigest(), api="api",
                       subject="admin", created=time.time())
    plant(memcached, record_key(key_id), forged.encode())
    gw = in_process(apikey_config(memcached, **keys))
    assert gw.get(key).status_code == status


@pytest.mark.parametrize("keys, status", [
    pytest.param(secret_keys("A"), 200, id="same secret_key"),
    pytest.param(secret_keys("B", "A"), 200, id="rotated, the old key listed as previous"),
    pytest.param(secret_keys("B"), 401, id="rotated, the old key dropped"),
])
def test_secret_key_rotation(memcached, in_process, keys, status):
    issued = ApiKeys(MemcachedStore([("127.0.0.1", memcached.port)], namespace="gw"),
                     digests=CredentialDigests([KEY_A]))
    key, _ = issued.create("api")
    gw = in_process(apikey_config(memcached, **keys))
    assert gw.get(key).status_code == status


def test_the_cli_issues_keys_under_the_secret_key(memcached, tmp_path, in_process, capsys,
                                                  monkeypatch):
    import yaml

    from wsgi_gateway.cli import main

    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds the working directory
    config = apikey_config(memcached, **secret_keys("A"))
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["keys", "create", "-c", str(path), "--api", "api"]) == 0
    key = capsys.readouterr().out.strip()
    assert in_process(config).get(key).status_code == 200
    assert in_process(apikey_config(memcached, **secret_keys("B")), name="other").get(key).status_code == 401


# -- the introspection cache ------------------------------------------------------------------

@pytest.fixture(scope="module")
def idp():
    provider = TestIdP(issuer_path="/realms/digests").start()
    provider.add_client("gateway", "digest-test-client-secret")
    yield provider
    provider.stop()


@pytest.mark.parametrize("keys, status", [
    pytest.param(secret_keys("A"), 401, id="secret_key set: a planted answer is never read"),
    pytest.param({}, 200, id="no secret_key: a planted answer is believed (why secret_key matters)"),
])
def test_a_planted_introspection_answer(idp, memcached, in_process, monkeypatch, keys, status):
    monkeypatch.setenv("DIGEST_TEST_CLIENT_SECRET", "digest-test-client-secret")
    config = {"store": {"backend": "memcached", "servers": [memcached.address]},
              "logging": {"access_log": False}, **keys,
              "apis": [{"name": "api", "path": "/api", "auth": [{
                  "method": "introspection", "issuer": idp.issuer, "discovery": True,
                  "client_id": "gateway", "client_secret": {"env": "DIGEST_TEST_CLIENT_SECRET"},
                  "local_ttl": 0}]}]}
    gw = in_process(config)
    token = "made-up-token-the-provider-never-issued"
    prefix = gw.gateway.apis["api"].authenticators[0].prefix
    answer = {"active": True, "sub": "admin", "exp": time.time() + 600, "aud": "x"}
    plant(memcached, f"{prefix}:{hashlib.sha256(token.encode()).hexdigest()}",
          json.dumps({"answer": answer, "until": time.time() + 600}).encode())
    assert gw.get(token).status_code == status
