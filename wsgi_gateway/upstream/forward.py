"""What goes to a URL upstream and what comes back: plain functions over the environ.

By the time the proxy runs, the Mutate layer has applied the gateway-wide strip list
(identity, injected and, from untrusted peers, proxy headers) and injected the
identity headers: the same code path as for the wrapped app. What is left here is
HTTP plumbing: the raw path, hop-by-hop headers (RFC 9110 §7.6.1), ``Host`` and the
forwarding headers (``X-Forwarded-*``, RFC 7239 ``Forwarded``). An incoming forwarding
header is present only when the peer is a trusted proxy, so it is extended; otherwise
it was removed and is written afresh.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes, urlsplit

from .targets import Target

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade"})
# the front server (gunicorn) writes its own Date and Server, as nginx does by default
RESPONSE_DROP = HOP_BY_HOP | {"date", "server"}
# Expect: gunicorn answers 100-continue itself while the body is read
REQUEST_DROP = HOP_BY_HOP | {"expect", "host", "content-length", "proxy"}  # proxy: httpoxy
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def raw_path(environ: dict) -> str:
    """The path as the client sent it, percent-encoding untouched.

    gunicorn gives ``RAW_URI``, other servers ``REQUEST_URI``. It is used only when it
    decodes to the ``PATH_INFO`` the router matched (so a proxy cannot route on one
    path and forward another); otherwise ``PATH_INFO`` is quoted again.
    """
    path = environ.get("SCRIPT_NAME", "") + (environ.get("PATH_INFO", "") or "/")
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if not raw.startswith("/"):  # absolute-form: http://host/path?query
            raw = urlsplit(raw).path or "/"
        raw = raw.split("?", 1)[0]
        if unquote_to_bytes(raw).decode("latin-1") == path:
            return raw
    return quote(path.encode("latin-1"), safe=_PATH_SAFE)


def upstream_path(raw: str, prefix: str, target: Target, *, strip: bool) -> str:
    """The path to request on ``target``: the base path, then the raw path with the
    API ``prefix`` removed when ``strip`` is set (at the segment boundary the router
    matched on, even when the client percent-encoded the prefix)."""
    if strip and prefix.rstrip("/"):
        raw = _strip_prefix(raw, prefix.rstrip("/"))
    return target.base_path + raw


def _strip_prefix(raw: str, prefix: str) -> str:
    if raw.startswith(prefix) and (len(raw) == len(prefix) or raw[len(prefix)] == "/"):
        return raw[len(prefix):] or "/"
    segments, taken = raw.split("/"), ""
    for i, segment in enumerate(segments[1:], 1):  # the client encoded part of the prefix
        taken += "/" + unquote_to_bytes(segment).decode("latin-1")
        if taken == prefix:
            return "/" + "/".join(segments[i + 1:])
    return "/" + quote(unquote_to_bytes(raw).decode("latin-1")[len(prefix):].lstrip("/")
                       .encode("latin-1"), safe=_PATH_SAFE)


def request_headers(environ: dict, target: Target, *, preserve_host: bool,
                    strip_prefix: str | None) -> dict[str, str]:
    """The headers sent upstream: the client's (after the gateway's strip and
    injection), less hop-by-hop ones, with Host and the forwarding headers set."""
    named = _connection_names(environ.get("HTTP_CONNECTION", ""))
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            lowered = name.lower()
            if lowered in REQUEST_DROP or lowered in named or lowered.startswith("proxy-"):
                continue
            headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    client_host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    headers["Host"] = client_host if preserve_host and client_host else target.host_header
    _forwarding(headers, environ, client_host, strip_prefix)
    return headers


def _forwarding(headers: dict, environ: dict, client_host: str, strip_prefix: str | None) -> None:
    addr = environ.get("REMOTE_ADDR", "")
    scheme = environ.get("wsgi.url_scheme", "http")
    prior = headers.get("X-Forwarded-For")
    if addr:
        headers["X-Forwarded-For"] = f"{prior}, {addr}" if prior else addr
    headers.setdefault("X-Forwarded-Proto", scheme)
    if client_host:
        headers.setdefault("X-Forwarded-Host", client_host)
    if strip_prefix:
        headers["X-Forwarded-Prefix"] = headers.get("X-Forwarded-Prefix", "").rstrip("/") \
            + strip_prefix.rstrip("/")
    node = f'"[{addr}]"' if ":" in addr else addr or "unknown"
    element = f"for={node};proto={scheme}" + (f';host="{_quoted(client_host)}"'
                                              if client_host else "")
    prior = headers.get("Forwarded")
    headers["Forwarded"] = f"{prior}, {element}" if prior else element


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _connection_names(value: str) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in value.split(",") if n.strip())


def response_headers(items) -> list[tuple[str, str]]:
    """The upstream's response headers for the client: every repeat kept (two
    ``Set-Cookie`` stay two), hop-by-hop ones and those ``Connection`` names dropped."""
    items = list(items)
    named = set()
    for name, value in items:
        if name.lower() == "connection":
            named |= _connection_names(value)
    return [(name, value) for name, value in items
            if name.lower() not in RESPONSE_DROP and name.lower() not in named
            and not name.lower().startswith("proxy-")]
