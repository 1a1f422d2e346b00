"""The edge under real gunicorn: identity headers, bad request framing, shippable logs."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.e2e

CONFIG = """
app: tests.e2e.edge_apps:streams
routing: {unmatched: pass}
logging: {format: %(format)s}
apis:
  - {name: a, path: /a, rules: a.rules.yaml}
  - {name: open, path: /open}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One gateway (JSON logs) for the module: the tests only read the log they caused."""
    folder = tmp_path_factory.mktemp("edge")
    (folder / "a.rules.yaml").write_text("headers:\n  X-User-Id: \"'from-gateway'\"\n")
    path = folder / "gateway.yaml"
    path.write_text(CONFIG % {"format": "json"})
    process = GatewayProcess(path, workers=2)
    process.start()
    yield process
    process.stop()


def raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection, half-close it, and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match[1]) if match else None


def log_lines_for(process: GatewayProcess, request_id: str, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in process.log().splitlines()
                 if line.startswith("{") and request_id in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def unexpected_errors(process: GatewayProcess) -> list[str]:
    """Lines with a traceback or at ERROR, except the deliberate mid-stream failure's
    (tests share one gateway and may run in any order)."""
    return [line for line in process.log().splitlines()
            if ("Traceback" in line or '"level": "ERROR"' in line)
            and '"path": "/open/fail-mid-stream"' not in line]


def chunked(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n".encode()
            + extra + b"\r\n" + body)


# --- identity headers ------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    pytest.param("/open/x", id="keyless API"), pytest.param("/elsewhere", id="unmatched pass"),
    pytest.param("/a", id="the injecting API"),
])
def test_identity_headers_never_reach_the_app_under_gunicorn(served, path):
    sent = {"X-User-Id": "admin", "x-remote-user": "root", "X-Forwarded-Email": "a@b",
            "X-Consumer-Id": "c", "X-Forwarded-For": "6.6.6.6", "X-Request-Id": "mine"}
    response = requests.get(served.url + path, headers=sent, timeout=5)
    headers = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert headers.get("x-user-id") in (None, "from-gateway")
    for name in ("x-remote-user", "x-forwarded-email", "x-consumer-id", "x-forwarded-for"):
        assert name not in headers
    assert headers["x-request-id"] != "mine" and response.headers["X-Request-Id"] != "mine"


# --- bad framing -----------------------------------------------------------------------

FRAMING = [
    pytest.param(chunked("/open", b"zz\r\nabc\r\n0\r\n\r\n"), "InvalidChunkSize", id="bad chunk size"),
    pytest.param(chunked("/open", b"5\r\nhelloXX0\r\n\r\n"), "ChunkMissingTerminator",
                 id="missing chunk terminator"),
    pytest.param(chunked("/open", b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), "InvalidChunkExtension",
                 id="bad chunk extension"),
    pytest.param(chunked("/open", b"a\r\nhel"), "NoMoreData", id="client gone mid-chunk"),
    pytest.param(b"POST /open HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nabc",
                 "short body", id="shorter than Content-Length"),
    pytest.param(chunked("/elsewhere", b"zz\r\n"), "InvalidChunkSize", id="unmatched pass"),
    pytest.param(chunked("/open/read-late", b"zz\r\n"), "InvalidChunkSize",
                 id="read while streaming"),
]


@pytest.mark.parametrize("request_bytes, cause", FRAMING)
def test_a_body_that_cannot_be_read_is_a_400_logged_at_info(served, request_bytes, cause):
    answer = raw(served.port, request_bytes)
    assert status_of(answer) == 400, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head
    problem = json.loads(body)
    assert problem["type"] == "urn:wsgi-gateway:problem:bad_request_body"
    lines = log_lines_for(served, problem["request_id"])
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "INFO" and lines[0]["status"] == 400
    assert lines[0]["error"] == f"bad_request_body:{cause}" and "exception" not in lines[0]
    assert unexpected_errors(served) == []


chunk_sizes = st.one_of(st.integers(0, 40).map(lambda n: f"{n:x}".encode()),
                        st.binary(max_size=6), st.sampled_from([b"-1", b"0x5", b" 5", b"5 ", b"ffffffffffffffffff"]))
extensions = st.one_of(st.just(b""), st.binary(max_size=8).map(lambda b: b";" + b),
                       st.sampled_from([b";a=b", b';a="b"', b";a=\"", b"; a", b";\r"]))
terminators = st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"xx", b"\r\r\n"])
chunks = st.tuples(chunk_sizes, extensions, terminators, st.binary(max_size=40), terminators)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.lists(chunks, max_size=4), last=st.sampled_from(
    [b"0\r\n\r\n", b"0\r\n", b"", b"0\r\nX-Trailer: 1\r\n\r\n", b"0\r\nbad trailer\r\n\r\n", b"0;x\r\n\r\n"]))
def test_generated_framing_mutations_never_get_a_5xx(served, body, last):
    data = b"".join(size + ext + term1 + payload + term2
                    for size, ext, term1, payload, term2 in body) + last
    answer = raw(served.port, chunked("/open", data))
    status = status_of(answer)
    assert status is None or status < 500, answer[:300]
    assert unexpected_errors(served) == []  # no traceback, no ERROR line (an earlier example's)


# --- logs ------------------------------------------------------------------------------

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def test_every_line_is_one_json_object_gunicorn_included(served):
    requests.get(served.url + "/open", timeout=5)
    raw(served.port, b"GET / HTTP/1.1\r\nHost: gw\r\nBad Header\r\n\r\n")  # gunicorn answers itself
    lines = served.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert all(RFC3339_UTC.match(r["time"]) for r in records)
    loggers = {r["logger"] for r in records}
    assert "gunicorn.error" in loggers and "wsgi_gateway.access" in loggers
    access = [r for r in records if r["logger"] == "wsgi_gateway.access"]
    assert all(isinstance(r["status"], int) and isinstance(r["bytes"], int) for r in access)


def test_start_up_warnings_are_json_too(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("app: contrib.demo.echo:app\nlogging: {format: json}\n"
                    "policies: {gold: {rate: 3/s}}\n"
                    "apis: [{name: a, path: /a, default_policy: gold}]\n")
    process = GatewayProcess(path, workers=2)
    process.start()
    process.stop()
    records = [json.loads(line) for line in process.log().splitlines()]
    warnings = [r for r in records if r["level"] == "WARNING" and r["logger"] == "wsgi_gateway"]
    assert any("rate limits and quotas" in r["message"] for r in warnings), records


def test_a_failure_mid_stream_is_logged_once_with_the_request_id(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /open/fail-mid-stream HTTP/1.1\r\nHost: gw\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 200 and b"first chunk" in answer
    assert not answer.endswith(b"0\r\n\r\n")  # cut, never a complete-looking chunked body
    request_id = re.search(rb"X-Request-Id: (\w+)", answer)[1].decode()
    lines = log_lines_for(served, request_id)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "ERROR" and line["error"] == "aborted" and line["status"] == 200
    assert "the upstream broke mid-stream" in line["exception"]
    assert line["bytes"] == len(b"first chunk\n")
    time.sleep(0.2)  # let gunicorn write anything it would add
    assert served.log().count("RuntimeError: the upstream broke mid-stream") == 1
    assert "Error handling request" not in served.log()


def test_gunicorn_lines_are_text_in_text_mode(tmp_path):
    path = tmp_path / "gateway.yaml"
    (tmp_path / "a.rules.yaml").write_text("headers:\n  X-User-Id: \"'x'\"\n")
    path.write_text(CONFIG % {"format": "text"})
    process = GatewayProcess(path, workers=1)
    process.start()
    try:
        requests.get(process.url + "/open", timeout=5)
    finally:
        process.stop()
    assert "Booting worker" in process.log() and not process.log().lstrip().startswith("{")


def test_gunicorns_access_log_when_asked_for_is_json_with_a_numeric_status(tmp_path):
    path = tmp_path / "gateway.yaml"
    (tmp_path / "a.rules.yaml").write_text("headers:\n  X-User-Id: \"'x'\"\n")
    path.write_text(CONFIG % {"format": "json"} + "server: {accesslog: '-'}\n")
    process = GatewayProcess(path, workers=1)
    process.start()
    try:
        requests.get(process.url + "/open/seen", timeout=5)
        deadline = time.monotonic() + 5
        while '"gunicorn.access"' not in process.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.stop()
    records = [json.loads(line) for line in process.log().splitlines()]
    [line] = [r for r in records if r["logger"] == "gunicorn.access" and r.get("path") == "/open/seen"]
    assert line["status"] == 200 and isinstance(line["bytes"], int)


@pytest.mark.parametrize("fmt, server, quiet", [
    pytest.param("json", "", True, id="json: gunicorn's access line is not even built"),
    pytest.param("json", "server: {accesslog: '-'}\n", False, id="json with accesslog"),
    pytest.param("text", "", False, id="text: gunicorn's own setup"),
])
def test_gunicorn_logger_settings(tmp_path, fmt, server, quiet):
    from wsgi_gateway.config import load_config
    from wsgi_gateway.serve import GatewayApplication, QuietAccessLogger

    path = tmp_path / "gateway.yaml"
    path.write_text(f"app: contrib.demo.echo:app\nlogging: {{format: {fmt}}}\n{server}")
    settings = GatewayApplication(load_config(path)).settings()
    assert (settings.get("logger_class") is QuietAccessLogger) is quiet
    assert ("logconfig_dict" in settings) is (fmt == "json")
