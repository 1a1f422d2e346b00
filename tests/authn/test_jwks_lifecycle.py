"""Key sets over time: rotation, outages, slow providers, refetch limits, TTLs."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.authn.conftest import provider_block, problem
from tests.support.idp import TestIdP
from tests.support.waiting import eventually


@pytest.fixture
def fresh_idp():
    provider = TestIdP(issuer_path="/rot").start()
    yield provider
    provider.stop()


def test_rotation_new_kid_accepted_on_first_sight_old_while_published(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp)])
    old_token = fresh_idp.issue()
    assert gw.get(old_token).status_code == 200
    fresh_idp.reset_counts()
    new_kid = fresh_idp.rotate("ES256")
    assert gw.get(fresh_idp.issue(kid=new_kid)).status_code == 200  # one refetch, no waiting for TTL
    assert fresh_idp.requests_count("/jwks") == 1
    assert gw.get(fresh_idp.issue(kid=fresh_idp.kids()[0])).status_code == 200  # old key still published


def test_unpublished_key_stops_verifying_even_for_cached_tokens(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "0s", "timeout": "1s"})])
    old = fresh_idp.signing_kid
    token = fresh_idp.issue()
    assert gw.get(token).status_code == 200
    fresh_idp.rotate("RS256")
    fresh_idp.remove_key(old)
    assert gw.get(fresh_idp.issue()).status_code == 200  # new kid → refetch → old one gone
    assert gw.get(token).status_code == 401


def test_forged_kids_do_not_amplify_into_idp_traffic(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "30s"})])
    fresh_idp.reset_counts()
    for i in range(20):
        response = gw.get(fresh_idp.issue(headers={"kid": f"forged-{i}"}))
        assert response.status_code == 401
    assert fresh_idp.requests_count("/jwks") <= 1


def test_concurrent_unknown_kids_make_one_fetch(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp)])
    fresh_idp.set_delay(0.3)
    fresh_idp.reset_counts()
    new_kid = fresh_idp.rotate("ES256")
    tokens = [fresh_idp.issue(kid=new_kid) for _ in range(8)]
    statuses = []
    threads = [threading.Thread(target=lambda t=t: statuses.append(gw.get(t).status_code)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    fresh_idp.set_delay(0)
    assert statuses == [200] * 8
    assert fresh_idp.requests_count("/jwks") == 1


def test_provider_down_after_warmup(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "0s", "timeout": "500ms"})])
    token = fresh_idp.issue()
    unknown = fresh_idp.issue(kid=fresh_idp.add_key("ES256"))
    fresh_idp.stop()
    assert gw.get(fresh_idp.issue()).status_code == 200  # cached keys keep serving
    response = gw.get(unknown)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert problem(response)["type"].endswith(":unavailable")
    assert gw.get(token).status_code == 200
    fresh_idp.start()
    assert gw.get(unknown).status_code == 200  # recovery on the next refetch


def test_provider_slow_latency_is_bounded(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "0s", "timeout": "300ms"})])
    fresh_idp.set_delay(3)
    unknown = fresh_idp.issue(kid=fresh_idp.add_key("ES256"))
    started = time.monotonic()
    response = gw.get(unknown)
    elapsed = time.monotonic() - started
    fresh_idp.set_delay(0)
    assert response.status_code == 503
    assert elapsed < 1.5, f"a slow IdP held the request {elapsed:.2f}s"
    assert gw.get(fresh_idp.issue()).status_code == 200  # known keys never wait


def test_before_keys_are_loaded_tokens_get_503_not_401(fresh_idp, make_gateway):
    fresh_idp.stop()
    gw = make_gateway([provider_block(fresh_idp, jwks={"warmup": "200ms", "timeout": "200ms"})])
    response = gw.get(fresh_idp.issue())
    assert response.status_code == 503
    assert gw.gateway.ready_reasons() == ["jwt: provider test: keys not loaded yet"]
    ready = gw.client.get("/.gateway/ready")
    assert ready.status_code == 503
    fresh_idp.start()
    # the background thread retries with backoff (on the real clock: it really waits)
    eventually(lambda: not gw.gateway.ready_reasons(), timeout=5, what="the keys loaded")
    assert gw.get(fresh_idp.issue()).status_code == 200


def test_error_responses_from_the_jwks_keep_old_keys(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "0s"})])
    fresh_idp.set_status(500)
    unknown = fresh_idp.issue(kid=fresh_idp.add_key("ES256"))
    assert gw.get(unknown).status_code == 503
    assert gw.get(fresh_idp.issue()).status_code == 200
    fresh_idp.set_status(None)


def test_discovery_naming_another_issuer_is_refused(fresh_idp, make_gateway):
    fresh_idp.discovery_overrides["issuer"] = "https://evil.example"
    gw = make_gateway([provider_block(fresh_idp, jwks={"warmup": "500ms"})])
    assert gw.get(fresh_idp.issue()).status_code == 503
    fresh_idp.discovery_overrides.clear()


def test_explicit_jwks_uri(fresh_idp, make_gateway):
    gw = make_gateway([provider_block(fresh_idp, discovery=None, jwks_uri=fresh_idp.jwks_uri)])
    assert gw.get(fresh_idp.issue()).status_code == 200
    assert fresh_idp.requests_count("/.well-known/openid-configuration") == 0


@pytest.mark.parametrize("max_age, expected", [
    (None, 3600.0), (600, 600.0), (5, 300.0), (10 ** 9, 86400.0)])
def test_ttl_honours_max_age_within_bounds(fresh_idp, max_age, expected):
    from wsgi_gateway.authn.jwt.jwks import RemoteKeys
    from wsgi_gateway.config.typed import Where, build_dataclass
    from wsgi_gateway.config.providers import ProviderConfig

    fresh_idp.set_jwks_max_age(max_age)
    config = build_dataclass(ProviderConfig, provider_block(fresh_idp), Where("x", "", 1, []))
    keys = RemoteKeys(config)
    _, ttl = keys._fetch()
    assert ttl == expected


def test_fetch_failures_logged_once_per_state_change(fresh_idp, make_gateway, caplog):
    gw = make_gateway([provider_block(fresh_idp, jwks={"refetch_interval": "0s", "timeout": "200ms"})])
    fresh_idp.stop()
    with caplog.at_level(logging.INFO, logger="wsgi_gateway.jwks"):
        caplog.clear()  # the warm-up's own "keys loaded" may have been captured already
        for i in range(5):
            gw.get(fresh_idp.issue(kid=fresh_idp.add_key("ES256")))
        fresh_idp.start()
        gw.get(fresh_idp.issue(kid=fresh_idp.add_key("ES256")))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("fetch failed" in m for m in messages) == 1, messages
    assert sum("keys loaded" in m for m in messages) == 1, messages


def test_published_symmetric_keys_are_ignored(fresh_idp, make_gateway):
    fresh_idp.extra_jwks.append({"kty": "oct", "kid": "sym", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})
    gw = make_gateway([provider_block(fresh_idp)])
    token = TestIdP.sign_hmac({"alg": "HS256", "kid": "sym"}, fresh_idp.default_claims(), b"secret" * 6)
    assert gw.get(token).status_code == 401
    assert gw.get(fresh_idp.issue()).status_code == 200
    fresh_idp.extra_jwks.clear()
