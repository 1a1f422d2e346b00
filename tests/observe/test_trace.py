"""W3C trace context: believed only from trusted proxies, passed upstream, logged."""

from __future__ import annotations

import logging

import pytest

from wsgi_gateway.observe.trace import parse_traceparent

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize("value, parsed", [
    pytest.param(PARENT, (TRACE_ID, "00f067aa0ba902b7", "01"), id="valid"),
    pytest.param("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None, id="zero trace id"),
    pytest.param("00-" + TRACE_ID + "-" + "0" * 16 + "-01", None, id="zero parent"),
    pytest.param("ff-" + TRACE_ID + "-00f067aa0ba902b7-01", None, id="version ff"),
    pytest.param(PARENT + "-extra", None, id="version 00 with more"),
    pytest.param("01-" + TRACE_ID + "-00f067aa0ba902b7-01-future", (TRACE_ID, "00f067aa0ba902b7", "01"),
                 id="future version extends"),
    pytest.param(PARENT.upper(), None, id="upper case"),
    pytest.param("garbage", None, id="garbage"),
    pytest.param("", None, id="empty"),
])
def test_parse(value, parsed):
    assert parse_traceparent(value) == parsed


CONFIG = """
app: contrib.demo.echo:app
client_headers: {{trusted_proxies: [10.0.0.1]}}
apis: [{{name: open, path: /open, auth: [keyless]}}]
tracing: {{enabled: {enabled}}}
"""


@pytest.mark.parametrize("peer, believed", [
    pytest.param("10.0.0.1", True, id="trusted proxy"),
    pytest.param("127.0.0.1", False, id="any client"),
])
def test_believed_only_from_trusted_proxies(make_client, upstream, peer, believed):
    client = make_client(CONFIG.format(enabled="true"))
    client.get("/open/x", headers={"traceparent": PARENT, "tracestate": "vendor=abc"},
               environ_base={"REMOTE_ADDR": peer})
    sent = parse_traceparent(upstream.environ["HTTP_TRACEPARENT"])
    assert sent is not None
    assert (sent[0] == TRACE_ID) is believed
    assert sent[1] != "00f067aa0ba902b7"  # the upstream's parent is the gateway's span
    assert (upstream.environ.get("HTTP_TRACESTATE") == "vendor=abc") is believed


def test_a_malformed_header_from_a_trusted_proxy_starts_a_trace(make_client, upstream):
    client = make_client(CONFIG.format(enabled="true"))
    client.get("/open/x", headers={"traceparent": "00-zz"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert parse_traceparent(upstream.environ["HTTP_TRACEPARENT"]) is not None


def test_generated_and_logged_with_the_request_id(make_client, upstream, caplog):
    client = make_client(CONFIG.format(enabled="true"))
    with caplog.at_level(logging.INFO, logger="wsgi_gateway.access"):
        response = client.get("/open/x")
    trace_id = parse_traceparent(upstream.environ["HTTP_TRACEPARENT"])[0]
    [line] = [r.gw for r in caplog.records if r.name == "wsgi_gateway.access"]
    assert line["trace_id"] == trace_id and line["request_id"] == response.headers["X-Request-Id"]


def test_off_passes_nothing_new(make_client, upstream):
    client = make_client(CONFIG.format(enabled="false"))
    client.get("/open/x")
    assert "HTTP_TRACEPARENT" not in upstream.environ
