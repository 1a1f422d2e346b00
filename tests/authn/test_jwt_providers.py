"""Providers: every algorithm family, several issuers, static keys, ID tokens, sources,
and the identity a token becomes."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.authn.conftest import ALL_ASYMMETRIC, provider_block, problem
from tests.support.idp import TestIdP


@pytest.mark.parametrize("alg", ALL_ASYMMETRIC)
def test_each_asymmetric_algorithm_verifies(idp, make_gateway, alg):
    kid = idp.add_key(alg)
    gw = make_gateway([provider_block(idp, algorithms=[alg])])
    assert gw.get(idp.issue(kid=kid)).status_code == 200
    assert gw.identity.subject == "test-user"


def test_algorithm_outside_the_allow_list_is_refused(idp, make_gateway):
    kid = idp.add_key("ES256")
    gw = make_gateway([provider_block(idp, algorithms=["RS256"])])
    response = gw.get(idp.issue(kid=kid))
    assert response.status_code == 401
    assert problem(response)["detail"] == "the token's algorithm is not accepted"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_a_static_secret(tmp_path, make_gateway, monkeypatch, alg):
    secret = b"s" * 64
    monkeypatch.setenv("TEST_HMAC_SECRET", base64.urlsafe_b64encode(secret).decode())
    block = {"name": "hs", "issuer": "https://hs.example", "algorithms": [alg],
             "audiences": ["test-api"], "keys": [{"kid": "h1", "secret": {"env": "TEST_HMAC_SECRET"}}]}
    gw = make_gateway([block])
    now = int(time.time())
    claims = {"iss": "https://hs.example", "sub": "u", "aud": "test-api", "exp": now + 60, "iat": now}
    good = TestIdP.sign_hmac({"alg": alg, "kid": "h1", "typ": "at+jwt"}, claims, secret, alg)
    assert gw.get(good).status_code == 200
    forged = TestIdP.sign_hmac({"alg": alg, "kid": "h1", "typ": "at+jwt"}, claims, b"x" * 64, alg)
    assert gw.get(forged).status_code == 401


def test_static_pem_jwk_and_jwks_file(tmp_path, make_gateway):
    with TestIdP(default_alg="RS256") as idp:  # serves nothing we use: keys are static
        rsa, ec, okp = idp.signing_kid, idp.add_key("ES256"), idp.add_key("EdDSA")
        (tmp_path / "rsa.pem").write_bytes(idp.public_pem(rsa))
        (tmp_path / "set.json").write_text(json.dumps({"keys": [idp.public_jwk(ec)]}))
        block = {"name": "static", "issuer": idp.issuer, "algorithms": ["RS256", "ES256", "EdDSA"],
                 "audiences": ["test-api"], "keys": [
                     {"kid": rsa, "pem_file": "rsa.pem"}, {"jwks_file": "set.json"},
                     {"jwk": idp.public_jwk(okp)}]}
        gw = make_gateway([block])
        for kid in (rsa, ec, okp):
            assert gw.get(idp.issue(kid=kid)).status_code == 200, kid
        assert idp.requests_count() == 0


def test_several_issuers_at_once_route_by_iss(make_gateway):
    with TestIdP(default_alg="RS256") as one, TestIdP(default_alg="ES256", issuer_path="/two") as two:
        gw = make_gateway([provider_block(one, name="one"), provider_block(two, name="two")])
        assert gw.get(one.issue()).status_code == 200 and gw.identity.provider == "one"
        assert gw.get(two.issue()).status_code == 200 and gw.identity.provider == "two"
        # a token claiming issuer one but signed by two's key is refused
        forged = two.issue({"iss": one.issuer})
        assert gw.get(forged).status_code == 401


def test_api_limited_to_some_providers(make_gateway):
    with TestIdP() as one, TestIdP(issuer_path="/two") as two:
        gw = make_gateway([provider_block(one, name="one"), provider_block(two, name="two")],
                          api={"auth": [{"method": "jwt", "providers": ["two"]}]})
        assert gw.get(one.issue()).status_code == 401
        assert gw.get(two.issue()).status_code == 200


@pytest.mark.parametrize("typ, accepted", [
    ("at+jwt", True), ("application/at+jwt", True), ("JWT", True), (None, True), ("dpop+jwt", False)])
def test_access_token_types(idp, make_gateway, typ, accepted):
    gw = make_gateway([provider_block(idp)])
    assert (gw.get(idp.issue(headers={"typ": typ})).status_code == 200) is accepted


def test_strict_rfc9068_provider_accepts_only_at_jwt(idp, make_gateway):
    gw = make_gateway([provider_block(idp, access_token_typ=["at+jwt"])])
    assert gw.get(idp.issue(headers={"typ": "JWT"})).status_code == 401
    assert gw.get(idp.issue()).status_code == 200


def test_id_tokens_when_the_provider_accepts_them(idp, make_gateway):
    # the reference's OIDC flow: an ID token used as an access token, aud = client ID
    id_token = idp.issue({"aud": "web-app", "azp": None, "client_id": None}, headers={"typ": "JWT"})
    access_only = make_gateway([provider_block(idp, client_ids=["web-app"])])
    assert access_only.get(id_token).status_code == 401
    both = make_gateway([provider_block(idp, token_types=["access", "id"],
                                        client_ids=["web-app", "test-client"])])
    assert both.get(id_token).status_code == 200
    assert both.identity.client_id == "web-app" and both.identity.token_kind == "id"
    assert both.get(idp.issue()).status_code == 200 and both.identity.token_kind == "access"


def test_approved_client_ids(idp, make_gateway):
    gw = make_gateway([provider_block(idp, client_ids=["mobile-app"])])
    assert gw.get(idp.issue({"azp": "mobile-app"})).status_code == 200
    response = gw.get(idp.issue({"azp": "web", "client_id": "web"}))
    assert problem(response)["detail"] == "the token's client is not approved"


def test_required_claims_and_max_lifetime(idp, make_gateway):
    gw = make_gateway([provider_block(idp, required_claims=["email"], max_lifetime="1h")])
    assert gw.get(idp.issue()).status_code == 401
    assert gw.get(idp.issue({"email": "a@b.c"})).status_code == 200
    assert gw.get(idp.issue({"email": "a@b.c"}, ttl=7200)).status_code == 401


def test_exp_optional_when_configured(idp, make_gateway):
    gw = make_gateway([provider_block(idp, require_exp=False)])
    assert gw.get(idp.issue(omit=("exp",))).status_code == 200


def test_skew_allows_a_little(idp, make_gateway):
    gw = make_gateway([provider_block(idp, clock_skew="60s")])
    assert gw.get(idp.issue(ttl=-30)).status_code == 200
    assert gw.get(idp.issue(ttl=-90)).status_code == 401


@pytest.mark.parametrize("scope_claim, claims, scopes", [
    ("scope", {"scope": "read write  admin"}, ("read", "write", "admin")),
    ("scp", {"scp": ["read", "write", 3]}, ("read", "write")),
    ("realm_access.roles", {"realm_access": {"roles": ["admin", "user"]}}, ("admin", "user")),
    ("https://example.com/roles", {"https://example.com/roles": "a b"}, ("a", "b")),
    ("absent", {}, ()),
])
def test_scopes_normalised_from_the_configured_claim(idp, make_gateway, scope_claim, claims, scopes):
    gw = make_gateway([provider_block(idp, scope_claim=scope_claim)])
    assert gw.get(idp.issue(claims)).status_code == 200
    assert gw.identity.scopes == scopes


def test_identity_from_a_nested_claim(idp, make_gateway):
    gw = make_gateway([provider_block(idp, identity_claim="user.email")])
    assert gw.get(idp.issue({"user": {"email": "ann@example.com"}})).status_code == 200
    identity = gw.identity
    assert identity.subject == "ann@example.com" and identity.issuer == idp.issuer
    assert identity.audiences == ("test-api",) and identity.client_id == "test-client"
    assert identity.claims["user"] == {"email": "ann@example.com"}
    assert identity.alias == "test-client:ann@example.com"


def test_session_survives_token_reissue_and_can_segregate_by_client(idp, make_gateway):
    gw = make_gateway([provider_block(idp)])
    gw.get(idp.issue())
    first = gw.context.session_id
    gw.get(idp.issue())
    assert gw.context.session_id == first  # a new token, the same session
    gw.get(idp.issue({"azp": "other", "client_id": "other"}))
    assert gw.context.session_id == first  # clients share the identity's session by default
    seg = make_gateway([provider_block(idp)], api={"segregate_by_client": True})
    seg.get(idp.issue())
    a = seg.context.session_id
    seg.get(idp.issue({"azp": "other", "client_id": "other"}))
    assert seg.context.session_id != a


def test_org_claim_keys_the_session(idp, make_gateway):
    gw = make_gateway([provider_block(idp, org_claim="org_id")])
    gw.get(idp.issue({"org_id": "acme"}))
    acme = gw.context.session_id
    gw.get(idp.issue({"org_id": "globex"}))
    assert gw.context.session_id != acme and gw.identity.org == "globex"


@pytest.mark.parametrize("source, name, send", [
    ("header", "X-Access-Token", lambda t: {"headers": {"X-Access-Token": t}}),
    ("header", "X-Access-Token", lambda t: {"headers": {"X-Access-Token": f"Bearer {t}"}}),
    ("cookie", "at", lambda t: {"environ_overrides": {"HTTP_COOKIE": f"at={t}; theme=dark"}}),
    ("query", "access_token", lambda t: {"query_string": {"access_token": t, "q": "1"}}),
])
def test_token_sources_and_credentials_stripped(idp, make_gateway, source, name, send):
    gw = make_gateway([provider_block(idp)],
                      api={"auth": [{"method": "jwt", "source": source, "name": name}]})
    gw.client = type(gw.client)(gw.client.application, use_cookies=False)
    token = idp.issue()
    assert gw.get(**send(token)).status_code == 200
    environ = gw.upstream.environ
    forwarded = " ".join(str(v) for k, v in environ.items() if isinstance(v, str))
    assert token not in forwarded
    assert gw.get(headers={"Authorization": f"Bearer {token}"}).status_code == 401  # only the source


def test_verified_tokens_are_cached_until_expiry(idp, make_gateway):
    gw = make_gateway([provider_block(idp)])
    token = idp.issue(ttl=2)
    authenticator = gw.gateway.authenticators[0]
    assert gw.get(token).status_code == 200
    assert len(authenticator._cache) == 1
    assert gw.get(token).status_code == 200 and len(authenticator._cache) == 1


def test_cache_is_bounded(idp, make_gateway):
    gw = make_gateway([provider_block(idp)], api={"auth": [{"method": "jwt", "cache_size": 5}]})
    for _ in range(20):
        assert gw.get(idp.issue()).status_code == 200
    assert len(gw.gateway.authenticators[0]._cache) == 5


def test_cached_token_still_expires(idp, tmp_path):
    """With an injected clock: a cached identity is not served past exp + skew."""
    from tests.middleware.conftest import BufferedClient, Recorder
    from wsgi_gateway import build_app, load_config
    import time as _time
    import yaml

    now = [_time.time()]
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"providers": [provider_block(idp, clock_skew="0s")],
                                    "apis": [{"name": "api", "path": "/api", "auth": ["jwt"]}]}))
    gateway = build_app(load_config(path), Recorder(), clock=lambda: now[0])
    gateway.warm()
    client = BufferedClient(gateway)
    token = idp.issue(ttl=60)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api", headers=headers).status_code == 200
    now[0] += 61
    assert client.get("/api", headers=headers).status_code == 401
