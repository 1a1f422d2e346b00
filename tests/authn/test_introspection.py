"""Token introspection (RFC 7662) against the real TestIdP over loopback HTTP: answers,
client authentication, the shared cache in memcached, revocation, provider and store
faults, the identity an answer becomes, bad input and bad options."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from urllib.parse import unquote

import pytest
import yaml

from tests.middleware.conftest import BufferedClient
from tests.support.clock import FakeClock
from tests.support.idp import DISCOVERY_PATH, INTROSPECTION_PATH, TestIdP
from tests.support.processes import free_port
from wsgi_gateway import load_config
from wsgi_gateway.authn.introspection import IntrospectionOptions, Refused, cache_until, to_identity
from wsgi_gateway.config.secrets import Secret
from wsgi_gateway.errors import ConfigError
from wsgi_gateway.store.memcached import MemcachedStore

# ':' '+' '%' ' ' and non-ASCII reach the provider intact only with RFC 6749 §2.3.1 encoding
SECRET = "s3cr:t+ %2B/ü"


@pytest.fixture(scope="module")
def idp():
    provider = TestIdP(issuer_path="/realms/intro").start()
    provider.add_client("gateway", SECRET)
    yield provider
    provider.stop()


@pytest.fixture(autouse=True)
def _fresh_provider(idp, monkeypatch):
    monkeypatch.setenv("INTROSPECTION_SECRET", SECRET)
    monkeypatch.setenv("WRONG_SECRET", "not-the-secret")
    idp.reset_counts()
    yield
    idp.set_delay(0)
    idp.set_status(None)
    idp.discovery_overrides.clear()
    if not idp.running:
        idp.start()


def method(idp: TestIdP, **options) -> dict:
    block = {"method": "introspection", "issuer": idp.issuer, "discovery": True,
             "client_id": "gateway", "client_secret": {"env": "INTROSPECTION_SECRET"},
             "timeout": "500ms", "retry_after": "200ms", **options}
    return {k: v for k, v in block.items() if v is not None}


def config(idp: TestIdP, memcached=None, *, sessions: dict | None = None, **options) -> dict:
    """A gateway with one API behind introspection; memcached: the fixture or host:port."""
    address = getattr(memcached, "address", memcached)
    store = ({"backend": "memcached", "servers": [address], "timeout": "250ms",
              "retry_after": "300ms"} if address else {"backend": "memory"})
    return {"store": store, "logging": {"access_log": False}, "sessions": sessions or {},
            "apis": [{"name": "api", "path": "/api", "auth": [method(idp, **options)]}]}


def calls(idp: TestIdP) -> int:
    return idp.requests_count(INTROSPECTION_PATH)


def identity(gw):
    return gw.upstream.environ["wsgi_gateway.context"].identity


def problem(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json"
    body = json.loads(response.get_data())
    assert body["status"] == response.status_code
    return body


def authenticator(gw):
    return gw.gateway.apis["api"].authenticators[0]


# -- answers ------------------------------------------------------------------------------

def test_an_active_token_becomes_the_identity(idp, memcached, in_process):
    gw = in_process(config(idp, memcached))
    token = idp.issue_opaque({"sub": "ann", "scope": "read write", "aud": ["test-api", "x"],
                              "client_id": "mobile", "ext": {"tier": "gold"}}, ttl=120)
    response = gw.get(token)
    assert response.status_code == 200
    who = identity(gw)
    assert (who.method, who.subject, who.issuer, who.client_id, who.token_kind) == (
        "introspection", "ann", idp.issuer, "mobile", "access")
    assert who.scopes == ("read", "write") and who.audiences == ("test-api", "x")
    assert abs(who.expires_at - (time.time() + 120)) < 5
    assert who.claims["ext"] == {"tier": "gold"} and who.claims["active"] is True
    assert "Authorization" not in json.loads(response.get_data())["headers"]  # strip_auth


@pytest.mark.parametrize("options, claims, expected", [
    pytest.param({}, {"sub": 42}, {"subject": "42"}, id="numeric sub"),
    pytest.param({"identity_claim": "user.email"}, {"user": {"email": "a@b.c"}},
                 {"subject": "a@b.c"}, id="identity claim in dot notation"),
    pytest.param({"scope_claim": "scp"}, {"scp": ["read", 3, "", "write"]},
                 {"scopes": ("read", "write")}, id="scopes from a list"),
    pytest.param({"scope_claim": "realm_access.roles"}, {"realm_access": {"roles": ["admin"]}},
                 {"scopes": ("admin",)}, id="nested scopes"),
    pytest.param({}, {"scope": "  a   b "}, {"scopes": ("a", "b")}, id="scope string with runs of spaces"),
    pytest.param({}, {"aud": "solo"}, {"audiences": ("solo",)}, id="aud as a string"),
    pytest.param({}, {"client_id": 7}, {"client_id": ""}, id="client_id not a string"),
    pytest.param({"org_claim": "org.id"}, {"org": {"id": "acme"}}, {"org": "acme"}, id="org claim"),
    pytest.param({"issuer": None, "discovery": None, "endpoint": "ENDPOINT"}, {},
                 {"issuer": "ISSUER"}, id="no issuer configured: the answer's iss"),
])
def test_the_answer_is_normalised_like_jwt_claims(idp, in_process, options, claims, expected):
    options = {k: idp.introspection_endpoint if v == "ENDPOINT" else v for k, v in options.items()}
    gw = in_process(config(idp, **options))
    assert gw.get(idp.issue_opaque(claims)).status_code == 200
    for name, value in expected.items():
        assert getattr(identity(gw), name) == (idp.issuer if value == "ISSUER" else value)


@pytest.mark.parametrize("options, claims, detail", [
    pytest.param({}, {"iss": "https://evil.example"}, "the token's issuer is not trusted", id="other issuer"),
    pytest.param({}, {"iss": 5}, "the token's issuer is not trusted", id="issuer not a string"),
    pytest.param({"audiences": ["orders"]}, {"aud": ["billing"]}, "the token is not for this API",
                 id="wrong audience"),
    pytest.param({"audiences": ["orders"]}, {"aud": None}, "the token is not for this API",
                 id="no audience while audiences are configured"),
    pytest.param({"client_ids": ["web"]}, {"client_id": "rogue"}, "the token's client is not approved",
                 id="client not approved"),
    pytest.param({}, {"sub": ""}, "the token has no usable identity claim", id="empty sub"),
    pytest.param({"identity_claim": "email"}, {}, "the token has no usable identity claim",
                 id="identity claim absent"),
    pytest.param({}, {"exp": "tomorrow"}, "the token's expiry is malformed", id="exp not a number"),
    pytest.param({}, {"token_type": "refresh_token"}, "the token is not an access token",
                 id="a refresh token"),
])
def test_active_answers_refused_by_the_api(idp, in_process, options, claims, detail):
    gw = in_process(config(idp, **options))
    response = gw.get(idp.issue_opaque(claims))
    assert response.status_code == 401 and problem(response)["detail"] == detail
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert gw.upstream.calls == 0


def test_approved_audiences_and_clients_pass(idp, in_process):
    gw = in_process(config(idp, audiences=["orders", "billing"], client_ids=["web"]))
    assert gw.get(idp.issue_opaque({"aud": ["billing"], "client_id": "web"})).status_code == 200


@pytest.mark.parametrize("make", [
    pytest.param(lambda idp: "never-issued", id="unknown"),
    pytest.param(lambda idp: idp.issue_opaque(ttl=-5), id="expired at the provider"),
    pytest.param(lambda idp: _revoked(idp), id="revoked"),
])
def test_inactive_tokens_are_401_invalid_token(idp, in_process, make):
    gw = in_process(config(idp))
    response = gw.get(make(idp))
    assert response.status_code == 401 and problem(response)["detail"] == "the token is not active"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')
    assert gw.upstream.calls == 0


def _revoked(idp):
    token = idp.issue_opaque()
    idp.revoke(token)
    return token


@pytest.mark.parametrize("jwt, expected, introspected", [
    pytest.param(False, 401, 0, id="jwt false: a JWT is not ours"),
    pytest.param(True, 200, 1, id="jwt true: a JWT is introspected"),
])
def test_jwt_option(idp, in_process, jwt, expected, introspected):
    gw = in_process(config(idp, jwt=jwt))
    response = gw.get(idp.issue())
    assert response.status_code == expected and calls(idp) == introspected
    if expected == 401:  # stepped aside: no method found a credential, so no error code
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


# -- client authentication -------------------------------------------------------------

@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_client_authentication_methods(idp, in_process, client_auth):
    gw = in_process(config(idp, client_auth=client_auth))
    assert gw.get(idp.issue_opaque()).status_code == 200
    assert calls(idp) == 1


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_wrong_client_secret_is_the_gateways_fault(idp, in_process, caplog, client_auth):
    gw = in_process(config(idp, client_auth=client_auth, client_secret={"env": "WRONG_SECRET"}))
    token = idp.issue_opaque()
    response = gw.get(token)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert problem(response)["type"] == "urn:wsgi-gateway:problem:unavailable"
    assert gw.upstream.calls == 0
    assert "refused the gateway's client credentials" in caplog.text
    assert token not in caplog.text and "not-the-secret" not in caplog.text


# -- the shared cache ----------------------------------------------------------------------

def test_a_cache_hit_makes_no_provider_call(idp, memcached, in_process):
    gw = in_process(config(idp, memcached, local_ttl=0))  # every request reads the store
    token = idp.issue_opaque()
    for _ in range(5):
        assert gw.get(token).status_code == 200
    assert calls(idp) == 1


def test_the_store_holds_a_digest_never_the_token(idp, memcached, in_process):
    gw = in_process(config(idp, memcached))
    token = idp.issue_opaque()
    assert gw.get(token).status_code == 200
    keys = _memcached_keys(memcached.port)
    expected = f"gw:{authenticator(gw).prefix}:"
    assert any(k.startswith(expected) and len(k) == len(expected) + 64 for k in keys), keys
    assert not any(token in k for k in keys)
    store = MemcachedStore([("127.0.0.1", memcached.port)])
    for key in keys:
        assert token.encode() not in store._client.get(key)


def _memcached_keys(port: int) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    return [unquote(m) for m in re.findall(r"key=(\S+)", data.decode())]


def test_two_gateways_share_answers_through_memcached(idp, memcached, in_process):
    a = in_process(config(idp, memcached), name="a")
    b = in_process(config(idp, memcached), name="b")
    token = idp.issue_opaque({"sub": "shared"})
    assert a.get(token).status_code == 200
    assert b.get(token).status_code == 200 and identity(b).subject == "shared"
    assert calls(idp) == 1


def test_revocation_lands_when_the_cached_answer_ends(idp, memcached, in_process):
    clock = FakeClock()
    gw = in_process(config(idp, memcached, cache_ttl="2s"), clock=clock)
    token = idp.issue_opaque()
    assert gw.get(token).status_code == 200
    idp.revoke(token)
    clock.advance(1.9)
    assert gw.get(token).status_code == 200  # still cached: the documented window
    clock.advance(0.1)  # memcached still holds the answer; its own end rules
    assert gw.get(token).status_code == 401
    assert calls(idp) == 2


def test_cache_ttl_zero_keeps_an_answer_until_exp_and_not_past_it(idp, memcached, in_process):
    # memcached rounds a TTL up to whole seconds; the entry's own end (exp) still rules
    clock = FakeClock()
    gw = in_process(config(idp, memcached, cache_ttl=0, local_ttl=0), clock=clock)
    token = idp.issue_opaque(ttl=2)
    assert gw.get(token).status_code == 200
    exp = identity(gw).expires_at
    idp.revoke(token)
    clock.advance(exp - clock.now - 0.01)
    assert gw.get(token).status_code == 200 and calls(idp) == 1
    clock.advance(0.01)  # at exp: memcached still holds the entry (real time stood still)
    assert gw.get(token).status_code == 401 and calls(idp) == 2


def test_inactive_answers_are_cached_briefly(idp, in_process):
    clock = FakeClock()
    gw = in_process(config(idp, negative_ttl="1s", local_ttl=0), clock=clock)
    for _ in range(3):
        assert gw.get("unknown-token").status_code == 401
    assert calls(idp) == 1
    clock.advance(1.0)
    assert gw.get("unknown-token").status_code == 401 and calls(idp) == 2


def test_concurrent_misses_make_one_call(idp, in_process):
    gw = in_process(config(idp, timeout="2s"))
    idp.set_delay(0.3)
    token, statuses = idp.issue_opaque(), []

    def one():
        client = BufferedClient(gw.gateway)
        statuses.append(client.get("/api/x", headers={"Authorization": f"Bearer {token}"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert statuses == [200] * 8
    assert calls(idp) == 1


# -- faults ----------------------------------------------------------------------------

def _stop(idp):
    idp.stop()


FAULTS = [
    pytest.param(lambda idp: idp.set_status(500, paths=[INTROSPECTION_PATH]), id="HTTP 500"),
    pytest.param(lambda idp: idp.set_status(200, paths=[INTROSPECTION_PATH]), id="not an answer"),
    pytest.param(_stop, id="provider stopped"),
    pytest.param(lambda idp: idp.set_delay(3), id="provider slow"),
    pytest.param(lambda idp: idp.discovery_overrides.update(issuer="https://other"),
                 id="discovery names another issuer"),
    pytest.param(lambda idp: idp.discovery_overrides.update(introspection_endpoint="http://10.0.0.1/i"),
                 id="discovery names a plain-http endpoint"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_provider_faults_are_503_quickly(idp, in_process, fault):
    gw = in_process(config(idp))
    token = idp.issue_opaque()
    fault(idp)
    for _ in range(2):  # the second meets the breaker: no second wait
        started = time.monotonic()
        response = gw.get(token)
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
        assert problem(response)["type"].endswith(":unavailable")
        assert time.monotonic() - started < 1.0  # timeout 500ms
    assert gw.upstream.calls == 0


def test_cached_answers_keep_serving_while_the_provider_is_down(idp, memcached, in_process):
    clock = FakeClock()
    gw = in_process(config(idp, memcached, local_ttl=0), clock=clock)
    cached, unknown = idp.issue_opaque(), idp.issue_opaque()
    assert gw.get(cached).status_code == 200
    idp.stop()
    assert gw.get(cached).status_code == 200
    assert gw.get(unknown).status_code == 503
    idp.start()
    clock.advance(0.19)
    assert gw.get(unknown).status_code == 503  # the breaker: no call for retry_after
    clock.advance(0.01)  # retry_after 200ms
    assert gw.get(unknown).status_code == 200


def test_a_slow_provider_costs_one_timeout_then_fails_fast(idp, in_process):
    gw = in_process(config(idp, timeout="300ms", retry_after="1s"))
    cached = idp.issue_opaque()
    assert gw.get(cached).status_code == 200
    idp.set_delay(3)
    elapsed = []
    for token in (idp.issue_opaque(), idp.issue_opaque(), cached):
        started = time.monotonic()
        status = gw.get(token).status_code
        elapsed.append((status, time.monotonic() - started))
    assert [s for s, _ in elapsed] == [503, 503, 200]
    assert 0.25 < elapsed[0][1] < 0.8 and elapsed[1][1] < 0.1 and elapsed[2][1] < 0.1


def test_store_down_every_token_is_checked_with_the_provider(idp, in_process, caplog):
    nothing_listens = f"127.0.0.1:{free_port()}"
    gw = in_process(config(idp, nothing_listens, local_ttl=0, sessions={"enabled": False}))
    active = idp.issue_opaque()
    assert gw.get(active).status_code == 200
    assert gw.get(active).status_code == 200
    assert gw.get("unknown-token").status_code == 401
    assert calls(idp) == 3  # fail closed: no answer is trusted without the provider
    assert "the store is unavailable" in caplog.text


def test_discovery_happens_once(idp, in_process):
    gw = in_process(config(idp))
    for _ in range(3):
        assert gw.get(idp.issue_opaque()).status_code == 200
    assert idp.requests_count(DISCOVERY_PATH) == 1 and calls(idp) == 3


def test_an_explicit_endpoint_needs_no_discovery(idp, in_process):
    gw = in_process(config(idp, discovery=None, endpoint=idp.introspection_endpoint))
    assert gw.get(idp.issue_opaque()).status_code == 200
    assert idp.requests_count(DISCOVERY_PATH) == 0


def test_ready_until_the_endpoint_is_discovered(idp, in_process):
    idp.stop()
    clock = FakeClock()
    gw = in_process(config(idp), clock=clock)
    gw.gateway.warm()
    assert gw.gateway.ready_reasons() == ["introspection: introspection endpoint not discovered yet"]
    idp.start()
    clock.advance(0.2)  # past retry_after
    gw.gateway.warm()
    assert gw.gateway.ready_reasons() == []


# -- bad input ---------------------------------------------------------------------------

BAD_INPUT = [
    pytest.param({"Authorization": "Bearer"}, 400, id="bearer without a token"),
    pytest.param({"Authorization": "Bearer a b"}, 400, id="two tokens"),
    pytest.param({"Authorization": "Bearer tok\u00e9n"}, 400, id="non-ASCII token"),
    pytest.param({"Authorization": "Bearer a\x01b"}, 400, id="control character"),
    pytest.param({"Authorization": "Bearer =="}, 400, id="only padding"),
    pytest.param({"Authorization": "Bearer a=b"}, 400, id="padding inside"),
    pytest.param([("Authorization", "Bearer aaa"), ("Authorization", "Bearer bbb")], 400,
                 id="two Authorization headers"),
    pytest.param({"Authorization": "Bearer " + "a" * 9000}, 401, id="oversized token"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, 401, id="another scheme"),
    pytest.param({"Authorization": "Token abc"}, 401, id="unknown scheme"),
    pytest.param({"Authorization": ""}, 401, id="empty header"),
    pytest.param({"Authorization": "Bearer a.b.c"}, 401, id="a JWT-shaped token (jwt: false)"),
    pytest.param({"X-Token": "abc"}, 401, id="token in another header"),
]


@pytest.mark.parametrize("headers, status", BAD_INPUT)
def test_bad_input_never_reaches_the_provider_or_upstream(idp, in_process, headers, status):
    gw = in_process(config(idp))
    response = gw.client.get("/api/x", headers=headers)
    assert response.status_code == status
    problem(response)
    assert gw.upstream.calls == 0 and calls(idp) == 0


def test_a_token_from_a_header_source(idp, in_process):
    gw = in_process(config(idp, source="header", name="X-Token"))
    response = gw.client.get("/api/x", headers={"X-Token": idp.issue_opaque()})
    assert response.status_code == 200
    assert "X-Token" not in json.loads(response.get_data())["headers"]


# -- options -----------------------------------------------------------------------------

@pytest.mark.parametrize("change, key, message", [
    pytest.param({"discovery": None}, "", "give exactly one of endpoint: URL or discovery: true",
                 id="neither endpoint nor discovery"),
    pytest.param({"endpoint": "https://idp.example/introspect"}, "", "give exactly one of",
                 id="both endpoint and discovery"),
    pytest.param({"issuer": None}, "", "discovery: true needs issuer", id="discovery without issuer"),
    pytest.param({"client_secret": "hunter2"}, ".client_secret", "never inline", id="inline secret"),
    pytest.param({"client_secret": {"env": "NO_SUCH_VARIABLE"}}, ".client_secret",
                 "environment variable NO_SUCH_VARIABLE is not set", id="missing secret variable"),
    pytest.param({"client_secret": {"file": "nope.txt"}}, ".client_secret", "cannot be read",
                 id="missing secret file"),
    pytest.param({"client_secret": None}, "", "missing required key 'client_secret'", id="no secret"),
    pytest.param({"client_id": None}, "", "missing required key 'client_id'", id="no client_id"),
    pytest.param({"discovery": None, "endpoint": "http://idp.example/introspect"}, "",
                 "must be an https URL (http only to a loopback host)", id="plain http endpoint"),
    pytest.param({"discovery": None, "endpoint": "not a url"}, "", "must be an https URL",
                 id="endpoint not a URL"),
    pytest.param({"issuer": "http://idp.example"}, "", "must be an https URL", id="plain http issuer"),
    pytest.param({"client_auth": "private_key_jwt"}, ".client_auth", "expected one of",
                 id="unsupported client auth"),
    pytest.param({"cache_tll": "5s"}, ".cache_tll", "did you mean 'cache_ttl'", id="misspelt key"),
    pytest.param({"timeout": "fast"}, ".timeout", "expected a duration", id="bad duration"),
    pytest.param({"timeout": "1m"}, "", "timeout must be within (0, 30s]", id="timeout too long"),
    pytest.param({"local_ttl": "5s"}, "", "local_ttl must be at most 1s", id="local cache too long"),
    pytest.param({"audiences": "orders"}, ".audiences", "expected a list", id="audiences not a list"),
    pytest.param({"source": "header"}, "", "source header needs name", id="header source without name"),
    pytest.param({"max_token_size": 10}, "", "max_token_size must be within", id="tiny token size"),
])
def test_bad_options_name_file_line_and_key(idp, tmp_path, change, key, message):
    block = {k: v for k, v in {**method(idp), **change}.items() if v is not None}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"apis": [{"name": "api", "path": "/api", "auth": [block]}]},
                                   sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [problem_line] = err.value.problems
    assert re.match(rf"{re.escape(str(path))}:\d+: apis\[0\]\.auth\[0\]{re.escape(key)}: ", problem_line), \
        problem_line
    assert message in problem_line
    assert "hunter2" not in problem_line


# -- the decision as a function of the answer --------------------------------------------

def _options(**kw) -> IntrospectionOptions:
    return IntrospectionOptions(**{"client_id": "gw", "client_secret": Secret(b"s", "env:S"),
                                   "issuer": "https://idp.example", "discovery": True, **kw})


NOW = 1_700_000_000.0


@pytest.mark.parametrize("answer, refusal", [
    pytest.param({"active": True, "sub": "a", "exp": NOW - 31}, "the token has expired",
                 id="expired beyond skew"),
    pytest.param({"active": True, "sub": "a", "exp": NOW - 29}, None, id="expired within skew"),
    pytest.param({"active": True, "sub": "a", "exp": True}, "the token's expiry is malformed",
                 id="exp a boolean"),
    pytest.param({"active": "true", "sub": "a"}, "the token is not active", id="active not a boolean"),
    pytest.param({"active": True, "sub": "a", "typ": "Refresh"}, "the token is not an access token",
                 id="Keycloak refresh token"),
    pytest.param({"active": True, "sub": "a", "iss": "https://idp.example"}, None, id="same issuer"),
])
def test_to_identity(answer, refusal):
    if refusal is None:
        assert to_identity(answer, _options(), NOW, "https://idp.example").subject == "a"
    else:
        with pytest.raises(Refused, match=re.escape(refusal)):
            to_identity(answer, _options(), NOW, "https://idp.example")


@pytest.mark.parametrize("options, answer, until", [
    pytest.param({"cache_ttl": 30.0}, {"active": True, "exp": NOW + 600}, NOW + 30, id="cache_ttl first"),
    pytest.param({"cache_ttl": 30.0}, {"active": True, "exp": NOW + 5}, NOW + 5, id="exp first"),
    pytest.param({"cache_ttl": 0.0}, {"active": True, "exp": NOW + 600}, NOW + 600, id="0 = until exp"),
    pytest.param({"cache_ttl": 0.0}, {"active": True}, NOW + 60, id="0 without exp: 60s"),
    pytest.param({"cache_ttl": 30.0}, {"active": True}, NOW + 30, id="no exp"),
    pytest.param({"cache_ttl": 30.0}, {"active": True, "exp": NOW - 1}, NOW - 1, id="expired: not cached"),
    pytest.param({"negative_ttl": 10.0}, {"active": False}, NOW + 10, id="inactive"),
    pytest.param({"negative_ttl": 0.0}, {"active": False}, NOW, id="negative cache off"),
])
def test_cache_until(options, answer, until):
    assert cache_until(answer, _options(**options), NOW) == until


def test_a_wall_clock_stepped_back_does_not_stretch_the_breaker(idp, in_process):
    clock = FakeClock()
    gw = in_process(config(idp, local_ttl=0), clock=clock)
    token = idp.issue_opaque()
    idp.set_status(500, paths=[INTROSPECTION_PATH])
    assert gw.get(token).status_code == 503  # the breaker opens for retry_after (200ms)
    idp.set_status(None)
    clock.now -= 3600  # NTP steps the clock back an hour
    assert gw.get(token).status_code == 200
