"""The hmac (draft-cavage, Tyk) and httpsig (RFC 9421) methods: clients that sign as real
clients do, a real memcached for replay records, two gateways sharing it, and a table of
bad input."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time

import http_message_signatures as hms
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.middleware.conftest import problem
from wsgi_gateway import load_config
from wsgi_gateway.errors import ConfigError

SECRET = "s3cret-for-hmac-tests-0123456789"
OTHER = "another-secret-for-hmac-tests-42"
ENV = {"SIG_K1": SECRET, "SIG_K2": OTHER}


# --- clients ---------------------------------------------------------------------------

def http_date(offset: float = 0) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


def cavage(method: str, target: str, headers: dict, *, key_id: str = "k1",
           secret: str = SECRET, algorithm: str = "hmac-sha256",
           covered: str = "(request-target) date") -> str:
    """The Authorization value a Tyk HMAC client sends."""
    lines = []
    for name in covered.split():
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            lines.append(f"{name}: {headers[name.title()]}")
    digest = hmac.digest(secret.encode(), "\n".join(lines).encode(), algorithm[5:])
    return (f'Signature keyId="{key_id}",algorithm="{algorithm}",headers="{covered}",'
            f'signature="{base64.b64encode(digest).decode()}"')


def signed(method="GET", target="/api/x", *, extra=None, date_offset=0, **kw) -> dict:
    headers = {"Date": http_date(date_offset), **(extra or {})}
    headers["Authorization"] = cavage(method, target, headers, **kw)
    return headers


class _Outgoing:
    """The message a client signs with the package: method, absolute URL, headers."""

    def __init__(self, method: str, url: str, headers: dict):
        self.method, self.url, self.headers = method, url, dict(headers)


def rfc9421(keys, method="GET", path="/sig/x", *, key_id="k1", body: bytes | None = None,
            algorithm=None, components=("@method", "@target-uri", "@authority"),
            headers=None, created=None) -> dict:
    """Headers of a request signed by the package's own signer, as a client would."""
    algorithm = algorithm or keys.algorithms[key_id]
    message = _Outgoing(method, f"http://localhost{path}", headers or {})
    signer = hms.HTTPMessageSigner(signature_algorithm=algorithm,
                                   key_resolver=hms.MappingKeyResolver(
                                       public_keys={}, private_keys=keys.private))
    signer.sign(message, key_id=key_id, covered_component_ids=components, body=body,
                created=created)
    return message.headers


class Keys:
    """Client key pairs of every kind, their PEM files and the keys file."""

    def __init__(self, folder):
        pairs = {"ed": ed25519.Ed25519PrivateKey.generate(),
                 "ec": ec.generate_private_key(ec.SECP256R1()),
                 "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.private = {"k1": SECRET.encode(), "k2": OTHER.encode(), **pairs}
        self.algorithms = {"k1": hms.algorithms.HMAC_SHA256, "k2": hms.algorithms.HMAC_SHA256,
                           "ed": hms.algorithms.ED25519, "ec": hms.algorithms.ECDSA_P256_SHA256,
                           "rsa": hms.algorithms.RSA_PSS_SHA512}
        entries = {"k1": {"secret": {"env": "SIG_K1"}, "subject": "acme",
                          "policies": ["gold", "unknown"]},
                   "k2": {"env": "SIG_K2"}}
        for name, private in pairs.items():
            pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
            (folder / f"{name}.pem").write_bytes(pem)
            entries[name] = {"public_key": f"{name}.pem"}
        (folder / "keys.yaml").write_text(yaml.safe_dump({"keys": entries}))


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


def config(memcached, hmac_options=None, httpsig_options=None) -> dict:
    return {"store": {"backend": "memcached", "servers": [memcached.address]},
            "policies": {"gold": {}},
            "apis": [{"name": "api", "path": "/api",
                      "auth": [{"method": "hmac", "secrets_file": "keys.yaml",
                                **(hmac_options or {})}]},
                     {"name": "sig", "path": "/sig",
                      "auth": [{"method": "httpsig", "keys_file": "keys.yaml",
                                **(httpsig_options or {})}]}]}


@pytest.fixture
def gw(in_process, memcached, keys):
    return in_process(config(memcached))


def identity(gateway):
    return gateway.upstream.environ["wsgi_gateway.context"].identity


# --- hmac ------------------------------------------------------------------------------

def test_good_hmac_signature_identifies_the_key(gw):
    response = gw.client.get("/api/x?a=1", headers=signed(target="/api/x?a=1"))
    assert response.status_code == 200
    who = identity(gw)
    assert (who.method, who.subject, who.client_id, who.policies) == ("hmac", "acme", "k1", ("gold",))
    assert "HTTP_AUTHORIZATION" not in gw.upstream.environ   # strip_auth


def test_hmac_sha512_when_allowed(in_process, memcached, keys):
    gw = in_process(config(memcached, {"algorithms": ["hmac-sha256", "hmac-sha512"]}))
    headers = signed(key_id="k2", secret=OTHER, algorithm="hmac-sha512")
    assert gw.client.get("/api/x", headers=headers).status_code == 200
    assert identity(gw).subject == "k2"


def _tampered_path(h):
    return "/api/y", h


def _tampered_date(h):
    return "/api/x", {**h, "Date": http_date(1)}


@pytest.mark.parametrize("headers, path, expect", [
    pytest.param(lambda: signed(target="/api/x"), "/api/y", "not valid", id="tampered path"),
    pytest.param(lambda: signed(target="/api/x"), "/api/x?admin=1", "not valid", id="tampered query"),
    pytest.param(lambda: {**signed(), "Date": http_date(-2)}, "/api/x", "not valid", id="tampered date"),
    pytest.param(lambda: signed(extra={"X-Amount": "1"}, covered="(request-target) date x-amount")
                 | {"X-Amount": "1000"}, "/api/x", "not valid", id="tampered covered header"),
    pytest.param(lambda: signed(secret=OTHER), "/api/x", "not valid", id="wrong key"),
    pytest.param(lambda: signed(key_id="nobody"), "/api/x", "not valid", id="unknown keyId"),
    pytest.param(lambda: signed(algorithm="hmac-sha512"), "/api/x", "not allowed",
                 id="algorithm not allowed"),
    pytest.param(lambda: signed(date_offset=-301), "/api/x", "too far", id="Date too old"),
    pytest.param(lambda: signed(date_offset=400), "/api/x", "too far", id="Date in the future"),
    pytest.param(lambda: signed(covered="(request-target)"), "/api/x", "must cover date",
                 id="Date not covered"),
    pytest.param(lambda: {k: v for k, v in signed().items() if k != "Date"}, "/api/x",
                 "Date", id="Date missing"),
    pytest.param(lambda: signed(covered="date"), "/api/x", "(request-target)",
                 id="request-target not covered"),
])
def test_bad_hmac_signatures_are_401(gw, headers, path, expect):
    response = gw.client.get(path, headers=headers())
    assert response.status_code == 401, response.get_data()
    assert expect in problem(response)["detail"]
    assert response.headers["WWW-Authenticate"].startswith(
        'Signature realm="api",headers="(request-target) date"')
    assert gw.upstream.calls == 0


def test_replay_is_refused_by_another_gateway_sharing_the_store(in_process, memcached, keys):
    first, second = in_process(config(memcached), "a"), in_process(config(memcached), "b")
    headers = signed()
    assert first.client.get("/api/x", headers=headers).status_code == 200
    response = second.client.get("/api/x", headers=headers)
    assert response.status_code == 401 and "replay" in problem(response)["detail"]
    assert second.upstream.calls == 0
    assert second.client.get("/api/x", headers=signed(date_offset=1)).status_code == 200


def test_replay_off_accepts_a_repeat(in_process, memcached, keys):
    gw = in_process(config(memcached, {"replay": False}))
    headers = signed()
    assert [gw.client.get("/api/x", headers=headers).status_code for _ in range(2)] == [200, 200]


def test_no_signature_scheme_steps_aside(gw):
    response = gw.client.get("/api/x", headers={"Authorization": "Bearer abc"})
    assert response.status_code == 401 and problem(response)["type"].endswith(":unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Signature realm="api",headers="(request-target) date"'


# --- httpsig ---------------------------------------------------------------------------

@pytest.mark.parametrize("key_id", ["k1", "ed", "ec", "rsa"])
def test_good_rfc9421_signature_with_every_key_kind(gw, keys, key_id):
    response = gw.client.get("/sig/x", headers=rfc9421(keys, key_id=key_id))
    assert response.status_code == 200, response.get_data()
    who = identity(gw)
    assert (who.method, who.client_id) == ("httpsig", key_id)


def test_rfc9421_body_with_content_digest_reaches_upstream(gw, keys):
    body = b'{"amount": 10}'
    headers = rfc9421(keys, "POST", body=body,
                      components=("@method", "@path", "@authority", "content-type"),
                      headers={"Content-Type": "application/json"})
    response = gw.client.post("/sig/x", data=body, headers=headers)
    assert response.status_code == 200, response.get_data()
    assert gw.upstream.environ["wsgi.input"].getvalue() == body


@pytest.mark.parametrize("change, expect", [
    pytest.param(lambda h, b: ("/sig/y", h, b), "not valid", id="tampered path"),
    pytest.param(lambda h, b: ("/sig/x", {**h, "Content-Type": "text/plain"}, b), "not valid",
                 id="tampered covered header"),
    pytest.param(lambda h, b: ("/sig/x", h, b + b"0"), "not valid", id="Content-Digest mismatch"),
    pytest.param(lambda h, b: ("/sig/x", {**h, "Content-Digest": "sha-256=:"
                                          + base64.b64encode(hashlib.sha256(b + b"0").digest()).decode()
                                          + ":"}, b + b"0"), "not valid",
                 id="Content-Digest replaced with the tampered body's"),
])
def test_tampered_rfc9421_requests_are_401(gw, keys, change, expect):
    body = b'{"amount": 10}'
    headers = rfc9421(keys, "POST", key_id="ed", body=body,
                      components=("@method", "@path", "@authority", "content-type"),
                      headers={"Content-Type": "application/json"})
    path, headers, body = change(headers, body)
    response = gw.client.post(path, data=body, headers=headers)
    assert response.status_code == 401, response.get_data()
    assert expect in problem(response)["detail"]
    assert gw.upstream.calls == 0


@pytest.mark.parametrize("sign, expect", [
    pytest.param(lambda k: rfc9421(k, key_id="k2", algorithm=hms.algorithms.HMAC_SHA256) |
                 {"Signature": rfc9421(k, key_id="k1")["Signature"]}, "not valid", id="wrong key"),
    pytest.param(lambda k: rfc9421(k, components=("@method", "@authority")), "@target-uri or @path",
                 id="target not covered"),
    pytest.param(lambda k: rfc9421(k, created=_ago(400)), "too far", id="created too old"),
    pytest.param(lambda k: rfc9421(k, created=_ago(-400)), "too far", id="created in the future"),
])
def test_bad_rfc9421_signatures_are_401(gw, keys, sign, expect):
    response = gw.client.get("/sig/x", headers=sign(keys))
    assert response.status_code == 401, response.get_data()
    assert expect in problem(response)["detail"]
    assert gw.upstream.calls == 0


def test_rfc9421_body_not_covered_is_401(gw, keys):
    response = gw.client.post("/sig/x", data=b"x", headers=rfc9421(keys, "POST"))
    assert response.status_code == 401 and "content-digest" in problem(response)["detail"]


def test_rfc9421_algorithm_not_allowed(in_process, memcached, keys):
    gw = in_process(config(memcached, httpsig_options={"algorithms": ["ed25519"]}))
    response = gw.client.get("/sig/x", headers=rfc9421(keys, key_id="rsa"))
    assert response.status_code == 401 and "not allowed" in problem(response)["detail"]
    assert gw.client.get("/sig/x", headers=rfc9421(keys, key_id="ed")).status_code == 200


def test_rfc9421_replay_refused_by_another_gateway(in_process, memcached, keys):
    first, second = in_process(config(memcached), "a"), in_process(config(memcached), "b")
    headers = rfc9421(keys, key_id="ec")
    assert first.client.get("/sig/x", headers=headers).status_code == 200
    relabelled = {**headers, "Signature-Input": headers["Signature-Input"].replace("pyhms=", "x="),
                  "Signature": headers["Signature"].replace("pyhms=", "x=")}
    for attempt in (headers, relabelled):
        response = second.client.get("/sig/x", headers=attempt)
        assert response.status_code == 401 and "replay" in problem(response)["detail"]
    assert second.upstream.calls == 0


def _ago(seconds: float):
    import datetime
    return datetime.datetime.fromtimestamp(time.time() - seconds, tz=datetime.timezone.utc)


# --- bad input -------------------------------------------------------------------------

HUGE = "a" * 9000


@pytest.mark.parametrize("path, headers, status", [
    pytest.param("/api/x", {"Authorization": "Signature"}, 400, id="empty Signature"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1"'}, 400, id="no signature param"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1",keyId="k2",algorithm="hmac-sha256",signature="AA=="'},
                 400, id="duplicate param"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1,algorithm="hmac-sha256"'}, 400,
                 id="unterminated quote"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId=k1,algorithm="hmac-sha256",signature="AA=="'},
                 400, id="unquoted token"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1",algorithm="hmac-sha256",signature="!!"',
                            "Date": http_date()}, 400, id="signature not base64"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1",algorithm="hmac-sha256",'
                            'headers="date date",signature="AA=="'}, 400, id="header twice"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1",algorithm="hmac-sha256",'
                            'headers="(request-target) Date\x01",signature="AA=="'}, 400,
                 id="control in headers"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="k1",algorithm="hmac-sha256",'
                            'headers="(request-target) date",signature="AA=="', "Date": "yesterday"},
                 400, id="Date not an HTTP date"),
    pytest.param("/api/x", {"Authorization": f'Signature keyId="{HUGE}"'}, 400, id="oversized"),
    pytest.param("/api/x", {"Authorization": 'Signature keyId="a,b=\\"c\\"",algorithm="md5",'
                            'signature="AA=="', "Date": http_date()}, 401,
                 id="commas and escapes inside quotes"),
    pytest.param("/api/x", {"Authorization": "Basic YTpi"}, 401, id="other scheme"),
    pytest.param("/api/x", {"Authorization": "Signaturex keyId=1"}, 401, id="scheme prefix"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="k1";created=1'}, 400,
                 id="Signature-Input alone"),
    pytest.param("/sig/x", {"Signature": "a=:AAAA:"}, 400, id="Signature alone"),
    pytest.param("/sig/x", {"Signature-Input": "a=(@method", "Signature": "a=:AAAA:"}, 400,
                 id="not a structured field"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");created=1', "Signature": "a=:AAAA:"},
                 400, id="no keyid"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="k1"', "Signature": "a=:AAAA:"},
                 400, id="no created"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="k1";created=1',
                            "Signature": "b=:AAAA:"}, 400, id="labels differ"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="k1";created=1, '
                            'b=("@method");keyid="k1";created=1',
                            "Signature": "a=:AAAA:, b=:AAAA:"}, 400, id="two signatures"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="k1";created=1',
                            "Signature": 'a="text"'}, 400, id="signature not bytes"),
    pytest.param("/sig/x", {"Signature-Input": f'a=("@method");keyid="{HUGE}";created=1',
                            "Signature": "a=:AAAA:"}, 400, id="oversized Signature-Input"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method");keyid="nobody";created=1',
                            "Signature": "a=:AAAA:"}, 401, id="unknown keyid"),
    pytest.param("/sig/x", {"Signature-Input": 'a=("@method" "@path" "@authority" "@target-uri");'
                            f'keyid="k1";created={int(time.time())}', "Signature": "a=:AAAA:"},
                 401, id="garbage signature"),
    pytest.param("/sig/x", {"Authorization": "Signature keyId=1"}, 401, id="cavage on httpsig"),
])
def test_bad_input_is_a_problem_never_a_500(gw, path, headers, status):
    response = gw.client.get(path, headers=headers)
    assert response.status_code == status, response.get_data()
    assert problem(response)["status"] == status
    assert gw.upstream.calls == 0


def test_oversized_body_is_refused_before_reading(in_process, memcached, keys):
    gw = in_process(config(memcached, httpsig_options={"max_body": 10}))
    body = b"x" * 11
    headers = rfc9421(keys, "POST", body=body)
    response = gw.client.post("/sig/x", data=body, headers=headers)
    assert response.status_code == 400 and "too large" in problem(response)["detail"]
    assert gw.upstream.calls == 0


# --- config ----------------------------------------------------------------------------

@pytest.mark.parametrize("entries, expect", [
    pytest.param({"k": {"env": "SIG_NOPE"}}, "keys.k: environment variable SIG_NOPE", id="env unset"),
    pytest.param({"k": {"secret": {"env": "SIG_K1"}, "colour": 1}}, "unknown key 'colour'", id="unknown key"),
    pytest.param({"k": {"public_key": "missing.pem"}}, "cannot be read", id="no pem"),
    pytest.param({"k": {"secret": {"env": "SIG_K1"}, "policies": "gold"}}, "policies", id="policies not a list"),
    pytest.param({"k": "inline-secret"}, "expected {env: NAME}", id="inline secret"),
    pytest.param({"k k": {"env": "SIG_K1"}}, "key id", id="bad key id"),
])
def test_keys_file_faults_name_file_line_and_key(tmp_path, memcached, entries, expect):
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": entries}))
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config(memcached)))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "gw.yaml")
    text = str(err.value)
    assert expect in text and "keys.yaml:2:" in text, text


@pytest.mark.parametrize("options, expect", [
    pytest.param({"algorithms": ["md5"]}, "algorithms", id="unknown algorithm"),
    pytest.param({"required_headers": ["(request-target)"]}, "must include date", id="date not required"),
    pytest.param({"max_skew": "2h"}, "max_skew", id="skew too long"),
])
def test_bad_hmac_options(tmp_path, memcached, keys, options, expect):
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config(memcached, options)))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "gw.yaml")
    assert expect in str(err.value) and "gw.yaml:" in str(err.value)


# --- warm repeats ------------------------------------------------------------------------
# (their cost is measured by contrib/bench/bench_signatures.py, not here)

@pytest.mark.parametrize("kind", [pytest.param("hmac", id="hmac"),
                                  pytest.param("httpsig-ed25519", id="httpsig ed25519")])
def test_warm_repeats_are_served_and_each_is_checked(in_process, memcached, keys, kind):
    gw = in_process(config(memcached, {"replay": False}, {"replay": False}))
    if kind == "hmac":
        path, headers, key_id = "/api/x", signed(), "k1"
    else:
        path, headers, key_id = "/sig/x", rfc9421(keys, key_id="ed"), "ed"
    for _ in range(5):
        assert gw.client.get(path, headers=headers).status_code == 200
    assert identity(gw).client_id == key_id
    # a warm signature is verified again: the same headers on another path are refused
    assert gw.client.get(path[:-1] + "y", headers=headers).status_code == 401
    assert gw.upstream.calls == 5
