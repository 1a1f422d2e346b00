"""The upstream the proxy tests forward to, served by real gunicorn on a free port.

Endpoints: ``/echo`` (what arrived: method, raw URI, query, headers, body digest),
``/stream`` (slow chunks), ``/large`` (a big generated body), ``/hang`` (sleeps),
``/cookies`` (two Set-Cookie), ``/status/N``, ``/gzip`` (Content-Encoding passed
through), ``/pid`` (which process answered). Every other path echoes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

GZIPPED = gzip.compress(b"hello " * 100, mtime=0)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    name = path.rsplit("/", 2)[-2:] if "/status/" in path else None
    if path.endswith("/stream"):
        return _stream(start_response, int(query.get("n", 5)), float(query.get("delay", 0.1)))
    if path.endswith("/large"):
        return _large(start_response, int(query.get("size", 1 << 20)))
    if path.endswith("/hang"):
        time.sleep(float(query.get("seconds", 30)))
    if path.endswith("/cookies"):
        start_response("200 OK", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    if path.endswith("/gzip"):
        start_response("200 OK", [("Content-Encoding", "gzip"), ("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(GZIPPED)))])
        return [GZIPPED]
    if name:
        code = int(name[1])
        start_response(f"{code} Status", [("X-Status", str(code))]
                       + ([("Content-Length", "4")] if code not in (204, 304) else []))
        return [b"body"] if code not in (204, 304) else []
    return _echo(environ, start_response)


def _echo(environ, start_response):
    digest, size = hashlib.sha256(), 0
    stream = environ["wsgi.input"]
    while True:
        data = stream.read(65536)
        if not data:
            break
        digest.update(data)
        size += len(data)
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["Content-Length"] = environ["CONTENT_LENGTH"]
    body = json.dumps({"method": environ["REQUEST_METHOD"], "raw_uri": environ.get("RAW_URI"),
                       "path": environ.get("PATH_INFO"), "query": environ.get("QUERY_STRING"),
                       "headers": headers, "body_sha256": digest.hexdigest(), "body_size": size,
                       "pid": os.getpid(), "remote": environ.get("REMOTE_ADDR")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _stream(start_response, n: int, delay: float):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(n):
        yield f"chunk {i}\n".encode()
        time.sleep(delay)


def _large(start_response, size: int):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    block = b"x" * 65536
    while size > 0:
        yield block[:size]
        size -= len(block)
