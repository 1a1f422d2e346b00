"""mtls in process: certificates forwarded by a trusted proxy, verified by the gateway."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.support.certs import issue, make_ca
from wsgi_gateway.authn.mtls import MtlsAuthenticator, MtlsOptions
from wsgi_gateway.authn.mtls_x509 import load_anchors, thumbprint_s256
from wsgi_gateway.errors import ConfigError, InvalidToken

PROXY = "10.1.2.3"          # inside trusted_proxies
CLIENT = "192.0.2.7"        # outside
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def other_ca():
    return make_ca("Test CA")  # same name, other key: only the signature tells them apart


@pytest.fixture
def ca_file(tmp_path, ca):
    path = tmp_path / "ca.pem"
    path.write_text(ca.pem)
    return path


def config(ca_file, *, auth_extra: dict | None = None, more_auth=()) -> dict:
    method = {"method": "mtls", "header": "X-Client-Cert", "trusted_proxies": ["10.0.0.0/8"],
              "ca_file": str(ca_file), **(auth_extra or {})}
    return {"apis": [{"name": "api", "path": "/api", "auth": [method, *more_auth]}]}


def get(gw, value: str | None, remote: str = PROXY):
    headers = {} if value is None else {"X-Client-Cert": value}
    return gw.client.get("/api/x", headers=headers, environ_overrides={"REMOTE_ADDR": remote})


def problem(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json"
    return json.loads(response.get_data())


def identity(gw):
    return gw.upstream.environ["wsgi_gateway.context"].identity


@pytest.mark.parametrize("encode", [
    pytest.param(lambda c: c.escaped_pem(), id="url-encoded PEM (nginx)"),
    pytest.param(lambda c: c.b64_der(), id="base64 DER"),
])
def test_trusted_proxy_certificate_is_the_identity(in_process, ca_file, ca, encode):
    client = issue(ca, "svc-orders", dns=("orders.internal",), emails=("ops@example.com",))
    gw = in_process(config(ca_file))
    response = get(gw, encode(client))
    assert response.status_code == 200, response.get_data()
    who = identity(gw)
    assert (who.method, who.subject, who.issuer) == ("mtls", "svc-orders", ca.cert.subject.rfc4514_string())
    assert who.claims["san"]["dns"] == ["orders.internal"]
    assert who.claims["serial"] == format(client.cert.serial_number, "x")
    assert who.claims["fingerprint"] == client.cert.fingerprint(hashes.SHA256()).hex()
    assert who.claims["not_after"] == int(client.cert.not_valid_after_utc.timestamp())
    assert "HTTP_X_CLIENT_CERT" not in gw.upstream.environ  # stripped before the upstream


@pytest.mark.parametrize("source,expected", [
    pytest.param("subject_cn", "client-1", id="subject CN"),
    pytest.param("san_dns", "a.example", id="first DNS SAN"),
    pytest.param("san_email", "a@example.com", id="first email SAN"),
    pytest.param("san_uri", "spiffe://example/ns/a", id="first URI SAN"),
])
def test_identity_from(in_process, ca_file, ca, source, expected):
    client = issue(ca, dns=("a.example", "b.example"), emails=("a@example.com",),
                   uris=("spiffe://example/ns/a",))
    gw = in_process(config(ca_file, auth_extra={"identity_from": source}))
    assert get(gw, client.escaped_pem()).status_code == 200
    assert identity(gw).subject == expected


def test_untrusted_address_header_is_ignored_and_stripped(in_process, ca_file, ca):
    good = issue(ca).escaped_pem()
    alone = in_process(config(ca_file), name="alone")
    response = get(alone, good, remote=CLIENT)
    assert response.status_code == 401 and problem(response)["type"].endswith(":unauthorized")
    assert alone.upstream.calls == 0
    chained = in_process(config(ca_file, more_auth=["keyless"]), name="chained")
    response = get(chained, good, remote=CLIENT)
    assert response.status_code == 200 and identity(chained).anonymous
    assert "HTTP_X_CLIENT_CERT" not in chained.upstream.environ


def test_empty_header_from_proxy_means_no_certificate(in_process, ca_file):
    gw = in_process(config(ca_file))
    response = get(gw, "")
    assert response.status_code == 401 and problem(response)["type"].endswith(":unauthorized")


def _bad_certs(ca, other_ca):
    return {
        "expired": issue(ca, not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(days=1)),
        "not yet valid": issue(ca, not_before=NOW + timedelta(days=1)),
        "other CA, same name": issue(other_ca),
        "server certificate": issue(ca, usage=ExtendedKeyUsageOID.SERVER_AUTH),
        "no CN": issue(ca, cn=None),
    }


@pytest.mark.parametrize("case,detail", [
    pytest.param("expired", "has expired", id="expired"),
    pytest.param("not yet valid", "not valid yet", id="not yet valid"),
    pytest.param("other CA, same name", "not issued by a trusted CA", id="other CA"),
    pytest.param("server certificate", "not for client authentication", id="serverAuth only"),
    pytest.param("no CN", "has no subject cn", id="no subject CN"),
])
def test_bad_certificates_are_401(in_process, ca_file, ca, other_ca, case, detail):
    gw = in_process(config(ca_file))
    response = get(gw, _bad_certs(ca, other_ca)[case].escaped_pem())
    body = problem(response)
    assert response.status_code == 401 and body["type"].endswith(":invalid_token")
    assert detail in body["detail"]
    assert gw.upstream.calls == 0


@pytest.mark.parametrize("value", [
    pytest.param("garbage", id="not base64"),
    pytest.param("QUJD", id="base64 but not DER"),
    pytest.param("-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A",
                 id="truncated PEM"),
    pytest.param("%ff%fe", id="URL-encoded non-UTF-8"),
    pytest.param("A" * 20_000, id="oversized"),
    pytest.param("QUJD, QUJD", id="two headers joined by a comma"),
    pytest.param("-----BEGIN CERTIFICATE-----", id="PEM header only"),
    pytest.param("Bearer QUJD", id="a bearer token"),
])
def test_malformed_header_is_400(in_process, ca_file, value):
    gw = in_process(config(ca_file))
    response = get(gw, value)
    assert response.status_code == 400, response.get_data()
    assert problem(response)["type"].endswith(":invalid_request")
    assert gw.upstream.calls == 0


def test_two_pem_certificates_are_400(in_process, ca_file, ca):
    gw = in_process(config(ca_file))
    response = get(gw, issue(ca).escaped_pem() + issue(ca).escaped_pem())
    assert response.status_code == 400 and gw.upstream.calls == 0


def test_fingerprint_allow_list(in_process, ca_file, ca):
    allowed, other = issue(ca, "allowed"), issue(ca, "other")
    colons = ":".join(f"{b:02X}" for b in bytes.fromhex(
        allowed.cert.fingerprint(hashes.SHA256()).hex()))
    gw = in_process(config(ca_file, auth_extra={"fingerprints": [colons]}))
    assert get(gw, allowed.escaped_pem()).status_code == 200
    response = get(gw, other.escaped_pem())
    assert response.status_code == 401 and "allowed list" in problem(response)["detail"]


def test_cached_certificate_still_expires(ca_file, ca):
    client = issue(ca, not_after=NOW + timedelta(hours=1))
    now = [NOW.timestamp()]
    options = MtlsOptions(header="X-Client-Cert", trusted_proxies=("10.0.0.0/8",),
                          ca_file=str(ca_file))
    auth = MtlsAuthenticator(options, load_anchors(ca_file), clock=lambda: now[0])
    request = Request(EnvironBuilder(headers={"X-Client-Cert": client.escaped_pem()},
                                     environ_overrides={"REMOTE_ADDR": PROXY}).get_environ())
    assert auth.authenticate(request).subject == "client-1"
    now[0] += 2 * 3600
    with pytest.raises(InvalidToken, match="expired"):
        auth.authenticate(request)


@pytest.mark.parametrize("extra,message", [
    pytest.param({"trusted_proxies": []}, "header needs trusted_proxies", id="header without proxies"),
    pytest.param({"trusted_proxies": ["10.0.0.1/8"]}, "not an address or CIDR", id="host bits set"),
    pytest.param({"trusted_proxies": ["nowhere"]}, "not an address or CIDR", id="not an address"),
    pytest.param({"fingerprints": ["abc"]}, "not a SHA-256 hex fingerprint", id="short fingerprint"),
    pytest.param({"ca_file": "missing.pem"}, "cannot read ca_file", id="missing ca_file"),
    pytest.param({"identity_from": "serial"}, "expected one of", id="unknown identity_from"),
    pytest.param({"header": "X Client"}, "not a valid header name", id="bad header name"),
])
def test_config_errors_name_the_key(in_process, ca_file, extra, message):
    with pytest.raises(ConfigError) as err:
        in_process(config(ca_file, auth_extra=extra))
    text = "\n".join(err.value.problems)
    assert message in text and "apis[0].auth[0]" in text and "gw.yaml:" in text


def test_ca_file_of_a_leaf_is_refused(in_process, tmp_path, ca):
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issue(ca).pem)
    with pytest.raises(ConfigError, match="is not a CA certificate"):
        in_process(config(leaf))


def test_thumbprint_is_rfc8705_x5t_s256(ca):
    import base64
    import hashlib

    client = issue(ca)
    expected = base64.urlsafe_b64encode(hashlib.sha256(client.der).digest()).rstrip(b"=").decode()
    assert thumbprint_s256(client.der) == expected and len(expected) == 43


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
def test_rules_read_the_certificate_as_cert(in_process, ca_file, ca, tmp_path, engine):
    (tmp_path / "rules.yaml").write_text(
        "deny:\n"
        "  - when: \"!cert.san.dns.exists(d, d.endsWith('.internal'))\"\n"
        "    reason: internal services only\n"
        "headers:\n"
        "  X-Client-CN: \"cert.cn\"\n"
        "  X-Cert-Fingerprint: \"cert.fingerprint\"\n")
    cfg = config(ca_file)
    cfg["apis"][0]["rules"] = "rules.yaml"
    cfg["cel"] = {"engine": engine}
    gw = in_process(cfg, name=f"cert-{engine}")
    inside = issue(ca, "svc-orders", dns=("orders.internal",))
    response = get(gw, inside.escaped_pem())
    assert response.status_code == 200, response.get_data()
    seen = json.loads(response.get_data())["headers"]
    assert seen["X-Client-Cn"] == "svc-orders"
    assert seen["X-Cert-Fingerprint"] == inside.cert.fingerprint(hashes.SHA256()).hex()
    outside = issue(ca, "svc-web", dns=("web.example.com",))
    refused = get(gw, outside.escaped_pem())
    assert refused.status_code == 403 and problem(refused)["detail"] == "internal services only"


def test_untrusted_certificate_header_never_reaches_the_upstream_even_without_strip_auth(
        in_process, ca_file, ca):
    cfg = config(ca_file, more_auth=["keyless"])
    cfg["apis"][0]["strip_auth"] = False
    gw = in_process(cfg, name="no-strip")
    response = get(gw, "-----BEGIN CERTIFICATE-----forged", remote="192.0.2.7")
    assert response.status_code == 200  # keyless lets it through, anonymously
    assert "HTTP_X_CLIENT_CERT" not in gw.upstream.environ
