"""Tests of the loopback test identity provider itself, over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Iterator

import pytest
import requests
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, InvalidKeyTypeError, UnsupportedAlgorithmError
from joserfc.jwk import KeySet, OctKey
from joserfc.jwt import JWTClaimsRegistry

from tests.support.idp import SUPPORTED_ALGORITHMS, TestIdP

TIMEOUT = 5


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[TestIdP]:
    """One provider for the read-mostly tests (each test adds its own keys/clients)."""
    with TestIdP(issuer_path="/realms/test") as idp:
        yield idp


@pytest.fixture
def idp() -> Iterator[TestIdP]:
    """A private provider for tests that change server state (faults, keys, counters)."""
    with TestIdP() as idp:
        yield idp


def fetch_keyset(idp: TestIdP) -> KeySet:
    response = requests.get(idp.jwks_uri, timeout=TIMEOUT)
    response.raise_for_status()
    return KeySet.import_key_set(response.json())


def decode(token: str, key: object, alg: str) -> jwt.Token:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that "EdDSA" is deprecated (RFC 9864)
        return jwt.decode(token, key, algorithms=[alg])  # type: ignore[arg-type]


def segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def kids_in(jwks: dict) -> list[str]:
    return [k["kid"] for k in jwks["keys"]]


def strip_alg(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k != "alg"}


# -- discovery and JWKS -------------------------------------------------------------


def test_discovery_document(shared_idp: TestIdP) -> None:
    response = requests.get(shared_idp.discovery_url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    doc = response.json()
    assert doc["issuer"] == shared_idp.issuer
    assert shared_idp.issuer.startswith("http://127.0.0.1:") and shared_idp.issuer.endswith("/realms/test")
    assert shared_idp.discovery_url == shared_idp.issuer + "/.well-known/openid-configuration"
    for name in ("jwks_uri", "token_endpoint", "introspection_endpoint", "authorization_endpoint"):
        assert doc[name].startswith(shared_idp.issuer + "/")
    assert doc["jwks_uri"] == shared_idp.jwks_uri
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]


def test_discovery_overrides_and_unknown_paths(idp: TestIdP) -> None:
    idp.discovery_overrides["issuer"] = "https://evil.example"
    assert requests.get(idp.discovery_url, timeout=TIMEOUT).json()["issuer"] == "https://evil.example"
    assert requests.get(idp.url("/nope"), timeout=TIMEOUT).status_code == 404
    assert requests.post(idp.jwks_uri, timeout=TIMEOUT).status_code == 405


def test_jwks_add_rotate_remove(idp: TestIdP) -> None:
    first = idp.signing_kid
    assert first is not None and idp.alg_of(first) == "RS256"
    response = requests.get(idp.jwks_uri, timeout=TIMEOUT)
    assert response.headers["Cache-Control"] == "max-age=300"
    (jwk,) = response.json()["keys"]
    assert jwk["kid"] == first and jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private members must not be published"

    ec_kid = idp.add_key("ES256")
    hs_kid = idp.add_key("HS256")
    hidden = idp.add_key("ES384", publish=False)
    assert idp.signing_kid == first, "add_key does not change the signing key"
    published = requests.get(idp.jwks_uri, timeout=TIMEOUT).json()
    assert kids_in(published) == [first, ec_kid]
    assert all("k" not in k and "d" not in k for k in published["keys"])
    assert len(idp.secret(hs_kid)) == 32 and hidden in idp.kids()

    new = idp.rotate()
    assert idp.signing_kid == new != first and idp.alg_of(new) == "RS256"
    assert kids_in(requests.get(idp.jwks_uri, timeout=TIMEOUT).json()) == [first, ec_kid, new]

    idp.remove_key(first)
    assert kids_in(requests.get(idp.jwks_uri, timeout=TIMEOUT).json()) == [ec_kid, new]
    keyset = fetch_keyset(idp)
    with pytest.raises(InvalidKeyIdError):
        decode(idp.issue(kid=first), keyset, "RS256")  # a removed key can still sign, but is unknown
    assert decode(idp.issue(), keyset, "RS256").header["kid"] == new


def test_jwks_max_age_configurable(idp: TestIdP) -> None:
    idp.set_jwks_max_age(7)
    assert requests.get(idp.jwks_uri, timeout=TIMEOUT).headers["Cache-Control"] == "max-age=7"
    idp.set_jwks_max_age(None)
    assert "Cache-Control" not in requests.get(idp.jwks_uri, timeout=TIMEOUT).headers


def test_rsa_keys_are_distinct_within_one_idp(idp: TestIdP) -> None:
    kids = [idp.signing_kid, idp.add_key("RS256"), idp.add_key("PS256"), idp.add_key("RS256", fresh=True)]
    moduli = {idp.public_jwk(kid)["n"] for kid in kids}  # type: ignore[arg-type]
    assert len(moduli) == len(kids)


# -- issuing ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(SUPPORTED_ALGORITHMS))
def test_issued_token_verifies_with_published_jwks(shared_idp: TestIdP, alg: str) -> None:
    kid = shared_idp.add_key(alg)
    token = shared_idp.issue({"scope": "read"}, kid=kid)
    if alg.startswith("HS"):
        assert kid not in kids_in(requests.get(shared_idp.jwks_uri, timeout=TIMEOUT).json())
        key: object = OctKey.import_key(shared_idp.secret(kid))
    else:
        key = fetch_keyset(shared_idp)
    result = decode(token, key, alg)
    assert result.header == {"alg": alg, "typ": "at+jwt", "kid": kid}
    claims = result.claims
    assert claims["scope"] == "read" and claims["sub"] == "test-user" and claims["client_id"] == "test-client"
    JWTClaimsRegistry(
        iss={"essential": True, "value": shared_idp.issuer},
        aud={"essential": True, "value": "test-api"},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(claims)
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]


def test_issue_claims_omit_headers_and_ttl(shared_idp: TestIdP) -> None:
    token = shared_idp.issue(
        {"sub": "alice", "aud": ["a", "b"], "extra": {"x": 1}},
        omit=("exp", "jti"),
        headers={"typ": None, "crit": ["exp"], "exp": 1, "jku": "http://127.0.0.1:1/evil"},
        now=1_000,
    )
    header, claims = json.loads(segment(token, 0)), json.loads(segment(token, 1))
    assert header == {"alg": "RS256", "kid": shared_idp.signing_kid, "crit": ["exp"], "exp": 1, "jku": "http://127.0.0.1:1/evil"}
    assert claims["sub"] == "alice" and claims["aud"] == ["a", "b"] and claims["iat"] == 1_000
    assert "exp" not in claims and "jti" not in claims

    expired = shared_idp.issue(ttl=-60)
    claims = decode(expired, fetch_keyset(shared_idp), "RS256").claims
    assert claims["exp"] < time.time()


def test_issue_with_lying_header_and_alg_none(shared_idp: TestIdP) -> None:
    keyset = fetch_keyset(shared_idp)
    kid = shared_idp.signing_kid
    lying = shared_idp.issue(headers={"alg": "PS256"})  # RS256 signature, header says PS256
    with pytest.raises(InvalidKeyIdError):
        decode(lying, keyset, "PS256")  # the JWK's "alg" (RS256) filters the key out
    without_alg = KeySet.import_key_set({"keys": [strip_alg(k) for k in shared_idp.jwks()["keys"]]})
    with pytest.raises(BadSignatureError):
        decode(lying, without_alg, "PS256")
    unsigned = shared_idp.issue(alg="none")
    assert unsigned.endswith(".") and json.loads(segment(unsigned, 0)) == {"alg": "none", "typ": "at+jwt", "kid": kid}
    with pytest.raises(UnsupportedAlgorithmError):
        jwt.decode(unsigned, keyset)  # "none" is not in joserfc's default (recommended) algorithms
    with pytest.raises(InvalidKeyTypeError):
        shared_idp.issue(alg="ES256")  # an RSA key cannot sign ES256


# -- forging --------------------------------------------------------------------------


def test_forge_encodes_raw_segments_verbatim() -> None:
    raw_payload = '{"sub":"alice","sub":"admin"}'
    token = TestIdP.forge({"alg": "none"}, raw_payload)
    assert token.count(".") == 2 and token.endswith(".")
    assert segment(token, 0) == b'{"alg":"none"}' and segment(token, 1) == raw_payload.encode()
    assert "=" not in token
    odd = TestIdP.forge(b'["alg"]', b"\xff\xfe not json", b"\x00sig")
    assert segment(odd, 0) == b'["alg"]' and segment(odd, 1) == b"\xff\xfe not json" and segment(odd, 2) == b"\x00sig"


def test_tampered_payload_fails_verification(shared_idp: TestIdP) -> None:
    token = shared_idp.issue()
    tampered = TestIdP.tamper(token, payload={**json.loads(segment(token, 1)), "scope": "admin"})
    assert tampered.split(".")[0] == token.split(".")[0] and tampered.split(".")[2] == token.split(".")[2]
    with pytest.raises(BadSignatureError):
        decode(tampered, fetch_keyset(shared_idp), "RS256")


def test_sign_raw_duplicate_keys_verify_and_last_one_wins(shared_idp: TestIdP) -> None:
    kid = shared_idp.signing_kid
    payload = b'{"sub":"alice","scope":"read","scope":"admin"}'
    token = shared_idp.sign_raw({"alg": "RS256", "kid": kid}, payload, kid)
    assert segment(token, 1) == payload
    # joserfc verifies the signature and silently keeps the *last* duplicate (json.loads).
    assert decode(token, fetch_keyset(shared_idp), "RS256").claims["scope"] == "admin"
    raw_header = f'{{"alg":"none","alg":"RS256","kid":"{kid}"}}'
    token = shared_idp.sign_raw(raw_header, b'{"sub":"x"}', kid)
    assert segment(token, 0) == raw_header.encode()
    assert decode(token, fetch_keyset(shared_idp), "RS256").header["alg"] == "RS256"


def test_hs256_with_rsa_public_key_as_secret(shared_idp: TestIdP) -> None:
    kid = shared_idp.signing_kid
    pem = shared_idp.public_pem(kid)  # type: ignore[arg-type]
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    token = TestIdP.sign_hmac({"alg": "HS256", "kid": kid}, {"sub": "admin"}, pem)
    with pytest.raises(InvalidKeyIdError):  # the JWK's "alg" is RS256: no key for an HS256 token
        jwt.decode(token, fetch_keyset(shared_idp), algorithms=["HS256", "RS256"])
    without_alg = KeySet.import_key_set({"keys": [strip_alg(k) for k in shared_idp.jwks()["keys"]]})
    with pytest.raises(InvalidKeyTypeError):  # no "alg" on the JWK: rejected by key type (oct vs RSA)
        jwt.decode(token, without_alg, algorithms=["HS256", "RS256"])
    with pytest.raises(ValueError):
        OctKey.import_key(pem)  # joserfc refuses a PEM public key as an HMAC secret


# -- faults and counters --------------------------------------------------------------


def test_stop_and_start_on_same_port_keeps_keys(idp: TestIdP) -> None:
    port, jwks = idp.port, requests.get(idp.jwks_uri, timeout=TIMEOUT).json()
    idp.stop()
    assert not idp.running
    with pytest.raises(requests.ConnectionError):
        requests.get(idp.jwks_uri, timeout=TIMEOUT)
    idp.start()
    assert idp.port == port and idp.running
    assert requests.get(idp.jwks_uri, timeout=TIMEOUT).json() == jwks


def test_delay_slows_every_response(idp: TestIdP) -> None:
    idp.set_delay(0.3)
    started = time.monotonic()
    assert requests.get(idp.jwks_uri, timeout=TIMEOUT).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        requests.get(idp.discovery_url, timeout=0.1)
    idp.set_delay(0)
    started = time.monotonic()
    requests.get(idp.jwks_uri, timeout=TIMEOUT)
    assert time.monotonic() - started < 0.25


def test_status_override(idp: TestIdP) -> None:
    idp.add_client("c", "s")
    idp.set_status(503)
    assert requests.get(idp.jwks_uri, timeout=TIMEOUT).status_code == 503
    assert requests.get(idp.discovery_url, timeout=TIMEOUT).status_code == 503
    token = requests.post(idp.token_endpoint, data={"grant_type": "client_credentials"}, auth=("c", "s"), timeout=TIMEOUT)
    assert token.status_code == 200, "other endpoints are unaffected by default"
    idp.set_status(500, paths=["/token"])
    assert requests.post(idp.token_endpoint, data={}, timeout=TIMEOUT).status_code == 500
    idp.set_status(None)
    assert requests.get(idp.jwks_uri, timeout=TIMEOUT).status_code == 200
    assert requests.get(idp.discovery_url, timeout=TIMEOUT).status_code == 200


def test_request_counters(idp: TestIdP) -> None:
    assert idp.requests_count("/jwks") == 0
    for _ in range(3):
        requests.get(idp.jwks_uri, timeout=TIMEOUT)
    requests.get(idp.discovery_url, timeout=TIMEOUT)
    idp.set_status(502)
    requests.get(idp.jwks_uri, timeout=TIMEOUT)
    assert idp.requests_count("/jwks") == 4 and idp.requests_count(idp.jwks_uri) == 4
    assert idp.requests_count("/.well-known/openid-configuration") == 1
    assert idp.requests_count() == 5
    idp.reset_counts()
    assert idp.requests_count() == 0


def test_counters_with_issuer_path() -> None:
    with TestIdP(issuer_path="/t", default_alg="ES256") as idp:
        requests.get(idp.jwks_uri, timeout=TIMEOUT)
        assert requests.get(idp.base_url + "/jwks", timeout=TIMEOUT).status_code == 404
        assert idp.requests_count("/jwks") == 1 and idp.requests_count() == 2


# -- OAuth endpoints ------------------------------------------------------------------


def test_client_credentials_basic_and_post(shared_idp: TestIdP) -> None:
    shared_idp.add_client("svc:a", "s3cr%t", scope="read write")
    url = shared_idp.token_endpoint
    # client_secret_basic form-urlencodes id and secret before base64 (RFC 6749 2.3.1).
    basic = requests.post(url, data={"grant_type": "client_credentials"}, auth=("svc%3Aa", "s3cr%25t"), timeout=TIMEOUT)
    post = requests.post(
        url,
        data={"grant_type": "client_credentials", "client_id": "svc:a", "client_secret": "s3cr%t", "scope": "read"},
        timeout=TIMEOUT,
    )
    assert basic.status_code == post.status_code == 200
    assert basic.headers["Cache-Control"] == "no-store"
    assert basic.json()["token_type"] == "Bearer" and basic.json()["expires_in"] == 300
    assert basic.json()["scope"] == "read write" and post.json()["scope"] == "read"
    claims = decode(post.json()["access_token"], fetch_keyset(shared_idp), "RS256").claims
    assert claims["sub"] == claims["client_id"] == claims["azp"] == "svc:a" and claims["scope"] == "read"
    assert claims["iss"] == shared_idp.issuer


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"data": {"grant_type": "client_credentials"}, "auth": ("svc-b", "wrong")}, 401, "invalid_client"),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        ({"data": {"grant_type": "password"}, "auth": ("svc-b", "pw")}, 400, "unsupported_grant_type"),
        ({"data": {}, "auth": ("svc-b", "pw")}, 400, "invalid_request"),
        ({"data": {"grant_type": "client_credentials", "scope": "admin"}, "auth": ("svc-b", "pw")}, 400, "invalid_scope"),
        (
            {"data": {"grant_type": "client_credentials", "client_id": "svc-b", "client_secret": "pw"}, "auth": ("svc-b", "pw")},
            400,
            "invalid_request",
        ),
    ],
)
def test_token_endpoint_errors(shared_idp: TestIdP, kwargs: dict, status: int, error: str) -> None:
    shared_idp.add_client("svc-b", "pw", scope="read")
    response = requests.post(shared_idp.token_endpoint, timeout=TIMEOUT, **kwargs)
    assert response.status_code == status and response.json()["error"] == error
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_introspection(shared_idp: TestIdP) -> None:
    shared_idp.add_client("rs", "rs-secret")
    url, auth = shared_idp.introspection_endpoint, ("rs", "rs-secret")

    def introspect(token: str, **kwargs: object) -> requests.Response:
        return requests.post(url, data={"token": token}, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]

    jwt_token = shared_idp.issue({"sub": "bob"})
    opaque = shared_idp.issue_opaque({"sub": "carol", "scope": "read"})
    assert "." not in opaque
    active = introspect(jwt_token, auth=auth).json()
    assert active["active"] is True and active["sub"] == "bob" and active["iss"] == shared_idp.issuer
    assert active["token_type"] == "Bearer"
    by_post = requests.post(url, data={"token": opaque, "client_id": "rs", "client_secret": "rs-secret"}, timeout=TIMEOUT)
    assert by_post.json()["active"] is True and by_post.json()["scope"] == "read"

    assert introspect("never-issued", auth=auth).json() == {"active": False}
    assert introspect(TestIdP.forge({"alg": "none"}, {"sub": "bob"}), auth=auth).json() == {"active": False}
    assert introspect(shared_idp.issue(ttl=-1), auth=auth).json() == {"active": False}
    assert introspect(shared_idp.issue(now=int(time.time()) + 3600), auth=auth).json() == {"active": False}

    shared_idp.revoke(jwt_token)
    shared_idp.revoke(opaque)
    assert introspect(jwt_token, auth=auth).json() == {"active": False}
    assert introspect(opaque, auth=auth).json() == {"active": False}

    assert introspect(jwt_token).status_code == 401
    assert introspect(jwt_token, auth=("rs", "nope")).status_code == 401
    assert requests.post(url, data={}, auth=auth, timeout=TIMEOUT).json()["error"] == "invalid_request"
