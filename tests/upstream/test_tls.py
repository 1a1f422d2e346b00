"""TLS to an upstream with a test CA: verification on, CA bundle, client certificate
(mTLS to the upstream), and a checked name other than the URL's host."""

from __future__ import annotations

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.certs import issue, make_ca, server_cert

from .conftest import UpstreamServer


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca("Upstream CA")
    ca_file, _ = ca.write(folder, "ca")
    files = {"dir": folder, "ca": ca_file}
    files["server"] = server_cert(ca).write(folder, "server")
    files["named"] = issue(ca, "upstream.test", dns=("upstream.test",),
                           usage=ExtendedKeyUsageOID.SERVER_AUTH).write(folder, "named")
    files["client"] = issue(ca, "gateway").write(folder, "client")
    files["other_ca"] = make_ca("Someone else").write(folder, "other")[0]
    return files


@pytest.fixture(scope="module")
def tls_upstream(pki):
    server = UpstreamServer(tls=pki["server"]).start()
    yield server
    server.kill()


def _status(proxied, upstream) -> int:
    response = proxied(upstream).get("/svc/echo")
    return response.status_code, response.get_json().get("type", "")


def test_verified_with_the_ca_bundle(proxied, tls_upstream, pki):
    assert _status(proxied, {"targets": [tls_upstream.url],
                             "tls": {"ca_file": str(pki["ca"])}})[0] == 200


@pytest.mark.parametrize("tls", [pytest.param({}, id="system CAs only"),
                                 pytest.param({"ca_file": "OTHER"}, id="another CA")])
def test_an_unknown_ca_is_refused(proxied, tls_upstream, pki, tls):
    tls = {k: str(pki["other_ca"]) for k in tls}
    status, problem = _status(proxied, {"targets": [tls_upstream.url], "tls": tls})
    assert status == 502 and problem.endswith("upstream_unreachable")


def test_client_certificate_to_the_upstream(proxied, pki):
    server = UpstreamServer(tls=(*pki["named"], pki["ca"])).start()
    try:
        base = {"targets": [server.url], "tls": {"ca_file": str(pki["ca"]),
                                                 "server_name": "upstream.test"}}
        assert _status(proxied, base)[0] == 502  # no client certificate: handshake refused
        cert, key = pki["client"]
        with_cert = {**base, "tls": {**base["tls"], "cert_file": str(cert), "key_file": str(key)}}
        assert _status(proxied, with_cert)[0] == 200
    finally:
        server.kill()


def test_server_name_is_the_checked_name(proxied, pki):
    server = UpstreamServer(tls=pki["named"]).start()  # a certificate for upstream.test only
    try:
        tls = {"ca_file": str(pki["ca"])}
        assert _status(proxied, {"targets": [server.url], "tls": tls})[0] == 502
        assert _status(proxied, {"targets": [server.url],
                                 "tls": {**tls, "server_name": "upstream.test"}})[0] == 200
    finally:
        server.kill()
