"""The request log: one line per request, the fields operators need, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from wsgi_gateway.config.model import LoggingConfig
from wsgi_gateway.logs import configure_logging

SECRETS = {"Authorization": "Bearer eyJsecret.token.value", "Cookie": "session=cookie-secret",
           "X-Api-Key": "key-secret"}


@pytest.fixture
def log_stream():
    """A stream for configure_logging; the logger is put back as it was afterwards
    (configure_logging sets propagate = False, which would hide later tests' records
    from caplog)."""
    logger = logging.getLogger("wsgi_gateway")
    saved = list(logger.handlers), logger.level, logger.propagate
    stream = io.StringIO()
    yield stream
    logger.handlers[:], logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_line_per_request_without_secrets(make_client, log_stream, fmt):
    configure_logging(LoggingConfig(format=fmt), stream=log_stream)
    client = make_client("apis: [{name: orders, path: /orders}]\n")
    client.get("/orders/7?access_token=query-secret", headers=SECRETS)
    client.get("/missing")
    lines = log_stream.getvalue().strip().splitlines()
    assert len(lines) == 2
    text = log_stream.getvalue()
    for secret in ("eyJsecret", "cookie-secret", "key-secret", "query-secret"):
        assert secret not in text
    if fmt == "json":
        first, second = map(json.loads, lines)
        assert first["api"] == "orders" and first["path"] == "/orders/7"
        assert first["status"] == "200" and first["identity"] == "anonymous"
        assert first["method"] == "GET" and first["decision"] == "allow"
        assert isinstance(first["ms"], float) and len(first["request_id"]) == 32
        assert second["status"] == "404" and second["api"] == "-"
    else:
        assert "api=orders" in lines[0] and "path=/orders/7" in lines[0] and "status=200" in lines[0]


def test_access_log_can_be_turned_off(make_client, log_stream):
    configure_logging(LoggingConfig(access_log=False), stream=log_stream)
    make_client("logging: {access_log: false}\napis: [{name: a, path: /a}]\n").get("/a")
    assert log_stream.getvalue() == ""


def test_odd_paths_are_quoted_in_text_logs(make_client, log_stream):
    configure_logging(LoggingConfig(), stream=log_stream)
    make_client("apis: [{name: a, path: /a}]\n").get("/a/with space/\x1b[31m")
    line = log_stream.getvalue()
    assert "\x1b" not in line and 'path="/a/with space/' in line
