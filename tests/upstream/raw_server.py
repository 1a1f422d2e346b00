"""A raw-socket HTTP upstream for what a well-behaved server will not do.

It answers by the last path segment: ``/bad-status`` (a broken status line), ``/close-mid-body`` (a
Content-Length it does not honour), ``/reset`` (closes without an answer),
``/hop`` (hop-by-hop response headers and two Set-Cookie), ``/bad-header`` (a control
byte in a header value); anything else answers 200 with the request bytes exactly as
received, so tests see the wire view of what the proxy sent.
"""

from __future__ import annotations

import socket
import struct
import threading


class RawUpstream:
    """Listens on a free loopback port in a thread; ``requests`` holds every raw request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RawUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                raw = _read_request(conn)
            except (OSError, ValueError):
                return
            self.requests.append(raw)
            path = raw.split(b" ", 2)[1].decode("latin-1")
            answer = ANSWERS.get("/" + path.split("?")[0].rsplit("/", 1)[-1])
            if answer is None:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(raw), raw))
            elif answer == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.sendall(answer)


ANSWERS = {
    "/bad-status": b"HTTP/1.1 OK maybe\r\nContent-Length: 2\r\n\r\nok",
    "/garbage": b"\x00\x01 not http at all\r\n\r\n",
    "/close-mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000,
    "/reset": "reset",
    "/hop": (b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop-Named\r\nX-Hop-Named: secret\r\n"
             b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTrailer: X-Sum\r\n"
             b"Upgrade: h2c\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Kept: yes\r\n"
             b"Content-Length: 2\r\n\r\nok"),
    "/bad-header": b"HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok",
}


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            raise ValueError("closed before the head")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        while not body.endswith(b"0\r\n\r\n"):
            piece = conn.recv(65536)
            if not piece:
                break
            body += piece
    elif b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            piece = conn.recv(65536)
            if not piece:
                break
            body += piece
    return head + b"\r\n\r\n" + body
