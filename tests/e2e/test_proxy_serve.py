"""URL upstreams end to end: the gateway under real gunicorn in front of a real upstream
(gunicorn again) on another port."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import yaml

from tests.support.gateways import SECRET_ENV, gateway_config, mint
from tests.support.processes import GatewayProcess
from tests.upstream.conftest import UpstreamServer

pytestmark = pytest.mark.e2e

RULES = """\
validate:
  - {expr: "claims.tenant == 'acme'", message: "this API is for acme"}
map:
  groups: "has(claims.groups) ? claims.groups : []"
allow:
  - {when: "true"}
headers:
  X-User-Id: "claims.sub"
  X-Groups: "identity.groups"
"""
# what legitimately differs between the wrapped app and a URL upstream
HOP_OR_FORWARDING = {"Host", "Connection", "X-Forwarded-For", "X-Forwarded-Proto",
                     "X-Forwarded-Host", "Forwarded", "X-Request-Id",
                     "Traceparent"}  # a new span per request, by design


@pytest.fixture(scope="module")
def upstream():
    server = UpstreamServer().start()
    yield server
    server.kill()


@pytest.fixture
def start(tmp_path):
    started = []

    def make(upstream, name="gw", api: dict | None = None, **top) -> GatewayProcess:
        (tmp_path / "rules.yaml").write_text(RULES)
        config = gateway_config(None, policies={"basic": {}},
                                api={"rules": "rules.yaml", "upstream": upstream, **(api or {})})
        config.update(top)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        process = GatewayProcess(path, workers=2, env=SECRET_ENV)
        started.append(process)
        return process.start()

    yield make
    for process in started:
        process.stop()


def _auth(**claims) -> dict:
    return {"Authorization": "Bearer " + mint(tenant="acme", groups=["eng"], **claims)}


def test_one_config_line_puts_the_gateway_in_front(start, upstream):
    gw = start(upstream.url)
    response = requests.get(gw.url + "/api/echo", headers=_auth(), timeout=5)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["X-User-Id"] == "ann" and "Authorization" not in seen
    assert requests.get(gw.url + "/api/echo", timeout=5).status_code == 401


def test_same_rule_file_same_upstream_view_through_app_and_url(start, upstream):
    via_app = start("app", name="app", app="tests.upstream.upstream_app:app")
    via_url = start(upstream.url, name="url")
    views = []
    for gw in (via_app, via_url):
        response = requests.post(
            gw.url + "/api/echo/a%2Fb?x=1&x=2", data=b"payload", timeout=5,
            headers={**_auth(), "X-Forwarded-User": "forged", "X-User-Id": "forged",
                     "Cookie": "a=1", "Content-Type": "text/plain", "X-Custom": "kept"})
        assert response.status_code == 200, response.text
        view = response.json()
        views.append({"method": view["method"], "raw_uri": view["raw_uri"], "query": view["query"],
                      "body": view["body_sha256"],
                      "headers": {k: v for k, v in view["headers"].items()
                                  if k not in HOP_OR_FORWARDING}})
    assert views[0] == views[1]
    assert views[1]["headers"]["X-User-Id"] == "ann"
    assert "X-Forwarded-User" not in views[1]["headers"]


def test_streams_both_ways_under_gunicorn(start, upstream):
    gw = start(upstream.url)
    started = time.monotonic()
    with requests.get(gw.url + "/api/stream?n=4&delay=0.3", headers=_auth(), stream=True,
                      timeout=5) as response:
        pieces = response.iter_content(None)
        first = next(pieces)
        first_at = time.monotonic() - started
        rest = b"".join(pieces)
    assert first == b"chunk 0\n" and first_at < 0.6  # not buffered until the end (1.2 s)
    assert (first + rest).count(b"chunk") == 4

    def pieces():
        for _ in range(64):
            yield b"z" * 65536
    seen = requests.post(gw.url + "/api/echo", data=pieces(), headers=_auth(), timeout=10).json()
    assert seen["body_size"] == 64 * 65536  # re-chunked upstream: the length is unknown
    assert seen["headers"]["Transfer-Encoding"] == "chunked" and "Content-Length" not in seen["headers"]


def test_client_disconnect_mid_stream_and_failures_as_answers(start, upstream, tmp_path):
    gw = start(upstream.url, api={"upstream": {"targets": [upstream.url], "read_timeout": "500ms",
                                               "max_body": "1KiB"}})
    token = _auth()["Authorization"]
    for _ in range(3):  # leave mid-body; the worker must come back free
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(f"GET /api/large?size=100000000 HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: {token}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
    assert requests.get(gw.url + "/api/echo", headers=_auth(), timeout=5).status_code == 200
    hang = requests.get(gw.url + "/api/hang?seconds=3", headers=_auth(), timeout=5)
    assert (hang.status_code, hang.json()["type"]) == (504, "urn:wsgi-gateway:problem:upstream_timeout")
    big = requests.post(gw.url + "/api/echo", data=b"x" * 4096, headers=_auth(), timeout=5)
    assert big.status_code == 413
    ws = requests.get(gw.url + "/api/ws", headers={**_auth(), "Connection": "Upgrade",
                                                   "Upgrade": "websocket"}, timeout=5)
    assert ws.status_code == 501
    log = gw.log()
    assert f"upstream={upstream.url}" in log and "upstream_status=200" in log


def test_balancing_and_passive_health_with_a_target_killed(start):
    first, second = UpstreamServer().start(), UpstreamServer().start()
    try:
        gw = start({"targets": [first.url, second.url], "health": {"failures": 1, "cooldown": "60s"}})
        pids = {requests.get(gw.url + "/api/echo", headers=_auth(), timeout=5).json()["pid"]
                for _ in range(8)}
        assert len(pids) == 2  # both targets served
        first.kill()
        gets = [requests.get(gw.url + "/api/echo", headers=_auth(), timeout=5).status_code
                for _ in range(8)]
        assert gets == [200] * 8  # a refused connect is retried on the other target
        posts = [requests.post(gw.url + "/api/echo", data=b"x", headers=_auth(), timeout=5)
                 .status_code for _ in range(14)]
        # a POST is never retried: a worker that had not met the dead target yet answers
        # 502 once (health is per worker, failures: 1), then skips it for the cooldown
        assert set(posts) <= {200, 502} and posts.count(502) <= 2, posts
    finally:
        first.kill()
        second.kill()


def test_cut_upstream_body_cuts_the_client(start):
    from tests.upstream.raw_server import RawUpstream

    raw = RawUpstream().start()
    try:
        gw = start(raw.url)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(gw.url + "/api/close-mid-body", headers=_auth(), timeout=5).content
        bad = requests.get(gw.url + "/api/bad-status", headers=_auth(), timeout=5)
        assert bad.status_code == 502 and "127.0.0.1" not in bad.text
        assert "Traceback" not in gw.log()
        assert json.loads(bad.text)["type"].endswith("bad_upstream_response")
    finally:
        raw.stop()


def test_gthread_workers_share_pools_and_health_safely(start, upstream):
    from concurrent.futures import ThreadPoolExecutor

    gw = start(upstream.url, server={"worker_class": "gthread", "threads": 4})
    token = _auth()

    def one(i: int):
        response = requests.post(gw.url + f"/api/echo?i={i}", data=str(i).encode() * 1000,
                                 headers=token, timeout=10)
        return response.status_code, response.json()["query"], response.json()["body_size"]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(60)))
    assert answers == [(200, f"i={i}", len(str(i)) * 1000) for i in range(60)]
