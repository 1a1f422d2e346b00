"""The assembled stack, in process: routing, errors, request IDs, headers, ops."""

from __future__ import annotations

import json
import logging

import pytest

from tests.middleware.conftest import Recorder, problem
from wsgi_gateway.errors import Forbidden
from wsgi_gateway.store.memcached import MemcachedStore
from tests.support.processes import free_port

TWO_APIS = """
apis:
  - {name: orders, path: /v1/orders}
  - {name: v1, path: /v1}
  - {name: admin, path: /v1/orders/admin, drop_headers: [X-Forwarded-User]}
"""


@pytest.mark.parametrize("path, api", [
    pytest.param("/v1/orders", "orders", id="exact prefix"),
    pytest.param("/v1/orders/7", "orders", id="below prefix"),
    pytest.param("/v1/ordersX", "v1", id="segment boundary"),
    pytest.param("/v1/orders/admin/x", "admin", id="longest prefix wins"),
    pytest.param("/v1", "v1", id="short api"),
])
def test_routing_by_longest_prefix(make_client, upstream, path, api):
    response = make_client(TWO_APIS).get(path)
    assert response.status_code == 200
    assert upstream.environ["wsgi_gateway.context"].api == api


def test_unknown_path_is_a_404_problem_and_never_reaches_the_app(make_client, upstream):
    response = make_client(TWO_APIS).get("/v2/orders")
    assert response.status_code == 404
    body = problem(response)
    assert body["type"] == "urn:wsgi-gateway:problem:not_found"
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert upstream.calls == 0


def test_unknown_path_can_pass_through(make_client, upstream):
    client = make_client(TWO_APIS + "routing: {unmatched: pass}\n")
    assert client.get("/elsewhere").status_code == 200
    assert upstream.calls == 1


@pytest.mark.parametrize("path", ["/v1/orders/../admin", "/v1/./orders", "/v1/orders/..",
                                  "/v1//orders/admin", "/v1/orders//"])
def test_dot_segments_are_refused(make_client, upstream, path):
    response = make_client(TWO_APIS).get(path)
    assert response.status_code == 400
    problem(response)
    assert upstream.calls == 0


def crashing_app(exc):
    def app(environ, start_response):
        raise exc
    return app


@pytest.mark.parametrize("exc", [
    pytest.param(RuntimeError("db password is hunter2"), id="runtime error"),
    pytest.param(OSError(104, "Connection reset by peer"), id="OSError (gunicorn would drop the connection)"),
    pytest.param(KeyError("x"), id="key error"),
])
def test_unexpected_exception_is_a_500_problem_without_trace(make_client, caplog, exc):
    client = make_client(TWO_APIS, app=crashing_app(exc))
    with caplog.at_level(logging.ERROR, logger="wsgi_gateway"):
        response = client.get("/v1/orders")
    assert response.status_code == 500
    body = problem(response)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "hunter2" not in text and "Error" not in body.get("detail", "")
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and logged[0].exc_info  # once, on the request line
    assert logged[0].gw["request_id"] == body["request_id"] and logged[0].gw["status"] == 500


def test_gateway_error_raised_by_the_upstream_is_rendered(make_client):
    response = make_client(TWO_APIS, app=crashing_app(Forbidden("not today"))).get("/v1")
    assert response.status_code == 403 and problem(response)["detail"] == "not today"


def test_error_after_start_response_replaces_the_response(make_client):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Partial", "1")])
        raise RuntimeError("half way")

    response = make_client(TWO_APIS, app=app).get("/v1")
    assert response.status_code == 500 and "X-Partial" not in response.headers
    problem(response)


def test_late_start_response_passes_through(make_client):
    def app(environ, start_response):
        def body():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"late"
        return body()

    response = make_client(TWO_APIS, app=app).get("/v1")
    assert response.status_code == 200 and response.get_data() == b"late"
    assert response.headers["X-Request-Id"]


def test_write_callable_passes_through(make_client):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"old-")
        return [b"style"]

    # werkzeug's buffered test mode drops write() output; read it as a server would
    response = make_client(TWO_APIS, app=app).get("/v1", buffered=False)
    assert response.get_data() == b"old-style" and response.headers["X-Request-Id"]
    response.close()


@pytest.mark.parametrize("incoming, kept", [
    pytest.param("abc-123", True, id="well formed"),
    pytest.param("req:2026.12.01_x", True, id="colons dots underscores"),
    pytest.param("a" * 129, False, id="too long"),
    pytest.param("<script>", False, id="markup"),
    pytest.param("", False, id="empty"),
])
def test_request_id_taken_when_well_formed(make_client, upstream, incoming, kept):
    client = make_client(TWO_APIS + "client_headers: {trusted_proxies: [127.0.0.1]}\n")
    response = client.get("/v1", headers={"X-Request-Id": incoming})
    rid = response.headers["X-Request-Id"]
    assert (rid == incoming) is kept
    assert len(rid) >= 1 and upstream.environ["HTTP_X_REQUEST_ID"] == rid
    assert json.loads(response.get_data())["headers"]["X-Request-Id"] == rid


def test_request_id_not_trusted_when_configured(make_client):
    client = make_client(TWO_APIS + "request_id: {header: X-Correlation-Id, trust_incoming: false}\n")
    response = client.get("/v1", headers={"X-Correlation-Id": "abc"})
    assert response.headers["X-Correlation-Id"] not in ("abc", "")
    assert "X-Request-Id" not in response.headers


def test_generated_request_ids_are_unique(make_client):
    client = make_client(TWO_APIS)
    ids = {client.get("/v1").headers["X-Request-Id"] for _ in range(50)}
    assert len(ids) == 50


def test_credentials_stripped_and_dropped_headers_removed(make_client):
    response = make_client(TWO_APIS).get("/v1/orders/admin", headers={
        "Authorization": "Bearer secret-token", "X-Forwarded-User": "root", "X-Other": "kept"})
    seen = json.loads(response.get_data())["headers"]
    assert "Authorization" not in seen and "X-Forwarded-User" not in seen
    assert seen["X-Other"] == "kept"


def test_credentials_forwarded_when_strip_auth_is_off(make_client):
    client = make_client("apis: [{name: a, path: /a, strip_auth: false}]\n")
    seen = json.loads(client.get("/a", headers={"Authorization": "Basic eDp5"}).get_data())["headers"]
    assert seen["Authorization"] == "Basic eDp5"


def test_health_and_ready(make_client, upstream):
    client = make_client("apis: [{name: root, path: /}]\n")
    assert client.get("/.gateway/health").json == {"status": "ok"}
    assert client.get("/.gateway/ready").json == {"status": "ready"}
    assert upstream.calls == 0  # an API at / never sees the reserved paths


@pytest.mark.parametrize("method, path, status, code", [
    pytest.param("GET", "/.gateway/other", 404, "not_found", id="unknown endpoint"),
    pytest.param("POST", "/.gateway/health", 405, "method_not_allowed", id="POST health"),
    pytest.param("DELETE", "/.gateway/ready", 405, "method_not_allowed", id="DELETE ready"),
])
def test_ops_errors_are_problems(make_client, method, path, status, code):
    response = make_client("apis: [{name: a, path: /a}]\n").open(path, method=method)
    body = problem(response)
    assert response.status_code == status and body["type"].endswith(":" + code)
    assert body["request_id"] == response.headers["X-Request-Id"]
    if status == 405:
        assert response.headers["Allow"] == "GET, HEAD"


def test_ready_is_503_when_the_store_is_down(make_client):
    dead = MemcachedStore([("127.0.0.1", free_port())], connect_timeout=0.2)
    response = make_client("apis: [{name: a, path: /a}]\n", store=dead).get("/.gateway/ready")
    assert response.status_code == 503
    body = problem(response)
    assert body["type"] == "urn:wsgi-gateway:problem:not_ready"
    assert body["reasons"] == ["store unavailable"]
    assert response.headers["Retry-After"] == "1"


def test_custom_ops_prefix(make_client):
    client = make_client("ops: {prefix: /_gw/}\napis: [{name: a, path: /a}]\n")
    assert client.get("/_gw/health").status_code == 200
    assert client.get("/.gateway/health").status_code == 404


def test_context_records_what_the_layers_learned(make_client, upstream):
    make_client(TWO_APIS).get("/v1/orders")
    ctx = upstream.environ["wsgi_gateway.context"]
    assert ctx.api == "orders" and ctx.identity.anonymous and ctx.decision == "allow"
    assert [(t.layer, t.name, t.outcome) for t in ctx.trail] == [
        ("authn", "keyless", "identified"), ("rules", "allow-all", "allow")]
