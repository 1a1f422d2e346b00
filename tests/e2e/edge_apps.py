"""Upstream apps for the edge end-to-end tests (bodies, streams), importable by gunicorn."""

from __future__ import annotations

import json

from contrib.demo.echo import app as echo


def streams(environ, start_response):
    """/fail-mid-stream: sends a chunk, then fails; /read-late: reads the body while
    streaming; anything else: the echo app."""
    path = environ.get("PATH_INFO", "")
    if path.endswith("/fail-mid-stream"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _fail_after_first_chunk()
    if path.endswith("/read-late"):
        start_response("200 OK", [("Content-Type", "application/json")])
        return _read_late(environ)
    return echo(environ, start_response)


def _fail_after_first_chunk():
    yield b"first chunk\n"
    raise RuntimeError("the upstream broke mid-stream")


def _read_late(environ):
    body = environ["wsgi.input"].read()  # raises on bad framing, before any byte is sent
    yield json.dumps({"body_bytes": len(body)}).encode()
