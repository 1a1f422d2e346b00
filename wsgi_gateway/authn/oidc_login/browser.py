"""What kind of request this is, and where a browser may be sent: plain functions.

- :func:`is_navigation`: a person's top-level page load may be redirected to sign in;
  anything else (fetch/XHR, an API client, a form POST) gets 401, because a script
  cannot follow a login redirect (it would receive the provider's HTML as data).
- :func:`safe_return_to`: a return-to target is a path on this gateway, or an
  absolute URL on an allowed origin; everything else becomes ``/``. Browsers read
  ``//host``, ``/\\host``, ``https:host`` and their percent-encoded or
  whitespace-padded forms as other hosts, so each is refused, decoded or not.
- :func:`same_origin`: an unsafe method authenticated by the session cookie must
  come from our own origin (``Origin``, else ``Referer``), or an allowed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from .options import origin_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RETURN_TO = 2048
_PATH = re.compile(r"/(?![/\\])[\x21-\x7e]*\Z")  # printable ASCII, no // or /\ at the start


def is_navigation(request, script_header: str | None = None) -> bool:
    """True for a browser's top-level GET/HEAD of a page."""
    headers = request.headers
    if request.method not in ("GET", "HEAD"):
        return False
    if script_header and script_header in headers:
        return False
    if "X-Requested-With" in headers:
        return False
    mode = headers.get("Sec-Fetch-Mode")
    if mode is not None and mode != "navigate":
        return False
    dest = headers.get("Sec-Fetch-Dest")
    if dest is not None and dest != "document":  # an iframe cannot show the provider's page
        return False
    return "text/html" in headers.get("Accept", "")


def is_prefetch(request) -> bool:
    """True for a speculative load (link prefetch, speculation rules, prerender): the
    person has not followed the link yet."""
    headers = request.headers
    return (headers.get("Sec-Purpose", "").startswith("prefetch")
            or "prefetch" in (headers.get("Purpose", ""), headers.get("X-Moz", "")))


def safe_return_to(target: str | None, origin: str, allowed: Iterable[str] = ()) -> str:
    """``target`` when it stays on this gateway (an absolute one rebuilt from its checked
    origin and path), or an allowed origin; else ``/``."""
    if not target or len(target) > MAX_RETURN_TO:
        return "/"
    if _is_local_path(target):
        return target
    # Browsers (WHATWG URL) read a backslash as "/" in http(s) URLs; urlsplit does not:
    # in https://evil.example\@gw.test Python finds host gw.test, a browser evil.example.
    # So no backslash and no userinfo, and the URL is rebuilt from the parts checked.
    if "\\" in target or "@" in _netloc(target):
        return "/"
    found = origin_of(target)
    if found in (origin, *allowed) and _is_local_path(_path_of(target)) \
            and target == target.strip() and not _has_controls(target):
        return found + _path_of(target)
    return "/"


def _is_local_path(target: str) -> bool:
    if not _PATH.match(target) or "\\" in target:
        return False
    decoded = target
    for _ in range(3):  # a proxy may decode once or twice; stay a path under each reading
        decoded = unquote(decoded)
        if decoded.startswith(("//", "/\\")) or "\\" in decoded or _has_controls(decoded):
            return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        return ""


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _has_controls(text: str) -> bool:
    return any(ord(c) < 0x21 or ord(c) == 0x7f for c in text)


def same_origin(request, origin: str, allowed: Iterable[str] = ()) -> bool:
    """Whether the request came from ``origin`` (or an allowed one), by Origin or Referer.

    A request with neither header is refused: every browser in use sends ``Origin``
    on cross-origin unsafe requests and Chrome/Firefox send it on same-origin ones too.
    """
    sent = request.headers.get("Origin")
    if sent == "null":  # sandboxed or privacy-stripped: cannot be ours
        return False
    if sent is None:
        referer = request.headers.get("Referer")
        sent = origin_of(referer) if referer else None
    if not sent:
        return False
    return sent.rstrip("/").lower() in (origin, *allowed)
