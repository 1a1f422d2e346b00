"""The authenticator protocol every method implements.

An authenticator looks at a request and answers one of three ways:

- ``None``: no credential of its kind here ("not my credential"), so the next
  method may try;
- an :class:`~wsgi_gateway.identity.Identity`: the credential is good;
- it raises :class:`~wsgi_gateway.errors.Unauthorized` (bad credential) or
  :class:`~wsgi_gateway.errors.ServiceUnavailable` (cannot decide now, e.g. keys
  unavailable): the request stops there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..identity import Identity
    from .credentials import CredentialPlaces


@runtime_checkable
class Authenticator(Protocol):
    """One way to prove who a request is."""

    #: the method id, as written in an API's ``auth`` list
    id: str
    #: the ``WWW-Authenticate`` challenge sent when no method found a credential,
    #: e.g. ``Bearer realm="orders"``; None for methods that have no challenge
    challenge: str | None
    #: where the credential is read (headers, cookies, query), so strip_auth removes it
    credentials: "CredentialPlaces"

    def authenticate(self, request: "Request") -> "Identity | None":
        """The identity proved by the request's credential, or None if it has none."""
        ...

    def ready(self) -> str | None:
        """None when able to serve; else a short reason (keys not loaded yet, ...)."""
        ...

    # Optional: ``warm(timeout=None)`` loads what the method needs before the first
    # request (a worker calls it after the fork; waits are bounded).
    # Optional: ``owned_headers``, headers only the gateway may set (e.g. a trusted
    # proxy's certificate header): always removed from the client's request, whatever
    # strip_auth says.
