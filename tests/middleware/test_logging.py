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
        assert first["status"] == 200 and first["identity"] == "anonymous"
        assert first["method"] == "GET" and first["decision"] == "allow"
        assert isinstance(first["ms"], float) and len(first["request_id"]) == 32
        assert second["status"] == 404 and second["api"] == "-"
    else:
        assert "api=orders" in lines[0] and "path=/orders/7" in lines[0] and "status=200" in lines[0]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_direct_line_is_the_line_logging_writes(make_client, log_stream, fmt):
    """The request line skips the LogRecord while the gateway's handler is its only
    destination; through logging (a filter added: an operator's own set-up) the same
    request gives the same line, time aside."""
    configure_logging(LoggingConfig(format=fmt), stream=log_stream)
    client = make_client("apis: [{name: orders, path: /orders}]\n")
    headers = {"User-Agent": "t"}
    client.get('/orders/a b"c', headers=headers)
    [handler] = [h for h in logging.getLogger("wsgi_gateway").handlers if getattr(h, "_wsgi_gateway", 0)]
    seen = []
    handler.addFilter(lambda record: seen.append(record) or True)
    client.get('/orders/a b"c', headers=headers)
    handler.filters.clear()
    direct, through_logging = log_stream.getvalue().splitlines()
    assert len(seen) == 1  # the second line, and only it, went through logging

    def timeless(line):
        if fmt == "json":
            fields = json.loads(line)
            for fresh in ("time", "ms", "request_id", "trace_id"):
                fields.pop(fresh)
            return fields
        when, rest = line.split(" ", 1)
        assert when.endswith("Z") and len(when) == 24
        return [f for f in rest.split(" ") if f.split("=")[0] not in ("ms", "request_id", "trace_id")]
    assert timeless(direct) == timeless(through_logging)
    assert (json.loads(direct)["path"] if fmt == "json" else 'path="/orders/a b\\"c"' in direct)


def test_access_log_can_be_turned_off(make_client, log_stream):
    configure_logging(LoggingConfig(access_log=False), stream=log_stream)
    make_client("logging: {access_log: false}\napis: [{name: a, path: /a}]\n").get("/a")
    assert log_stream.getvalue() == ""


def test_odd_paths_are_quoted_in_text_logs(make_client, log_stream):
    configure_logging(LoggingConfig(), stream=log_stream)
    make_client("apis: [{name: a, path: /a}]\n").get("/a/with space/\x1b[31m")
    line = log_stream.getvalue()
    assert "\x1b" not in line and 'path="/a/with space/' in line


# --- the request line is written when the body has been sent ------------------------------

from werkzeug.test import EnvironBuilder  # noqa: E402

from wsgi_gateway.logs import JsonFormatter, current_request_id  # noqa: E402
from wsgi_gateway.middleware import RequestContextMiddleware  # noqa: E402
from wsgi_gateway.middleware.body import ResponseAborted  # noqa: E402


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def streaming_app(clock, chunks=5, pause=0.5, fail_after=None):
    """Yields ``chunks`` chunks, the clock moving ``pause`` seconds before each."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            for i in range(chunks):
                clock.now += pause
                if fail_after is not None and i == fail_after:
                    raise RuntimeError("the upstream broke")
                yield b"x" * 100
        return body()
    return app


def serve(app, **kw):
    """Drive the layer as a server does: call, iterate, close. Returns (status, body)."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status
        return lambda data: None

    result = app(EnvironBuilder("/s").get_environ(), start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return seen.get("status"), body


def access_lines(caplog) -> list:
    return [r for r in caplog.records if r.name == "wsgi_gateway.access"]


def test_a_streamed_body_logs_its_real_duration_and_bytes(caplog):
    clock = FakeClock()
    layer = RequestContextMiddleware(streaming_app(clock), clock=clock)
    with caplog.at_level(logging.INFO, logger="wsgi_gateway"):
        status, body = serve(layer)
    [line] = access_lines(caplog)
    assert status == "200 OK" and line.gw["ms"] == 2500.0 and line.gw["bytes"] == 500


def test_the_line_waits_for_the_server_to_close_the_body(caplog):
    clock = FakeClock()
    layer = RequestContextMiddleware(streaming_app(clock), clock=clock)
    with caplog.at_level(logging.INFO, logger="wsgi_gateway"):
        result = layer(EnvironBuilder("/s").get_environ(), lambda s, h, e=None: None)
        assert access_lines(caplog) == []  # the app returned; nothing was sent yet
        list(result)
        assert access_lines(caplog) == []
        result.close()
    assert len(access_lines(caplog)) == 1


def test_a_failure_mid_stream_cuts_the_connection_and_is_logged_once(caplog):
    clock = FakeClock()
    layer = RequestContextMiddleware(streaming_app(clock, fail_after=2), clock=clock)
    with caplog.at_level(logging.INFO, logger="wsgi_gateway"), pytest.raises(ResponseAborted):
        serve(layer)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and len(caplog.records) == 1
    fields = errors[0].gw
    assert fields["status"] == 200 and fields["error"] == "aborted" and fields["bytes"] == 200
    assert fields["request_id"] and fields["ms"] == 1500.0


@pytest.mark.parametrize("raised, status", [
    pytest.param(RuntimeError("boom"), "500 Internal Server Error", id="unexpected error"),
    pytest.param(__import__("wsgi_gateway.errors", fromlist=["x"]).BodyReadError("NoMoreData"),
                 "400 Bad Request", id="body read error"),
])
def test_a_failure_before_the_first_byte_is_a_clean_problem(caplog, raised, status):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Partial", "1")])

        def body():
            raise raised
            yield b""  # pragma: no cover
        return body()

    with caplog.at_level(logging.INFO, logger="wsgi_gateway"):
        got, body = serve(RequestContextMiddleware(app))
    assert got == status and json.loads(body)["status"] == int(status[:3])
    [line] = access_lines(caplog)
    assert line.gw["status"] == int(status[:3])


def test_json_lines_have_utc_rfc3339_time_and_the_current_request_id():
    record = logging.LogRecord("someapp", logging.INFO, "", 0, "hello", (), None)
    record.created, record.msecs = 1796402100.1234, 123.4  # 2026-12-04T16:35:00.123Z
    token = current_request_id.set("req-1")
    try:
        out = json.loads(JsonFormatter().format(record))
    finally:
        current_request_id.reset(token)
    assert out["time"] == "2026-12-04T16:35:00.123Z" and out["request_id"] == "req-1"


def test_json_tracebacks_are_a_field_of_the_one_line():
    try:
        raise ValueError("bad")
    except ValueError:
        import sys
        record = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: bad" in json.loads(line)["exception"]


def test_a_body_read_error_after_the_first_byte_is_a_quiet_close_at_info(caplog):
    from wsgi_gateway.errors import BodyReadError

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"started"
            raise BodyReadError("NoMoreData")  # what GuardedInput raises for a vanished client
        return body()

    with caplog.at_level(logging.INFO, logger="wsgi_gateway"), pytest.raises(ResponseAborted):
        serve(RequestContextMiddleware(app))
    [line] = caplog.records
    assert line.levelno == logging.INFO and not line.exc_info
    assert line.gw["error"] == "aborted:bad_request_body:NoMoreData" and line.gw["status"] == 200


def test_a_file_wrapper_keeps_sendfile_and_still_logs_on_close(caplog):
    from wsgiref.util import FileWrapper

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file body"))

    environ = EnvironBuilder("/f").get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    with caplog.at_level(logging.INFO, logger="wsgi_gateway"):
        result = RequestContextMiddleware(app)(environ, lambda s, h, e=None: None)
        assert isinstance(result, FileWrapper)  # the server can still use sendfile
        assert b"".join(result) == b"file body" and access_lines(caplog) == []
        result.close()
    [line] = access_lines(caplog)
    assert line.gw["status"] == 200 and line.gw["bytes"] == -1
