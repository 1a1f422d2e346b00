"""The metrics path in process: who may scrape, and what a scrape holds."""

from __future__ import annotations

import pytest
from prometheus_client import values

from tests.observe.support import samples, value
from wsgi_gateway.observe import metrics as metrics_module

CONFIG = """
app: contrib.demo.echo:app
apis: [{{name: open, path: /open, auth: [keyless]}}]
metrics: {{enabled: true, multiproc_dir: {dir}, flush_interval: 0s, allow: [127.0.0.1, 10.0.0.0/24]}}
"""


@pytest.fixture
def client(make_client, tmp_path, monkeypatch):
    # metrics switch prometheus_client to multiprocess mode for the process: put it back
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.setattr(metrics_module, "_active_dir", None)
    return make_client(CONFIG.format(dir=tmp_path / "prom"))


@pytest.mark.parametrize("peer, status", [
    pytest.param("127.0.0.1", 200, id="loopback (listed)"),
    pytest.param("10.0.0.7", 200, id="inside a listed CIDR"),
    pytest.param("10.0.1.7", 404, id="outside"),
    pytest.param("::1", 404, id="not listed here"),
])
def test_only_allowed_peers_scrape(client, peer, status):
    response = client.get("/.gateway/metrics", environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == status
    if status == 404:
        assert response.headers["Content-Type"] == "application/problem+json"


def test_labels_never_carry_the_path_or_the_client(client):
    client.get("/open/secret-path-123?token=abc", headers={"User-Agent": "client-string-xyz"})
    text = client.get("/.gateway/metrics").get_data(as_text=True)
    assert value(samples(text), "gateway_requests_total", api="open", method="read", status="200") == 1
    for leaked in ("secret-path-123", "abc", "client-string-xyz"):
        assert leaked not in text
