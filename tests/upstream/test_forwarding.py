"""Faithful forwarding, in process against real upstreams: what the target receives
(seen on the wire by the raw server, or echoed by gunicorn) and what the client gets."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest

from tests.upstream.upstream_app import GZIPPED

PEER = {"REMOTE_ADDR": "198.51.100.7"}


def _wire(client, path="/svc/x", **kw) -> tuple[bytes, dict[bytes, list[bytes]]]:
    """(request line, headers by lower-case name) as the raw upstream received them."""
    response = client.open(path, environ_overrides={**PEER, **kw.pop("environ", {})}, **kw)
    assert response.status_code == 200, response.get_data()
    head, _, body = response.get_data().partition(b"\r\n\r\n")
    line, *lines = head.split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for item in lines:
        name, _, value = item.partition(b":")
        headers.setdefault(name.lower(), []).append(value.strip())
    return line, headers, body


@pytest.mark.parametrize(("sent", "received"), [
    pytest.param("/svc/a%2Fb?x=1&x=2&y", b"/svc/a%2Fb?x=1&x=2&y", id="encoded slash kept"),
    pytest.param("/svc/%7Euser/caf%C3%A9", b"/svc/%7Euser/caf%C3%A9", id="encoded unreserved kept"),
    pytest.param("/svc/q?a=%20b&c=d+e&&=", b"/svc/q?a=%20b&c=d+e&&=", id="query exactly"),
    pytest.param("/svc", b"/svc", id="the prefix alone"),
])
def test_path_and_query_reach_the_target_as_sent(proxied, raw_upstream, sent, received):
    line, _, _ = _wire(proxied(raw_upstream.url), sent)
    assert line.split(b" ")[1] == received


@pytest.mark.parametrize(("upstream", "sent", "received"), [
    pytest.param({"strip_path": True}, "/svc/orders/7?q=1", b"/orders/7?q=1", id="strip_path"),
    pytest.param({"strip_path": True}, "/svc", b"/", id="strip_path on the prefix"),
    pytest.param({"strip_path": True}, "/%73vc/a%2Fb", b"/a%2Fb", id="strip an encoded prefix"),
    pytest.param({"strip_path": True, "base": "/base"}, "/svc/x", b"/base/x", id="base path"),
    pytest.param({"base": "/base"}, "/svc/x", b"/base/svc/x", id="base path, prefix kept"),
])
def test_strip_path_and_base_path(proxied, raw_upstream, upstream, sent, received):
    base = upstream.pop("base", "")
    line, headers, _ = _wire(proxied({"targets": [raw_upstream.url + base], **upstream}), sent)
    assert line.split(b" ")[1] == received
    if upstream.get("strip_path"):
        assert headers[b"x-forwarded-prefix"] == [b"/svc"]


def test_hop_by_hop_request_headers_are_removed(proxied, raw_upstream):
    _, headers, _ = _wire(proxied(raw_upstream.url), headers={
        "Connection": "keep-alive, X-Named", "X-Named": "hop", "Keep-Alive": "timeout=5",
        "TE": "trailers", "Trailer": "X-Sum", "Upgrade": "h2c", "Proxy-Authorization": "Basic x",
        "Proxy": "http://evil:8080", "X-Kept": "end-to-end"})
    for name in (b"x-named", b"keep-alive", b"te", b"trailer", b"upgrade",
                 b"proxy-authorization", b"proxy"):
        assert name not in headers, name
    assert headers[b"x-kept"] == [b"end-to-end"]
    assert headers.get(b"connection", [b"keep-alive"]) == [b"keep-alive"]  # urllib3's own


def test_hop_by_hop_response_headers_removed_repeats_kept(proxied, raw_upstream):
    response = proxied(raw_upstream.url).get("/svc/hop")
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["X-Kept"] == "yes"
    for name in ("X-Hop-Named", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
        assert name not in response.headers, name


def test_repeated_set_cookie_from_gunicorn(proxied, upstream):
    response = proxied(upstream.url).get("/svc/cookies")
    assert response.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


@pytest.mark.parametrize(("options", "host"), [
    pytest.param({}, "TARGET", id="rewritten to the target"),
    pytest.param({"preserve_host": True}, "api.example", id="preserve_host"),
])
def test_host(proxied, raw_upstream, options, host):
    _, headers, _ = _wire(proxied({"targets": [raw_upstream.url], **options}),
                          headers={"Host": "api.example"})
    expected = f"127.0.0.1:{raw_upstream.port}" if host == "TARGET" else host
    assert headers[b"host"] == [expected.encode()]


@pytest.mark.parametrize(("trusted", "peer", "forwarded_for", "forwarded"), [
    pytest.param([], "198.51.100.7", b"198.51.100.7",
                 b'for=198.51.100.7;proto=http;host="api.example"', id="untrusted: replaced"),
    pytest.param(["198.51.100.0/24"], "198.51.100.7", b"203.0.113.1, 198.51.100.7",
                 b'for=203.0.113.1, for=198.51.100.7;proto=http;host="api.example"',
                 id="trusted proxy: extended"),
    pytest.param([], "2001:db8::1", b"2001:db8::1",
                 b'for="[2001:db8::1]";proto=http;host="api.example"', id="IPv6 quoted"),
])
def test_forwarding_headers(proxied, raw_upstream, trusted, peer, forwarded_for, forwarded):
    extra = f"client_headers: {{trusted_proxies: {trusted}}}\n" if trusted else ""
    _, headers, _ = _wire(proxied(raw_upstream.url, extra=extra), environ={"REMOTE_ADDR": peer},
                          headers={"Host": "api.example", "X-Forwarded-For": "203.0.113.1",
                                   "Forwarded": "for=203.0.113.1", "X-Forwarded-Proto": "https"})
    assert headers[b"x-forwarded-for"] == [forwarded_for]
    assert headers[b"forwarded"] == [forwarded]
    assert headers[b"x-forwarded-host"] == [b"api.example"]
    assert headers[b"x-forwarded-proto"] == ([b"https"] if trusted else [b"http"])


def test_identity_headers_and_credentials_never_reach_a_url_upstream(proxied, raw_upstream):
    _, headers, _ = _wire(proxied(raw_upstream.url), headers={
        "Authorization": "Bearer stolen", "X-Forwarded-User": "admin", "X-Consumer-Id": "1",
        "Remote-User": "root", "X-Request-Id": "client-chosen"})
    for name in (b"authorization", b"x-forwarded-user", b"x-consumer-id", b"remote-user"):
        assert name not in headers, name
    assert headers[b"x-request-id"] != [b"client-chosen"]


@pytest.mark.parametrize("size", [pytest.param(0, id="empty"), pytest.param(5, id="small"),
                                  pytest.param(3 * 2**20 + 7, id="3 MiB")])
def test_body_with_content_length(proxied, upstream, size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    response = proxied(upstream.url).post("/svc/echo", data=data,
                                          headers={"Content-Type": "application/x-test"})
    seen = response.get_json()
    assert (seen["body_size"], seen["body_sha256"]) == (size, hashlib.sha256(data).hexdigest())
    assert seen["headers"]["Content-Type"] == "application/x-test"


def test_chunked_upload_goes_chunked(proxied, raw_upstream):
    data = b"piece" * 30000
    line, headers, body = _wire(proxied(raw_upstream.url), method="POST",
                                input_stream=io.BytesIO(data),
                                headers={"Transfer-Encoding": "chunked"})
    assert headers[b"transfer-encoding"] == [b"chunked"] and b"content-length" not in headers
    assert _dechunk(body) == data


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size, _, body = body.partition(b"\r\n")
        size = int(size, 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2:]


@pytest.mark.parametrize(("length", "chunked"), [
    pytest.param(2048, False, id="Content-Length over"),
    pytest.param(None, True, id="chunked over"),
])
def test_max_body_gives_413(proxied, raw_upstream, length, chunked):
    client = proxied({"targets": [raw_upstream.url], "max_body": "1KiB"})
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    response = client.post("/svc/x", input_stream=io.BytesIO(b"y" * 2048), headers=headers,
                           content_length=length)
    assert response.status_code == 413
    assert response.get_json()["type"].endswith("payload_too_large")


# LintMiddleware wants HEAD bodies to match Content-Length (RFC 9110 §9.3.2 says otherwise)
# and a 204 to carry Content-Length: 0 (§8.6: a server must not send one at all)
@pytest.mark.filterwarnings("ignore:Content-Length and the number of bytes")
@pytest.mark.filterwarnings("ignore:204 responses must have an empty content length")
def test_head_and_bodiless_statuses(proxied, upstream):
    client = proxied(upstream.url)
    head = client.head("/svc/large?size=5000")
    assert (head.status_code, head.headers["Content-Length"], head.get_data()) == (200, "5000", b"")
    for code in (204, 304):
        response = client.get(f"/svc/status/{code}")
        assert (response.status_code, response.get_data()) == (code, b"")


def test_content_encoding_passed_through(proxied, upstream):
    response = proxied(upstream.url).get("/svc/gzip", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.get_data() == GZIPPED and gzip.decompress(response.get_data()).startswith(b"hello")


def test_large_download_streams(proxied, upstream):
    response = proxied(upstream.url).get("/svc/large?size=5000000", buffered=False)
    total = sum(len(chunk) for chunk in response.response)
    response.close()
    assert total == 5000000


def test_trail_records_the_target_and_status(proxied, upstream):
    client = proxied(upstream.url)
    seen = {}
    app = client.application

    def capture(environ, start_response):
        result = app(environ, start_response)
        seen["ctx"] = environ["wsgi_gateway.context"]
        return result

    client.application = capture
    client.get("/svc/status/418")
    ctx = seen["ctx"]
    assert (ctx.upstream.target, ctx.upstream.status) == (upstream.url, 418)
    assert ctx.trail[-1].layer == "upstream" and ctx.trail[-1].outcome == "418"


def test_websocket_upgrade_is_501(proxied, raw_upstream):
    response = proxied(raw_upstream.url).get("/svc/ws", headers={
        "Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status_code == 501
    assert response.get_json()["type"].endswith("upgrade_not_supported")
    assert raw_upstream.requests == []


def test_echo_json_round_trip(proxied, upstream):
    response = proxied(upstream.url).get("/svc/echo?x=1")
    assert json.loads(response.get_data())["query"] == "x=1"
