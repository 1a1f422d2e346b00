"""What the upstream sees: credentials stripped, spoofable headers dropped, mapped ones added.

Plain functions on the WSGI environ; the Mutate middleware calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

MAX_HEADER_VALUE = 8192


def environ_key(header: str) -> str:
    """The WSGI environ key of a request header (``X-User-Id`` → ``HTTP_X_USER_ID``).

    ``X_User_Id`` maps to the same key, so dropping by key also drops the
    underscore spelling when a server is configured to pass such headers.
    """
    name = header.upper().replace("-", "_")
    if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return name
    return "HTTP_" + name


def drop_headers(environ: dict, keys: Iterable[str]) -> None:
    """Remove the request headers with these environ keys."""
    for key in keys:
        environ.pop(key, None)


def drop_cookies(environ: dict, names: frozenset[str]) -> None:
    """Remove the named cookies from the Cookie header (others are kept as sent)."""
    kept = [part for part in environ["HTTP_COOKIE"].split(";")
            if part.split("=", 1)[0].strip() not in names]
    if kept:
        environ["HTTP_COOKIE"] = ";".join(kept).strip()
    else:
        del environ["HTTP_COOKIE"]


def drop_query(environ: dict, names: frozenset[str]) -> None:
    """Remove the named parameters from the query string (others are kept as sent)."""
    kept = [part for part in environ["QUERY_STRING"].split("&")
            if unquote_plus(part.split("=", 1)[0]) not in names]
    environ["QUERY_STRING"] = "&".join(kept)


def inject_headers(environ: dict, headers: Mapping[str, str]) -> None:
    """Add headers for the upstream; each value is checked for CR/LF/NUL and length."""
    for name, value in headers.items():
        check_header_value(name, value)
        environ[environ_key(name)] = value


def check_header_value(name: str, value: str) -> None:
    """Raise ValueError if ``value`` could split or smuggle a header."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name}: value contains CR, LF or NUL")
    if len(value) > MAX_HEADER_VALUE:
        raise ValueError(f"header {name}: value longer than {MAX_HEADER_VALUE} characters")
