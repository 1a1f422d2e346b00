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


def pid_echo(environ, start_response):
    """The echo app, answering with ``X-Worker-Pid``: which gunicorn worker served it, so
    a test can wait until every worker has seen a change instead of sleeping."""
    import os

    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return echo(environ, start)
