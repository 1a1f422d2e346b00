"""Failures are answers: each failure mode of a real upstream gives its status and a
problem naming the API, never the target."""

from __future__ import annotations

import socket

import pytest

from tests.support.processes import free_port


def _problem(response) -> tuple[int, str, str]:
    body = response.get_json()
    return response.status_code, body["type"].rsplit(":", 1)[-1], body.get("detail", "")


@pytest.fixture
def refused_url():
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def unaccepting_url():
    """A port whose listen backlog is full: SYNs go unanswered, connecting times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue (Linux keeps backlog + 1)
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(server.getsockname())
        fillers.append(sock)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    for sock in [*fillers, server]:
        sock.close()


def test_connection_refused_is_502_naming_the_api(proxied, refused_url):
    status, code, detail = _problem(proxied(refused_url).get("/svc/x"))
    assert (status, code) == (502, "upstream_unreachable")
    assert "'svc'" in detail and "127.0.0.1" not in detail


def test_expose_target_names_it(proxied, refused_url):
    client = proxied({"targets": [refused_url], "expose_target": True})
    assert refused_url in _problem(client.get("/svc/x"))[2]


def test_read_timeout_is_504(proxied, upstream):
    client = proxied({"targets": [upstream.url], "read_timeout": "300ms"})
    assert _problem(client.get("/svc/hang?seconds=2"))[:2] == (504, "upstream_timeout")


def test_connect_timeout_is_504(proxied, unaccepting_url):
    client = proxied({"targets": [unaccepting_url], "connect_timeout": "200ms", "retries": 0})
    assert _problem(client.get("/svc/x"))[:2] == (504, "upstream_timeout")


@pytest.mark.parametrize("path", [
    pytest.param("/svc/bad-status", id="bad status line"),
    pytest.param("/svc/garbage", id="not HTTP"),
    pytest.param("/svc/reset", id="reset before an answer"),
    pytest.param("/svc/bad-header", id="control byte in a header"),
])
def test_malformed_answer_is_502(proxied, raw_upstream, path):
    status, code, detail = _problem(proxied(raw_upstream.url).get(path))
    assert (status, code) == (502, "bad_upstream_response")
    assert str(raw_upstream.port) not in detail


# the body is cut on purpose: LintMiddleware notices Content-Length was not honoured
@pytest.mark.filterwarnings("ignore:Content-Length and the number of bytes")
def test_body_cut_midway_cuts_the_client_connection(proxied, raw_upstream):
    client = proxied(raw_upstream.url)
    with pytest.raises(ConnectionResetError):  # the server then drops the connection
        client.get("/svc/close-mid-body")


def test_retry_only_idempotent_and_only_connect_failures(proxied, refused_url, raw_upstream):
    client = proxied({"targets": [refused_url, raw_upstream.url], "retries": 1})
    seen = {}
    app = client.application
    client.application = lambda environ, start: seen.setdefault("env", environ) and app(environ, start)
    assert client.get("/svc/x").status_code == 200  # refused target first, then the other
    assert len(raw_upstream.requests) == 1
    trail = [(e.outcome, e.detail.split()[0]) for e in seen["env"]["wsgi_gateway.context"].trail
             if e.layer == "upstream"]
    assert trail == [("upstream_unreachable", refused_url), ("200", raw_upstream.url)]
    client = proxied({"targets": [refused_url, raw_upstream.url], "retries": 1})
    assert _problem(client.post("/svc/x", data=b"once"))[:2] == (502, "upstream_unreachable")
    assert len(raw_upstream.requests) == 1


def test_no_retry_after_the_request_was_sent(proxied, raw_upstream):
    client = proxied({"targets": [raw_upstream.url], "retries": 3})
    assert client.get("/svc/reset").status_code == 502
    assert len(raw_upstream.requests) == 1


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_all_targets_failing_answers_503_at_once(proxied, refused_url):
    client = proxied({"targets": [refused_url], "health": {"failures": 2, "cooldown": "30s"}})
    clock = FakeClock()
    client.gateway.apis["svc"].proxy.targets.clock = clock
    assert [client.get("/svc/x").status_code for _ in range(2)] == [502, 502]
    response = client.get("/svc/x")
    assert _problem(response)[:2] == (503, "upstream_unavailable")
    assert response.headers["Retry-After"] == "30"
    clock.now += 30
    assert client.get("/svc/x").status_code == 502  # tried again after the cooldown
    assert client.get("/svc/x").status_code == 503  # one more failure: skipped again


def test_ready_can_include_the_upstreams(proxied, refused_url):
    client = proxied({"targets": [refused_url], "ready": True, "health": {"failures": 1}})
    assert client.get("/.gateway/ready").status_code == 200
    client.get("/svc/x")
    response = client.get("/.gateway/ready")
    assert response.status_code == 503
    assert response.get_json()["reasons"] == ["upstream of svc: every target failing"]


# the body is cut on purpose: LintMiddleware notices Content-Length was not honoured
@pytest.mark.filterwarnings("ignore:Content-Length and the number of bytes")
def test_client_leaving_mid_stream_frees_the_upstream_connection(proxied, upstream):
    client = proxied(upstream.url)
    proxy = client.gateway.apis["svc"].proxy
    response = client.get("/svc/large?size=50000000", buffered=False)
    next(iter(response.response))  # one piece, then the client goes away
    response.close()
    pool = proxy.pools.manager().connection_from_url(upstream.url)
    connections = [c for c in list(pool.pool.queue) if c is not None]
    assert connections and all(c.sock is None for c in connections)  # closed, not half read
    assert proxy.targets.targets[0].outstanding == 0
    assert client.get("/svc/echo").status_code == 200


def test_a_finished_response_keeps_the_connection_alive(proxied, upstream):
    client = proxied(upstream.url)
    proxy = client.gateway.apis["svc"].proxy
    for _ in range(3):
        assert client.get("/svc/echo").status_code == 200
    pool = proxy.pools.manager().connection_from_url(upstream.url)
    assert pool.num_connections == 1  # one connection, reused
