"""Upstream WSGI apps for end-to-end tests, importable by gunicorn."""

from __future__ import annotations

from contrib.demo.echo import app as echo


def faulty(environ, start_response):
    """/crash-late: fails after start_response; /oserror: raises OSError; else echo."""
    path = environ.get("PATH_INFO", "")
    if path.endswith("/crash-late"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("failed after start_response")
    if path.endswith("/oserror"):
        raise ConnectionResetError(104, "Connection reset by peer")
    return echo(environ, start_response)
