"""GuardedInput: every way reading the request body fails becomes one 400 error.

The real faults (gunicorn's chunked parser, a client that goes away) are produced with
raw sockets in tests/e2e/test_edge_serve.py; here the stream classes stand in for a
server's stream only where a fault cannot be produced in process.
"""

from __future__ import annotations

import io

import pytest

from wsgi_gateway.errors import BodyReadError
from wsgi_gateway.middleware.body import GuardedInput, guard_input


class Broken(io.RawIOBase):
    """A server stream whose reads raise ``exc`` (a vanished client, a parse error)."""

    def __init__(self, exc: Exception):
        self.exc = exc

    def read(self, size=-1):
        raise self.exc

    readline = read


class InvalidChunkSize(Exception):
    """Named like gunicorn's; NOT one of its classes, so it must pass through."""


@pytest.mark.parametrize("exc, cause", [
    pytest.param(ConnectionResetError(104, "reset"), "ConnectionResetError", id="client reset"),
    pytest.param(TimeoutError("timed out"), "TimeoutError", id="socket timeout"),
    pytest.param(__import__("gunicorn.http.errors", fromlist=["x"]).InvalidChunkSize(b"zz"),
                 "InvalidChunkSize", id="gunicorn parse error"),
    pytest.param(__import__("gunicorn.http.errors", fromlist=["x"]).NoMoreData(b""),
                 "NoMoreData", id="gunicorn NoMoreData"),
])
def test_client_faults_become_body_read_errors(exc, cause):
    guard = GuardedInput(Broken(exc), None)
    with pytest.raises(BodyReadError) as err:
        guard.read(10)
    assert err.value.cause == cause and err.value.status == 400 and guard.error is err.value
    with pytest.raises(BodyReadError):  # the position is unknown: every later read fails
        guard.readline()


@pytest.mark.parametrize("exc", [
    pytest.param(ValueError("Size must be positive."), id="app passes a bad size"),
    pytest.param(InvalidChunkSize("look-alike"), id="a class named like gunicorn's"),
])
def test_other_errors_are_not_the_clients(exc):
    with pytest.raises(type(exc)):
        GuardedInput(Broken(exc), None).read(1)


@pytest.mark.parametrize("read", [
    pytest.param(lambda g: g.read(), id="read all"),
    pytest.param(lambda g: [g.read(2) for _ in range(5)], id="read in pieces"),
    pytest.param(lambda g: g.readlines(), id="readlines"),
    pytest.param(lambda g: list(g), id="iterate"),
])
def test_a_body_shorter_than_its_content_length_is_an_error(read):
    guard = GuardedInput(io.BytesIO(b"abc\n"), 10)
    with pytest.raises(BodyReadError) as err:
        read(guard)
    assert err.value.cause == "short body"


def test_a_complete_body_reads_as_sent():
    guard = GuardedInput(io.BytesIO(b"line1\nline2"), 11)
    assert guard.readline() == b"line1\n" and guard.read() == b"line2" and guard.read(5) == b""


def test_chunked_bodies_have_no_announced_length():
    environ = {"wsgi.input": io.BytesIO(b"ab"), "CONTENT_LENGTH": "10",
               "HTTP_TRANSFER_ENCODING": "chunked"}
    assert guard_input(environ).read() == b"ab"


def test_the_upstream_gets_a_400_problem_in_process(make_client):
    def reads_body(environ, start_response):
        while environ["wsgi.input"].read(64):
            pass
        start_response("200 OK", [])
        return [b""]

    client = make_client("apis: [{name: a, path: /a}]\n", app=reads_body)
    response = client.post("/a", input_stream=io.BytesIO(b"abc"),
                           environ_overrides={"CONTENT_LENGTH": "10"})
    assert response.status_code == 400
    assert response.json["type"] == "urn:wsgi-gateway:problem:bad_request_body"


def test_an_authenticator_hashing_the_body_gets_the_same_error():
    from werkzeug.wrappers import Request

    from wsgi_gateway.authn.signature_keys import read_body

    gunicorn_errors = __import__("gunicorn.http.errors", fromlist=["x"])
    environ = {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked",
               "wsgi.input_terminated": True,
               "wsgi.input": Broken(gunicorn_errors.InvalidChunkSize(b"zz"))}
    guard_input(environ)
    with pytest.raises(BodyReadError) as err:
        read_body(Request(environ), 1024)
    assert err.value.cause == "InvalidChunkSize"
