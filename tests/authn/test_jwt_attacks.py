"""The attack catalogue: every forged, tampered or misaddressed token gets 401,
and the upstream is never called."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.authn.conftest import provider_block, problem
from tests.support.idp import TestIdP, b64url


@pytest.fixture(scope="module")
def es_kid(idp):
    return idp.add_key("ES256")


@pytest.fixture
def gw(idp, make_gateway, es_kid):
    return make_gateway([provider_block(idp, client_ids=["test-client"])])


def _payload(idp, **changes):
    claims = {**idp.default_claims(), **changes}
    return json.dumps(claims).encode()


def _ecdsa_zero(idp, es_kid):
    return TestIdP.forge({"alg": "ES256", "typ": "at+jwt", "kid": es_kid}, _payload(idp), b"\0" * 64)


ATTACKS = {
    "alg none": lambda idp, kid: TestIdP.forge({"alg": "none", "typ": "at+jwt"}, _payload(idp)),
    "alg None": lambda idp, kid: TestIdP.forge({"alg": "None"}, _payload(idp)),
    "alg NONE": lambda idp, kid: TestIdP.forge({"alg": "NONE"}, _payload(idp)),
    "alg nOnE with signature": lambda idp, kid: TestIdP.forge({"alg": "nOnE"}, _payload(idp), b"x"),
    "HS256 signed with the RSA public key": lambda idp, kid: TestIdP.sign_hmac(
        {"alg": "HS256", "typ": "at+jwt", "kid": idp.signing_kid}, _payload(idp),
        idp.public_pem(idp.signing_kid)),
    "HS256 with the public key and no kid": lambda idp, kid: TestIdP.sign_hmac(
        {"alg": "HS256"}, _payload(idp), idp.public_pem(idp.signing_kid)),
    "kid path traversal": lambda idp, kid: idp.issue(headers={"kid": "../../../../etc/passwd"}),
    "kid very long": lambda idp, kid: idp.issue(headers={"kid": "k" * 5000}),
    "kid unknown": lambda idp, kid: idp.issue(headers={"kid": "no-such-key"}),
    "kid not a string": lambda idp, kid: idp.issue(headers={"kid": 7}),
    "jku pointing elsewhere": lambda idp, kid: _attacker(idp, {"jku": "https://evil.example/jwks"}),
    "x5u pointing elsewhere": lambda idp, kid: _attacker(idp, {"x5u": "https://evil.example/cert"}),
    "embedded jwk": lambda idp, kid: _attacker(idp, {"jwk": "embedded"}),
    "unknown crit": lambda idp, kid: idp.issue(headers={"crit": ["exp"], "exp": 1}),
    "crit empty list": lambda idp, kid: idp.issue(headers={"crit": []}),
    "crit not a list": lambda idp, kid: idp.issue(headers={"crit": 5}),
    "b64 false": lambda idp, kid: idp.issue(headers={"b64": False, "crit": ["b64"]}),
    "tampered payload": lambda idp, kid: TestIdP.tamper(idp.issue(), payload=_payload(idp, sub="admin")),
    "tampered signature": lambda idp, kid: _flip_signature(idp.issue()),
    "signature stripped": lambda idp, kid: idp.issue().rsplit(".", 1)[0] + ".",
    "zero ECDSA signature (r = s = 0)": _ecdsa_zero,
    "expired beyond skew": lambda idp, kid: idp.issue(ttl=-60),
    "not yet valid beyond skew": lambda idp, kid: idp.issue({"nbf": int(time.time()) + 120}),
    "issued in the future beyond skew": lambda idp, kid: idp.issue({"iat": int(time.time()) + 120}),
    "wrong issuer": lambda idp, kid: idp.issue({"iss": "https://evil.example/"}),
    "issuer with trailing slash": lambda idp, kid: idp.issue({"iss": idp.issuer + "/"}),
    "issuer missing": lambda idp, kid: idp.issue(omit=("iss",)),
    "wrong audience": lambda idp, kid: idp.issue({"aud": "other-api"}),
    "audience list without ours": lambda idp, kid: idp.issue({"aud": ["a", "b"]}),
    "audience missing": lambda idp, kid: idp.issue(omit=("aud",)),
    "unapproved client ID": lambda idp, kid: idp.issue({"client_id": "rogue", "azp": "rogue"}),
    "missing exp": lambda idp, kid: idp.issue(omit=("exp",)),
    "exp not a number": lambda idp, kid: idp.issue({"exp": "tomorrow"}),
    "exp NaN": lambda idp, kid: idp.sign_raw({"alg": "RS256", "typ": "at+jwt", "kid": idp.signing_kid},
                                             _payload(idp).replace(b'"exp": ', b'"exp": NaN, "x": ')),
    "oversized token": lambda idp, kid: idp.issue({"pad": "x" * 9000}),
    "malformed base64 in header (impossible length)": lambda idp, kid: "eyJhA." + idp.issue().split(".", 1)[1],
    "base64 of non-UTF-8 header": lambda idp, kid: b64url(b"\xff\xfe") + "." + idp.issue().split(".", 1)[1],
    "malformed JSON in payload": lambda idp, kid: idp.sign_raw(
        {"alg": "RS256", "typ": "at+jwt", "kid": idp.signing_kid}, b'{"sub": '),
    "payload not an object": lambda idp, kid: idp.sign_raw(
        {"alg": "RS256", "typ": "at+jwt", "kid": idp.signing_kid}, b'["sub"]'),
    "header not an object": lambda idp, kid: idp.sign_raw(b'["alg"]', _payload(idp)),
    "duplicate sub in a signed payload": lambda idp, kid: idp.sign_raw(
        {"alg": "RS256", "typ": "at+jwt", "kid": idp.signing_kid},
        _payload(idp)[:-1] + b', "sub": "admin"}'),
    "duplicate alg in a signed header": lambda idp, kid: idp.sign_raw(
        f'{{"alg":"none","typ":"at+jwt","kid":"{idp.signing_kid}","alg":"RS256"}}', _payload(idp)),
    "two segments": lambda idp, kid: ".".join(idp.issue().split(".")[:2]) + ".x.y",
    "identity claim missing": lambda idp, kid: idp.issue(omit=("sub",)),
    "identity claim not a string": lambda idp, kid: idp.issue({"sub": {"id": 1}}),
    "typ not accepted (ID-token-ish JOSE type)": lambda idp, kid: idp.issue(headers={"typ": "dpop+jwt"}),
    "key of another algorithm family": lambda idp, kid: idp.issue(kid=kid, headers={"alg": "RS256"}),
    "unpublished key": lambda idp, kid: idp.issue(kid=idp.add_key("RS256", publish=False)),
}


def _attacker(idp, header: dict) -> str:
    attacker = TestIdP(default_alg="RS256")  # keys of its own, never published to us
    kid = attacker.signing_kid
    if header.get("jwk") == "embedded":
        header = {"jwk": attacker.public_jwk(kid)}
    token = attacker.sign_raw({"alg": "RS256", "typ": "at+jwt", "kid": kid, **header},
                              _payload(idp), kid)
    return token


def _flip_signature(token: str) -> str:
    head, sig = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 1
    return f"{head}.{b64url(bytes(raw))}"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused_with_401_and_never_reaches_upstream(gw, idp, es_kid, attack):
    token = ATTACKS[attack](idp, es_kid)
    response = gw.get(token)
    assert response.status_code == 401, (attack, response.get_data(as_text=True))
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    body = problem(response)
    assert body["type"].endswith(":invalid_token")
    assert token[-20:] not in response.get_data(as_text=True)
    assert gw.upstream.calls == 0


def test_valid_token_passes(gw, idp):
    response = gw.get(idp.issue())
    assert response.status_code == 200 and gw.upstream.calls == 1


@pytest.mark.parametrize("value", [
    pytest.param("Bearer !!!.abc.def", id="characters outside b64token"),
    pytest.param("Bearer abc==.def.ghi", id="padding inside the token"),
    pytest.param("Bearer a.b.c d", id="space inside"),
    pytest.param("Bearer a.b.c, Bearer d.e.f", id="two Authorization headers, joined"),
    pytest.param("Bearer ", id="empty token"),
    pytest.param("Bearer t\u00e9st.a.b", id="non-ASCII"),
])
def test_malformed_authorization_is_400_invalid_request(gw, value):
    response = gw.client.get("/api/x", headers={"Authorization": value})
    assert response.status_code == 400
    assert problem(response)["type"].endswith(":invalid_request")
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert gw.upstream.calls == 0


@pytest.mark.parametrize("value", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(gw, idp, value):
    response = gw.client.get("/api/x", headers={"Authorization": f"{value} {idp.issue()}"})
    assert response.status_code == 200


@pytest.mark.parametrize("value", [None, "Basic dXNlcjpwYXNz", "Bearer opaque-token-without-dots"])
def test_no_jwt_is_401_without_error_code(gw, value):
    headers = {"Authorization": value} if value else {}
    response = gw.client.get("/api/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert gw.upstream.calls == 0
