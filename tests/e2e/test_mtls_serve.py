"""mtls end to end: gunicorn terminating TLS and asking for client certificates."""

from __future__ import annotations

import ssl

import pytest
import requests
import yaml

from tests.support.certs import issue, make_ca, server_cert
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.e2e



class TlsGateway(GatewayProcess):
    """GatewayProcess serving https, health-checked with a client certificate."""

    def __init__(self, config, *, ca_pem, client):
        super().__init__(config, workers=2)
        self.health_options = {"cert": client, "verify": ca_pem}

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    (folder / "ca.pem").write_text(ca.pem)
    return {"dir": folder, "ca": folder / "ca.pem",
            "server": server_cert(ca).write(folder, "server"),
            "client": issue(ca, "svc-billing").write(folder, "client"),
            "stranger": issue(make_ca("Other CA"), "mallory").write(folder, "stranger")}


def start(tmp_path, pki, cert_reqs: int) -> TlsGateway:
    certfile, keyfile = pki["server"]
    config = {"app": "contrib.demo.echo:app", "logging": {"access_log": False},
              "server": {"certfile": str(certfile), "keyfile": str(keyfile),
                         "ca_certs": str(pki["ca"]), "cert_reqs": cert_reqs},
              "apis": [{"name": "api", "path": "/api", "auth": ["mtls"]}]}
    path = tmp_path / f"tls-{cert_reqs}.yaml"
    path.write_text(yaml.safe_dump(config))
    return TlsGateway(path, ca_pem=str(pki["ca"]), client=tuple(map(str, pki["client"]))).start()


@pytest.fixture(params=[pytest.param(2, id="cert_reqs=required"),
                        pytest.param(1, id="cert_reqs=optional")])
def served(request, tmp_path, pki):
    gateway = start(tmp_path, pki, request.param)
    yield request.param, gateway
    gateway.stop()


def test_good_client_certificate_is_the_identity(served, pki):
    _, gateway = served
    for _ in range(4):  # several connections, so both workers answer
        response = requests.get(gateway.url + "/api/x", cert=tuple(map(str, pki["client"])),
                                verify=str(pki["ca"]), timeout=5)
        assert response.status_code == 200, response.text
        assert response.json()["gateway"]["identity"] == "svc-billing"


def test_no_client_certificate(served, pki):
    cert_reqs, gateway = served
    if cert_reqs == 2:  # the handshake fails: no HTTP at all
        with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError)):
            requests.get(gateway.url + "/api/x", verify=str(pki["ca"]), timeout=5)
    else:
        response = requests.get(gateway.url + "/api/x", verify=str(pki["ca"]), timeout=5)
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"


def test_certificate_of_another_ca_cannot_connect(served, pki):
    _, gateway = served
    with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError)):
        requests.get(gateway.url + "/api/x", cert=tuple(map(str, pki["stranger"])),
                     verify=str(pki["ca"]), timeout=5)


def test_server_is_really_tls(served, pki):
    _, gateway = served
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    import socket

    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
