"""The degraded-mode matrix (issue 10, item 5): per concern, open or closed while the
store fails, with memcached really frozen (SIGSTOP) or really killed.

Defaults: open where nothing the store alone knows is lost and identity does not depend
on it (rate limits, quotas, revocation checks of a verified JWT); closed where the
identity lives in the store (gateway-issued API keys)."""

from __future__ import annotations


import pytest

from tests.store.faults import fault_in
from tests.support.gateways import gateway_config, mint
from wsgi_gateway.authn.apikeys_store import ApiKeys
from wsgi_gateway.errors import StoreError
from wsgi_gateway.store.memcached import MemcachedStore

FAULTS = [pytest.param("freeze", id="frozen"), pytest.param("stop", id="killed")]

# (concern, its setting, how the client authenticates, policy, status while the store fails)
CELLS = [
    pytest.param("rate_limits", "open", "keyless", {"rate": "5/s"}, 200, id="rate limits open"),
    pytest.param("rate_limits", "closed", "keyless", {"rate": "5/s"}, 503, id="rate limits closed"),
    pytest.param("quotas", "open", "keyless", {"quota": "100/1d"}, 200, id="quotas open"),
    pytest.param("quotas", "closed", "keyless", {"quota": "100/1d"}, 503, id="quotas closed"),
    pytest.param("revocation_checks", "open", "jwt", {}, 200, id="JWT revocation checks open"),
    pytest.param("revocation_checks", "closed", "jwt", {}, 503, id="JWT revocation checks closed"),
    pytest.param("store_credentials", "closed", "apikey", {}, 503, id="API keys closed"),
    pytest.param("store_credentials", "open", "apikey", {}, 200, id="API keys open (last record seen)"),
]


def client_for(method: str, memcached, clock):
    """(API config, request kwargs) for one way of authenticating."""
    if method == "keyless":
        return {"auth": ["keyless"]}, {}
    if method == "jwt":
        return {}, {"token": mint(sub="degraded", iat=clock.now - 5)}
    key, _record = ApiKeys(MemcachedStore([("127.0.0.1", memcached.port)]), clock=clock).create("api")
    return {"auth": ["apikey"]}, {"headers": {"X-API-Key": key}}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("concern, setting, method, policy, status", CELLS)
def test_each_cell_of_the_matrix(clocked, clock, private_memcached, fault, concern, setting,
                                 method, policy, status):
    api, request = client_for(method, private_memcached, clock)
    config = gateway_config(private_memcached.address, policies={"basic": policy}, api=api)
    config["store"]["on_failure"] = {concern: setting}
    gw = clocked(config)
    assert gw.get(**request).status_code == 200  # seen once while the store answers
    fault_in(private_memcached, fault)
    try:
        clock.advance(1.1)  # past every per-worker cache (sessions, key records)
        responses = [gw.get(**request) for _ in range(3)]
        assert [r.status_code for r in responses] == [status] * 3, responses[0].get_data(as_text=True)
        if status == 503:
            assert responses[0].headers["Retry-After"] == "1"
            assert responses[0].json["type"].endswith(("unavailable", "store_unavailable"))
    finally:
        private_memcached.resume()


@pytest.mark.parametrize("fault", FAULTS)
def test_defaults_serve_verified_tokens_and_refuse_api_keys(clocked, clock, private_memcached,
                                                            fault):
    """Today an outage served ~1 s of 200 (cached sessions), then 503 for everything."""
    key, _ = ApiKeys(MemcachedStore([("127.0.0.1", private_memcached.port)]),
                     clock=clock).create("keys")
    # short per-worker caches, so the test also shows the old behaviour without a clock
    config = gateway_config(private_memcached.address,
                            policies={"basic": {"rate": "100/s", "quota": "1000/1d"}},
                            sessions={"cache_ttl": "50ms"})
    config["apis"].append({"name": "keys", "path": "/keys", "default_policy": "basic",
                           "auth": [{"method": "apikey", "cache_ttl": "50ms"}]})
    gw = clocked(config)
    token = mint(sub="steady", iat=clock.now - 5)
    assert gw.get(token).status_code == 200
    assert gw.get(path="/keys/x", headers={"X-API-Key": key}).status_code == 200
    fault_in(private_memcached, fault)
    try:
        for _ in range(3):
            clock.advance(1.1)
            assert gw.get(token).status_code == 200
            assert gw.get(path="/keys/x", headers={"X-API-Key": key}).status_code == 503
    finally:
        private_memcached.resume()


def test_an_unknown_concern_is_refused_with_its_line(tmp_path, memcached):
    import yaml

    from wsgi_gateway import load_config
    from wsgi_gateway.errors import ConfigError

    config = gateway_config(memcached.address, policies={"basic": {}})
    config["store"]["on_failure"] = {"rate_limit": "closed"}
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "gw.yaml")
    assert any("store.on_failure.rate_limit" in p and "rate_limits" in p for p in err.value.problems), \
        err.value.problems


@pytest.mark.parametrize("fault", FAULTS)
def test_the_revocations_file_still_refuses_while_the_store_fails(clocked, clock, tmp_path,
                                                                   private_memcached, fault):
    from wsgi_gateway import load_config
    from wsgi_gateway.limits.sessions import Sessions
    from wsgi_gateway.store import build_store
    from tests.support.gateways import ISSUER

    store = MemcachedStore([("127.0.0.1", private_memcached.port)])
    key, record = ApiKeys(store, clock=clock).create("keys")
    config = gateway_config(private_memcached.address, policies={"basic": {}})
    config["apis"].append({"name": "keys", "path": "/keys", "auth": ["apikey"],
                           "default_policy": "basic"})
    config["store"]["revocations_file"] = "revoked.jsonl"
    config["store"]["on_failure"] = {"store_credentials": "open"}
    gw = clocked(config)
    revoked, kept = mint(sub="revoked", iat=clock.now - 5), mint(sub="kept", iat=clock.now - 5)
    for token in (revoked, kept):
        assert gw.get(token).status_code == 200
    assert gw.get(path="/keys/x", headers={"X-API-Key": key}).status_code == 200
    loaded = load_config(tmp_path / "gw.yaml")
    durable = build_store(loaded.store, clock=clock)
    fault_in(private_memcached, fault)
    try:
        Sessions(durable, loaded.sessions, clock=clock).revoke_identity(ISSUER, "revoked")
        with pytest.raises(StoreError):  # `keys revoke` fails, but its marker is in the file
            ApiKeys(durable, clock=clock).revoke(record.id)
        clock.advance(1.1)
        assert gw.get(revoked).status_code == 401
        assert gw.get(kept).status_code == 200  # open: served without the store
        response = gw.get(path="/keys/x", headers={"X-API-Key": key})
        assert response.status_code == 401 and response.json["detail"] == "the API key was revoked"
    finally:
        private_memcached.resume()
