"""Reading credentials from a request: the Authorization header, a header, cookie or query.

Shared by every method that takes a token-like credential. A value that is present but
malformed is a 400 ``invalid_request`` (RFC 6750 §3.1), never a parse crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidRequest

B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")  # RFC 6750 §2.1


@dataclass(frozen=True)
class CredentialPlaces:
    """Where a method reads its credential, so ``strip_auth`` can remove it."""

    headers: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    query: tuple[str, ...] = ()

    def __or__(self, other: "CredentialPlaces") -> "CredentialPlaces":
        return CredentialPlaces(*(tuple(dict.fromkeys(a + b)) for a, b in
                                  zip((self.headers, self.cookies, self.query),
                                      (other.headers, other.cookies, other.query))))


def authorization(environ: dict, scheme: str) -> str | None:
    """The credential after ``scheme`` (matched case-insensitively) in Authorization.

    None when there is no Authorization header or it uses another scheme (not this
    method's credential). More than one Authorization header arrives joined by a
    comma and fails the grammar.
    """
    value = environ.get("HTTP_AUTHORIZATION")
    if value is None:
        return None
    given, _, rest = value.strip(" \t").partition(" ")
    if given.lower() != scheme.lower():
        return None
    credential = rest.strip(" \t")
    if not B64TOKEN.match(credential):
        raise InvalidRequest(f"the Authorization header is not a valid {scheme} credential")
    return credential


def token_from(request, source: str, name: str) -> str | None:
    """A bearer-style token from ``source`` (bearer, header, cookie, query) or None."""
    if source == "bearer":
        return authorization(request.environ, "Bearer")
    if source == "header":
        values = request.headers.getlist(name)
    elif source == "cookie":
        values = request.cookies.getlist(name)
    else:
        values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"more than one {name} {source} given")
    value = values[0].strip(" \t")
    if source == "header" and value[:7].lower() == "bearer ":
        value = value[7:].strip(" \t")
    if not B64TOKEN.match(value):
        raise InvalidRequest(f"the {name} {source} is not a valid token")
    return value
