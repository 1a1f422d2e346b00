"""The plain functions that shape a forwarded request and its answer."""

from __future__ import annotations

import pytest

from wsgi_gateway.upstream.forward import (
    raw_path, request_headers, response_headers, upstream_path,
)
from wsgi_gateway.upstream.targets import Target


@pytest.mark.parametrize(("environ", "expected"), [
    pytest.param({"PATH_INFO": "/a/b c", "RAW_URI": "/a/b%20c?x"}, "/a/b%20c", id="gunicorn RAW_URI"),
    pytest.param({"PATH_INFO": "/a/b/c", "REQUEST_URI": "/a/b%2Fc"}, "/a/b%2Fc", id="REQUEST_URI"),
    pytest.param({"PATH_INFO": "/a/b", "RAW_URI": "http://h/a/b?q"}, "/a/b", id="absolute form"),
    pytest.param({"PATH_INFO": "/other", "RAW_URI": "/a/b"}, "/other", id="disagrees: PATH_INFO wins"),
    pytest.param({"PATH_INFO": "/caf\xc3\xa9 x"}, "/caf%C3%A9%20x", id="no raw URI: quoted"),
])
def test_raw_path(environ, expected):
    assert raw_path(environ) == expected


@pytest.mark.parametrize(("raw", "prefix", "url", "strip", "expected"), [
    pytest.param("/api/x", "/api", "http://t", False, "/api/x", id="kept"),
    pytest.param("/api/x", "/api", "http://t", True, "/x", id="stripped"),
    pytest.param("/api", "/api", "http://t/base", True, "/base/", id="prefix only, base"),
    pytest.param("/a%70i/x%2Fy", "/api", "http://t", True, "/x%2Fy", id="encoded prefix"),
    pytest.param("/v1/orders/7", "/v1/orders", "http://t/b", True, "/b/7", id="nested prefix"),
])
def test_upstream_path(raw, prefix, url, strip, expected):
    assert upstream_path(raw, prefix, Target(url), strip=strip) == expected


def test_request_headers_drop_hop_by_hop_and_set_forwarding():
    environ = {"HTTP_CONNECTION": "close, x-private", "HTTP_X_PRIVATE": "1", "HTTP_TE": "trailers",
               "HTTP_X_KEEP": "yes", "HTTP_HOST": "api.example", "HTTP_EXPECT": "100-continue",
               "CONTENT_TYPE": "text/plain", "REMOTE_ADDR": "192.0.2.1", "wsgi.url_scheme": "https"}
    headers = request_headers(environ, Target("http://10.0.0.1:8080"), preserve_host=False,
                              strip_prefix="/api")
    assert headers == {"X-Keep": "yes", "Content-Type": "text/plain", "Host": "10.0.0.1:8080",
                       "X-Forwarded-For": "192.0.2.1", "X-Forwarded-Proto": "https",
                       "X-Forwarded-Host": "api.example", "X-Forwarded-Prefix": "/api",
                       "Forwarded": 'for=192.0.2.1;proto=https;host="api.example"'}


def test_response_headers_keep_repeats_drop_hop_by_hop():
    items = [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Set-Cookie", "a=1"),
             ("Set-Cookie", "b=2"), ("Transfer-Encoding", "chunked"), ("Date", "x"),
             ("Server", "y"), ("Proxy-Authenticate", "z"), ("Content-Encoding", "gzip")]
    assert response_headers(items) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                       ("Content-Encoding", "gzip")]
