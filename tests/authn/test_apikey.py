"""The apikey method, its store records and its CLI, on a real memcached.

Gateways are built in process (two of them sharing one memcached stand for two
workers); the CLI runs as a real process (``python -m wsgi_gateway.cli keys``,
which builds the ``wsgi-gateway`` parser with ``add_commands`` exactly as cli.py will).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import unquote

import pytest
import yaml
from pymemcache.client.base import Client as RawClient
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder, problem
from tests.support.clock import FakeClock
from tests.support.gateways import mint, provider
from tests.support.processes import REPO, free_port
from wsgi_gateway import build_app, load_config
from wsgi_gateway.authn.apikeys_store import ApiKeys, KeyStateError, record_key
from wsgi_gateway.config.limits import SessionsConfig
from wsgi_gateway.errors import ConfigError
from wsgi_gateway.limits.sessions import Sessions
from wsgi_gateway.logs import TextFormatter
from wsgi_gateway.store.memcached import MemcachedStore

# -- helpers ---------------------------------------------------------------------------

def gateway_config(memcached, method: dict | None = None, *, orders: dict | None = None,
                   store: dict | None = None) -> dict:
    """Two APIs taking keys; orders with the given method options."""
    return {
        "store": store or {"backend": "memcached", "servers": [memcached.address]},
        "providers": [provider()],
        "policies": {"gold": {"rate": "1000/s"}, "bronze": {"rate": "500/s"}},
        "apis": [
            {"name": "orders", "path": "/orders", "auth": [{"method": "apikey", **(method or {})}],
             "default_policy": "bronze", **(orders or {})},
            {"name": "billing", "path": "/billing", "auth": ["apikey"]},
        ],
    }


def key_store(memcached, clock=time.time) -> ApiKeys:
    return ApiKeys(MemcachedStore([("127.0.0.1", memcached.port)]), clock=clock)


def secret_of(key: str) -> str:
    return key.split("_", 2)[2]


class Gateway:
    """An in-process gateway with an injected clock (the ``in_process`` fixture has none)."""

    def __init__(self, tmp_path, config: dict, clock=time.time, name: str = "gw"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.upstream, self.clock = Recorder(), clock
        self.gateway = build_app(load_config(path), self.upstream, clock=clock)
        self.client = BufferedClient(LintMiddleware(self.gateway))

    def get(self, key: str | None = None, path: str = "/orders/x", header: str = "X-API-Key", **kw):
        headers = kw.pop("headers", {})
        if key is not None:
            headers[header] = key
        return self.client.get(path, headers=headers, **kw)

    @property
    def context(self):
        return self.upstream.environ["wsgi_gateway.context"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def gw(tmp_path, memcached, clock):
    """A gateway on the test's clock: its record cache (1 s) ends when the test says."""
    return Gateway(tmp_path, gateway_config(memcached), clock)


@pytest.fixture
def keys(memcached):
    return key_store(memcached)


def refused(response, description: str) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    body = problem(response)
    assert body["type"].endswith(":invalid_token")
    assert body["detail"] == description
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('ApiKey realm="orders", header="X-API-Key"')
    assert 'error="invalid_token"' in challenge


# -- a created key works ---------------------------------------------------------------

def test_created_key_works_and_becomes_the_identity(gw, keys):
    key, record = keys.create("orders", policies=["gold"], meta={"team": "blue"})
    response = gw.get(key)
    assert response.status_code == 200
    identity = gw.context.identity
    assert (identity.method, identity.subject, identity.client_id) == ("apikey", record.id, record.id)
    assert identity.claims["policies"] == ["gold"]
    assert identity.claims["meta"] == {"team": "blue"}
    assert identity.claims["key_id"] == record.id
    assert gw.context.session_id == identity.session_id()
    assert "HTTP_X_API_KEY" not in gw.upstream.environ  # strip_auth removed the key
    assert gw.get(key).status_code == 200  # warm: from the worker's cache


@pytest.mark.parametrize("method, send", [
    pytest.param({}, lambda k: {"headers": {"X-API-Key": k}}, id="default header"),
    pytest.param({"name": "X-Key"}, lambda k: {"headers": {"X-Key": k}}, id="custom header"),
    pytest.param({"source": "bearer"}, lambda k: {"headers": {"Authorization": f"Bearer {k}"}},
                 id="Authorization Bearer"),
    pytest.param({"source": "query"}, lambda k: {"query_string": f"a=1&api_key={k}"},
                 id="query parameter"),
    pytest.param({"source": "query", "name": "k"}, lambda k: {"query_string": f"k={k}"},
                 id="custom query parameter"),
])
def test_key_sources_and_the_credential_is_stripped(tmp_path, memcached, keys, method, send):
    gateway = Gateway(tmp_path, gateway_config(memcached, method))
    key, _ = keys.create("orders")
    response = gateway.client.get("/orders/x", **send(key))
    assert response.status_code == 200, response.get_data(as_text=True)
    environ = gateway.upstream.environ
    forwarded = [v for k, v in environ.items() if k.startswith("HTTP_") or k == "QUERY_STRING"]
    assert not any(secret_of(key) in unquote(str(v)) for v in forwarded)


def test_keys_and_jwts_on_one_api_each_find_their_method(tmp_path, memcached, keys):
    config = gateway_config(memcached, {"source": "bearer"})
    config["apis"][0]["auth"].append("jwt")
    gateway = Gateway(tmp_path, config)
    key, _ = keys.create("orders")
    assert gateway.get(f"Bearer {key}", header="Authorization").status_code == 200
    assert gateway.context.identity.method == "apikey"
    assert gateway.get(f"Bearer {mint()}", header="Authorization").status_code == 200
    assert gateway.context.identity.method == "jwt"  # the JWT was not the apikey method's


def test_no_key_steps_aside(tmp_path, memcached):
    config = gateway_config(memcached)
    config["apis"][0]["auth"].append("keyless")
    gateway = Gateway(tmp_path, config)
    assert gateway.get().status_code == 200
    assert gateway.context.identity.anonymous
    alone = Gateway(tmp_path, gateway_config(memcached), name="alone")
    response = alone.get()
    assert response.status_code == 401
    assert problem(response)["type"].endswith(":unauthorized")
    assert response.headers["WWW-Authenticate"] == 'ApiKey realm="orders", header="X-API-Key"'


# -- refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("make, description", [
    pytest.param(lambda keys: keys.create("billing")[0], "the API key is not for this API",
                 id="key for another API"),
    pytest.param(lambda keys: _revoked(keys), "the API key was revoked", id="revoked"),
    pytest.param(lambda keys: _expired(keys), "the API key has expired", id="expired"),
    pytest.param(lambda keys: "gwk_0123456789abcdef_" + "A" * 43, "the API key is invalid",
                 id="unknown key id"),
    pytest.param(lambda keys: keys.create("orders")[0][:-4] + "AAAA", "the API key is invalid",
                 id="right id, wrong secret"),
    pytest.param(lambda keys: "hello", "the API key is invalid", id="not a key at all"),
])
def test_bad_keys_get_401_invalid_token(gw, keys, make, description):
    response = gw.get(make(keys))
    refused(response, description)
    assert gw.upstream.calls == 0


def _expired(keys: ApiKeys) -> str:
    an_hour_ago = ApiKeys(keys.store, clock=lambda: time.time() - 3600)
    key, _ = an_hour_ago.create("orders", expires_in=60)  # expired 59 minutes ago
    return key


def _revoked(keys: ApiKeys) -> str:
    key, record = keys.create("orders")
    keys.revoke(record.id)
    return key


def test_revocation_lands_within_a_second_on_two_workers(tmp_path, memcached, keys, clock):
    config = gateway_config(memcached)
    workers = [Gateway(tmp_path, config, clock, name="a"), Gateway(tmp_path, config, clock, name="b")]
    key, record = keys.create("orders")
    assert [w.get(key).status_code for w in workers] == [200, 200]  # both have it cached now
    keys.revoke(record.id)
    clock.advance(0.5)
    assert [w.get(key).status_code for w in workers] == [200, 200]  # the documented window
    clock.advance(0.5)  # cache_ttl (1 s) after the records were read: both read them again
    for worker in workers:
        refused(worker.get(key), "the API key was revoked")


def test_a_wall_clock_stepped_back_does_not_stretch_the_cache(tmp_path, memcached, keys, clock):
    gateway = Gateway(tmp_path, gateway_config(memcached), clock)
    key, record = keys.create("orders")
    assert gateway.get(key).status_code == 200
    keys.revoke(record.id)
    clock.now -= 3600  # NTP steps the clock back an hour: the cached record is not trusted
    refused(gateway.get(key), "the API key was revoked")


def test_expiry_is_exact_whatever_the_cache(tmp_path, memcached):
    clock = FakeClock()
    gateway = Gateway(tmp_path, gateway_config(memcached), clock)
    key, _ = key_store(memcached, clock).create("orders", expires_in=60)
    clock.now += 59.9
    assert gateway.get(key).status_code == 200
    clock.now += 0.1
    refused(gateway.get(key), "the API key has expired")


def test_rotation_keeps_the_old_key_through_its_grace(tmp_path, memcached):
    clock = FakeClock()
    gateway = Gateway(tmp_path, gateway_config(memcached), clock)
    keys = key_store(memcached, clock)
    old_key, old = keys.create("orders", policies=["gold"], meta={"team": "blue"}, expires_in=86400 * 30)
    assert gateway.get(old_key).status_code == 200
    session = gateway.context.session_id
    new_key, new, retired = keys.rotate(old.id, grace=3600)
    assert (new.api, new.policies, new.meta, new.subject) == (old.api, old.policies, old.meta, old.subject)
    assert new.expires == old.expires and retired.expires == clock.now + 3600
    clock.now += 3599  # past the cached old record's second: the rotation is visible now
    assert gateway.get(old_key).status_code == 200
    assert gateway.get(new_key).status_code == 200
    assert gateway.context.session_id == session  # the subject, and so the quota, carries over
    clock.now += 1
    refused(gateway.get(old_key), "the API key has expired")
    assert gateway.get(new_key).status_code == 200
    with pytest.raises(KeyStateError, match="expired"):
        keys.rotate(old.id, grace=60)


@pytest.mark.parametrize("prepare, message", [
    pytest.param(lambda keys, rec: keys.revoke(rec.id), "revoked", id="revoked key"),
    pytest.param(lambda keys, rec: keys.rotate(rec.id, grace=60), "rotating", id="already rotated"),
])
def test_rotation_refuses_keys_that_are_not_active(keys, prepare, message):
    _, record = keys.create("orders")
    prepare(keys, record)
    with pytest.raises(KeyStateError, match=message):
        keys.rotate(record.id, grace=60)


def test_revoke_during_rotation_is_not_lost(keys):
    """rotate reads, then writes with cas: a revocation in between is kept."""
    _, record = keys.create("orders")
    store = keys.store
    real_gets = store.gets

    def gets_then_revoke(key):
        found = real_gets(key)
        if key == record_key(record.id):
            store.gets = real_gets
            keys.revoke(record.id)
        return found

    store.gets = gets_then_revoke
    with pytest.raises(KeyStateError, match="revoked"):
        keys.rotate(record.id, grace=60)
    states = [r.state(time.time()) for r in keys.list("orders")]
    assert states == ["revoked", "revoked"]  # the replacement made meanwhile is revoked too


# -- the index -------------------------------------------------------------------------

def test_concurrent_creates_all_reach_the_index(memcached):
    created, errors = [], []

    def create():
        keys = key_store(memcached)  # a client of its own, like another worker or host
        try:
            for _ in range(5):
                created.append(keys.create("orders")[1].id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.id for r in key_store(memcached).list("orders")) == sorted(created)
    assert len(created) == 40


def test_list_prunes_records_gone_from_the_store(keys):
    kept = keys.create("orders")[1]
    gone = keys.create("orders")[1]
    keys.store.delete(record_key(gone.id))  # evicted, or lost with a restart
    assert [r.id for r in keys.list("orders")] == [kept.id]
    assert json.loads(keys.store.get("apikey-index:orders")) == [kept.id]


def test_a_corrupted_record_is_refused_not_a_500(gw, keys):
    key, record = keys.create("orders")
    keys.store.set(record_key(record.id), b'{"id": "%s", "expires": NaN}' % record.id.encode(), 60)
    refused(gw.get(key), "the API key is invalid")


def test_store_down_is_503_not_401(tmp_path, memcached):
    store = {"backend": "memcached", "servers": [f"127.0.0.1:{free_port()}"], "timeout": "100ms"}
    gateway = Gateway(tmp_path, gateway_config(memcached, store=store))
    response = gateway.get("gwk_0123456789abcdef_" + "A" * 43)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert gateway.upstream.calls == 0


# -- policies reach the rule layer -----------------------------------------------------

def test_a_rule_file_applies_the_keys_policies(tmp_path, memcached, keys):
    (tmp_path / "rules.yaml").write_text(
        "assign:\n"
        "  - policy: gold\n    when: \"'gold' in claims.policies\"\n"
        "default_policy: bronze\n")
    gateway = Gateway(tmp_path, gateway_config(memcached, orders={"rules": "rules.yaml"}))
    gold, _ = keys.create("orders", policies=["gold"])
    plain, _ = keys.create("orders")
    assert gateway.get(gold).status_code == 200
    assert gateway.context.policies == ("gold",)
    assert gateway.get(plain).status_code == 200
    assert gateway.context.policies == ("bronze",)


def test_without_a_rule_file_the_keys_policies_apply(tmp_path, memcached, keys):
    config = gateway_config(memcached)
    config["policies"]["tight"] = {"rate": "1/60s"}
    config["limits"] = {"algorithm": "fixed"}
    window_start = (time.time() // 60 + 1) * 60  # the next minute: 60 s of one window ahead
    gateway = Gateway(tmp_path, config, FakeClock(window_start + 1))
    tight, _ = keys.create("orders", policies=["tight"])
    plain, _ = keys.create("orders")
    assert gateway.get(tight).status_code == 200
    assert gateway.context.policies == ("tight",)
    assert gateway.get(tight).status_code == 429  # the key's policy, not the API default
    assert gateway.get(plain).status_code == 200
    assert gateway.context.policies == ("bronze",)  # no policy on the key: the default


def test_policies_no_longer_configured_are_dropped(tmp_path, memcached, keys):
    key, _ = keys.create("orders", policies=["gold", "retired"])
    gateway = Gateway(tmp_path, gateway_config(memcached))
    assert gateway.get(key).status_code == 200
    assert gateway.context.identity.claims["policies"] == ["gold"]


def test_revoking_the_keys_session_refuses_it_until_rotated(tmp_path, gw, keys, memcached):
    key, record = keys.create("orders")
    assert gw.get(key).status_code == 200
    sessions = Sessions(keys.store, SessionsConfig())
    sessions.revoke(gw.context.session_id)
    # another worker, with nothing cached: how fast the revocation reaches a warm worker
    # is the sessions cache's business (tests/limits)
    worker = Gateway(tmp_path, gateway_config(memcached), gw.clock, name="other")
    assert worker.get(key).status_code == 401  # the key was issued (iat) before the revocation
    new_key, _, _ = keys.rotate(record.id, grace=0)
    assert worker.get(new_key).status_code == 200  # issued later: the same session works again


# -- the static keys file --------------------------------------------------------------

def static_entry(api: str = "orders", **fields) -> tuple[str, dict]:
    from wsgi_gateway.authn.apikeys_store import key_digest, new_key

    key, key_id = new_key()
    return key, {"id": key_id, "sha256": key_digest(key), "api": api, **fields}


@pytest.mark.parametrize("suffix, dump", [
    pytest.param("yaml", yaml.safe_dump, id="YAML"),
    pytest.param("json", lambda data: json.dumps(data, indent=2), id="JSON"),
])
def test_static_keys_file(tmp_path, memcached, suffix, dump):
    good, entry = static_entry(policies=["gold"], meta={"plan": "p1"}, subject="acme")
    billing, billing_entry = static_entry("billing")
    expired, expired_entry = static_entry(expires="2001-01-01T00:00:00Z")
    (tmp_path / f"keys.{suffix}").write_text(dump({"keys": [entry, billing_entry, expired_entry]}))
    gateway = Gateway(tmp_path, gateway_config(memcached, {"keys_file": f"keys.{suffix}"}))
    assert gateway.get(good).status_code == 200
    identity = gateway.context.identity
    assert (identity.subject, identity.claims["policies"], identity.claims["meta"]) == \
        ("acme", ["gold"], {"plan": "p1"})
    assert identity.claims["source"] == "file"
    refused(gateway.get(billing), "the API key is not for this API")
    refused(gateway.get(expired), "the API key has expired")
    assert gateway.get(good[:-1] + ("A" if good[-1] != "A" else "B")).status_code == 401
    assert key_store(memcached).get(entry["id"]) is None  # never copied into the store


def test_static_key_revoked_through_the_store(tmp_path, memcached, clock):
    key, entry = static_entry()
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": [entry]}))
    gateway = Gateway(tmp_path, gateway_config(memcached, {"keys_file": "keys.yaml"}), clock)
    assert gateway.get(key).status_code == 200
    from wsgi_gateway.authn.apikey import static_keys

    config = gateway.gateway.config
    record = static_keys(config.apis[0].auth[0].options, config)[entry["id"]]
    key_store(memcached).revoke_static(record)
    clock.advance(1.0)  # the worker's copy of the record (cache_ttl) has ended
    refused(gateway.get(key), "the API key was revoked")


_SHA = "ab" * 32
_ID = "0123456789abcdef"


@pytest.mark.parametrize("text, expected", [
    pytest.param(f"keys:\n  - id: {_ID}\n    sha256: xyz\n    api: orders\n",
                 "keys.yaml:3: keys[0].sha256: expected the key's SHA-256", id="bad sha256"),
    pytest.param(f"keys:\n  - id: ABC\n    sha256: {_SHA}\n    api: orders\n",
                 "keys.yaml:2: keys[0].id: expected the key id", id="bad id"),
    pytest.param(f"keys:\n  - {{id: {_ID}, sha256: {_SHA}, api: orders}}\n"
                 f"  - {{id: {_ID}, sha256: {_SHA}, api: orders}}\n",
                 "keys.yaml:3: keys[1].id: duplicate key id", id="duplicate id"),
    pytest.param(f"keys:\n  - id: {_ID}\n    sha256: {_SHA}\n    api: orders\n    policies: [platinum]\n",
                 "keys.yaml:5: keys[0].policies: unknown policies ['platinum']", id="unknown policy"),
    pytest.param(f"keys:\n  - id: {_ID}\n    sha256: {_SHA}\n    api: shop\n",
                 "keys.yaml:4: keys[0].api: unknown API 'shop'", id="unknown API"),
    pytest.param(f"keys:\n  - id: {_ID}\n    sha256: {_SHA}\n    api: orders\n    expires: soon\n",
                 "keys.yaml:5: keys[0].expires: expected a time", id="bad expiry"),
    pytest.param(f"keys:\n  - id: {_ID}\n    sha256: {_SHA}\n    api: orders\n    secret: x\n",
                 "keys.yaml:5: keys[0].secret: unknown key", id="unknown field"),
    pytest.param(f"keys:\n  - id: {_ID}\n    api: orders\n",
                 "keys.yaml:2: keys[0]: missing required key 'sha256'", id="missing sha256"),
    pytest.param("keys: [\n", "keys.yaml:2:1: invalid YAML", id="broken YAML"),
    pytest.param("- a\n", "keys.yaml:1: (top level): expected a mapping", id="not a mapping"),
])
def test_keys_file_errors_name_file_line_and_key(tmp_path, memcached, text, expected):
    (tmp_path / "keys.yaml").write_text(text)
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(gateway_config(memcached, {"keys_file": "keys.yaml"})))
    with pytest.raises(ConfigError) as err:
        build_app(load_config(path), Recorder())
    assert any(expected in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("options, expected", [
    pytest.param({"cache_ttl": "2s"}, "cache_ttl must be within 0..1s", id="cache longer than 1 s"),
    pytest.param({"source": "bearer", "name": "X"}, "name is for header/query", id="bearer with name"),
    pytest.param({"name": "X Key"}, "not a valid header name", id="bad header name"),
    pytest.param({"source": "cookie"}, "expected one of 'header', 'bearer', 'query'", id="cookie source"),
    pytest.param({"keys_file": "nowhere.yaml"}, "keys file 'nowhere.yaml' not found", id="missing keys file"),
    pytest.param({"sorce": "query"}, "unknown key (did you mean 'source'?)", id="misspelt option"),
])
def test_option_errors_name_file_line_and_key(tmp_path, memcached, options, expected):
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(gateway_config(memcached, options), sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = "\n".join(err.value.problems)
    assert expected in problems and f"{path}:" in problems and "apis[0].auth[0]" in problems


# -- malformed input: 400/401 problem+json, never a 500, never the upstream -------------

_KEY_ID = "0123456789abcdef"
_WELL_FORMED = f"gwk_{_KEY_ID}_" + "A" * 43


@pytest.mark.parametrize("method, send, status, code", [
    pytest.param({}, {"headers": {"X-API-Key": ""}}, 400, "invalid_request", id="empty header"),
    pytest.param({}, {"headers": {"X-API-Key": "gwk_abc def"}}, 400, "invalid_request", id="space inside"),
    pytest.param({}, {"headers": {"X-API-Key": f"Bearer {_WELL_FORMED}"}}, 400, "invalid_request",
                 id="Bearer scheme in the key header"),
    pytest.param({}, {"headers": {"X-API-Key": "gwk_é" + "A" * 40}}, 400, "invalid_request",
                 id="non-ASCII (latin-1 bytes)"),
    pytest.param({}, {"headers": {"X-API-Key": "gwk_\x7f"}}, 400, "invalid_request", id="DEL character"),
    pytest.param({}, {"headers": {"X-API-Key": _WELL_FORMED[:-2] + "+/"}}, 400, "invalid_request",
                 id="base64 instead of base64url"),
    pytest.param({}, {"headers": {"X-API-Key": _WELL_FORMED + "=="}}, 400, "invalid_request",
                 id="padding"),
    pytest.param({}, {"headers": {"X-API-Key": "eyJh.eyJz.c2ln"}}, 400, "invalid_request", id="a JWT"),
    pytest.param({}, {"headers": {"X-API-Key": "A" * 129}}, 400, "invalid_request", id="129 characters"),
    pytest.param({}, {"headers": {"X-API-Key": "A" * 8000}}, 400, "invalid_request", id="8000 characters"),
    pytest.param({}, {"headers": [("X-API-Key", _WELL_FORMED), ("X-API-Key", _WELL_FORMED)]}, 400,
                 "invalid_request", id="two key headers"),
    pytest.param({}, {"headers": {"X-API-Key": _WELL_FORMED.upper()}}, 401, "invalid_token",
                 id="upper-case key id"),
    pytest.param({}, {"headers": {"X-API-Key": _WELL_FORMED[:-1]}}, 401, "invalid_token",
                 id="secret one character short"),
    pytest.param({}, {"headers": {"X-API-Key": "gwk__" + "A" * 43}}, 401, "invalid_token", id="no key id"),
    pytest.param({}, {"headers": {"Authorization": f"Bearer {_WELL_FORMED}"}}, 401, "unauthorized",
                 id="key in Authorization when the header is configured"),
    pytest.param({"source": "query"}, {"query_string": f"api_key={_WELL_FORMED}&api_key=x"}, 400,
                 "invalid_request", id="two query parameters"),
    pytest.param({"source": "query"}, {"query_string": "api_key=%ff%fe"}, 400, "invalid_request",
                 id="percent-encoded non-UTF-8"),
    pytest.param({"source": "query"}, {"query_string": "api_key=gwk%00x"}, 400, "invalid_request",
                 id="NUL in the query"),
    pytest.param({"source": "query"}, {"headers": {"X-API-Key": _WELL_FORMED}}, 401, "unauthorized",
                 id="key header when the query is configured"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": f"Bearer {_WELL_FORMED}~"}}, 400,
                 "invalid_request", id="bearer key with a b64token character keys never have"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": "Bearer gwk_" + "A" * 200}}, 400,
                 "invalid_request", id="oversized bearer key"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": "Bearer a b"}}, 400,
                 "invalid_request", id="bearer with a space"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": f"Basic {_WELL_FORMED}"}}, 401,
                 "unauthorized", id="Basic scheme: not ours"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": "Bearer eyJh.eyJz.c2ln"}}, 401,
                 "unauthorized", id="a JWT bearer: not ours"),
    pytest.param({"source": "bearer"}, {"headers": {"Authorization": f"Bearer {_WELL_FORMED}"}}, 401,
                 "invalid_token", id="well-formed unknown bearer key"),
])
def test_bad_input(tmp_path, memcached, method, send, status, code):
    gateway = Gateway(tmp_path, gateway_config(memcached, method))
    response = gateway.client.get("/orders/x", **send)
    assert response.status_code == status, response.get_data(as_text=True)
    assert problem(response)["type"] == f"urn:wsgi-gateway:problem:{code}"
    assert "WWW-Authenticate" in response.headers
    assert gateway.upstream.calls == 0


# -- the raw key is never kept or logged -----------------------------------------------

def _everything_in(memcached) -> dict[str, bytes]:
    """Every item in the memcached, listed with ``lru_crawler metadump all``."""
    names = []
    with socket.create_connection(("127.0.0.1", memcached.port), timeout=2) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    for line in data.decode().splitlines():
        if line.startswith("key="):
            names.append(unquote(line.split()[0][4:]))
    client = RawClient(("127.0.0.1", memcached.port))
    try:
        return {name: client.get(name) for name in names}
    finally:
        client.close()


def test_the_raw_key_is_never_in_the_store(gw, keys, memcached):
    made = [keys.create("orders", policies=["gold"], meta={"k": "v"}, expires_in=600)]
    made.append(keys.rotate(made[0][1].id, grace=60)[:2])
    made.append(keys.create("orders"))
    keys.revoke(made[-1][1].id)
    for key, _ in made:
        gw.get(key)
    items = _everything_in(memcached)
    assert any(name.endswith("apikey-index:orders") for name in items)
    assert sum(name.startswith("gw:apikey:") for name in items) == 3
    for key, record in made:
        assert any(record.sha256.encode() in (value or b"") for value in items.values())
        for name, value in items.items():
            assert secret_of(key) not in name and secret_of(key).encode() not in (value or b"")


def test_the_raw_key_is_never_logged(gw, keys):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("wsgi_gateway")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        good, record = keys.create("orders")
        other, _ = keys.create("billing")
        revoked = _revoked(keys)
        for key in (good, good, other, revoked, good[:-1] + "x", good + "+", "A" * 500):
            gw.get(key)
            gw.get(path=f"/orders/x?api_key={key}")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text = stream.getvalue()
    assert text.count(" request ") >= 14 and f"identity={record.id}:{record.id}" in text
    for key in (good, other, revoked):
        assert secret_of(key) not in text


# -- the CLI, as a process ---------------------------------------------------------------

def cli(config_path, *args, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "keys", "-c", str(config_path), *args],
        cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == expect, (result.stdout, result.stderr)
    return result


@pytest.fixture
def config_file(tmp_path, memcached):
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(gateway_config(memcached)))
    return path


def test_cli_create_list_show_rotate_revoke(tmp_path, memcached, config_file, gw, clock):
    created = cli(config_file, "create", "--api", "orders", "--policy", "gold", "--expires", "30d",
                  "--meta", "team=blue", "--subject", "acme")
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert f"created key {key_id} for API orders" in created.stderr
    assert gw.get(key).status_code == 200 and gw.context.identity.subject == "acme"

    listed = cli(config_file, "list", "--api", "orders").stdout
    assert key_id in listed and "active" in listed and "gold" in listed
    shown = json.loads(cli(config_file, "show", key_id).stdout)
    assert (shown["subject"], shown["policies"], shown["meta"]) == ("acme", ["gold"], {"team": "blue"})
    assert secret_of(key) not in json.dumps(shown)

    rotated = json.loads(cli(config_file, "rotate", key_id, "--grace", "1h", "--json").stdout)
    assert rotated["rotated_from"] == key_id and rotated["subject"] == "acme"
    assert gw.get(rotated["key"]).status_code == 200
    states = {r["id"]: r["state"] for r in json.loads(cli(config_file, "list", "--json").stdout)}
    assert states == {key_id: "rotating", rotated["id"]: "active"}

    assert "revoked key" in cli(config_file, "revoke", rotated["id"]).stdout
    clock.advance(1.0)  # the worker's copy of the record (cache_ttl) has ended
    assert gw.get(rotated["key"]).status_code == 401
    assert json.loads(cli(config_file, "show", rotated["id"]).stdout)["state"] == "revoked"


def test_cli_static_entry_goes_into_a_keys_file(tmp_path, memcached, config_file):
    out = cli(config_file, "create", "--static", "--api", "orders", "--policy", "gold").stdout
    key, comment, entry = out.strip().splitlines()
    assert comment.startswith("#") and secret_of(key) not in entry
    (tmp_path / "keys.yaml").write_text("keys:\n" + entry + "\n")
    gateway = Gateway(tmp_path, gateway_config(memcached, {"keys_file": "keys.yaml"}), name="static")
    assert gateway.get(key).status_code == 200
    assert gateway.context.identity.claims["policies"] == ["gold"]
    static_config = tmp_path / "static.yaml"
    assert key.split("_")[1] in cli(static_config, "list").stdout  # list shows keys_file keys
    cli(static_config, "rotate", key.split("_")[1], expect=2)  # rotated by editing the file


@pytest.mark.parametrize("args, expect, message", [
    pytest.param(["create", "--api", "shop"], 2, "no API 'shop'", id="unknown API"),
    pytest.param(["create", "--api", "orders", "--policy", "platinum"], 2, "unknown policy",
                 id="unknown policy"),
    pytest.param(["create", "--api", "orders", "--expires", "0s"], 2, "lifetime must be positive",
                 id="zero lifetime"),
    pytest.param(["create", "--api", "orders", "--meta", "novalue"], 2, "expected NAME=VALUE",
                 id="bad meta"),
    pytest.param(["show", "0123456789abcdef"], 1, "no key", id="show unknown key"),
    pytest.param(["revoke", "0123456789abcdef"], 1, "no key", id="revoke unknown key"),
    pytest.param(["rotate", "0123456789abcdef"], 1, "no key", id="rotate unknown key"),
    pytest.param(["show", "gwk_0123456789abcdef_xyz"], 2, "a key id is 16", id="a whole key as id"),
])
def test_cli_errors(config_file, args, expect, message):
    assert message in cli(config_file, *args, expect=expect).stderr


@pytest.mark.parametrize("store, expect, message", [
    pytest.param({"backend": "memory"}, 2, "keys need a store every worker shares", id="memory store"),
    pytest.param({"backend": "memcached", "servers": ["127.0.0.1:PORT"]}, 3, "store", id="store down"),
])
def test_cli_store_problems(tmp_path, memcached, store, expect, message):
    if "servers" in store:
        store["servers"] = [f"127.0.0.1:{free_port()}"]
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(gateway_config(memcached, store=store)))
    assert message in cli(path, "create", "--api", "orders", expect=expect).stderr
