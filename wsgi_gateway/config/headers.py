"""Which client headers never reach an upstream (``client_headers:``), and whom to believe."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z0-9!#$%&'+.^_`|~-]+\*?")


@dataclass(frozen=True)
class ClientHeadersConfig:
    """Headers removed from every client request, on every route, before any upstream.

    Always removed: every header the gateway injects anywhere (rule headers, the session
    header, authenticators' own headers), every API's ``drop_headers``, ``strip``, and
    unless ``strip_defaults`` is false the documented identity list
    (:data:`wsgi_gateway.mutate.identity_headers.DEFAULT_IDENTITY_HEADERS`) minus ``keep``.
    The proxy headers (``Forwarded``, ``X-Forwarded-*``, ``X-Real-Ip`` ...) are removed
    too unless the peer is one of ``trusted_proxies``; only such a peer's
    ``X-Request-Id`` is believed by default.
    """

    trusted_proxies: tuple[str, ...] = ()
    """Addresses or CIDRs of the proxies in front (REMOTE_ADDR): only from them are
    Forwarded, X-Forwarded-*, X-Real-Ip passed upstream and X-Request-Id believed.
    """
    strip_defaults: bool = True
    """Remove the documented identity headers (X-Remote-User, X-Consumer-Id, X-Auth-Request-
    User ...) from every request; false turns that list off (injected and dropped headers
    are still removed).
    """
    strip: tuple[str, ...] = ()
    """More names removed from every request; a trailing * makes a prefix (X-Corp-*)."""
    keep: tuple[str, ...] = ()
    """Names of the default identity list to pass through (e.g. [X-Email] if your app uses
    it for something else).
    """

    def __post_init__(self):
        from ..mutate.identity_headers import DEFAULT_IDENTITY_HEADERS

        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {cidr!r} is not an address or CIDR") from None
        for name in (*self.strip, *self.keep):
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name (a trailing * makes a prefix)")
        defaults = {n.lower() for n in DEFAULT_IDENTITY_HEADERS}
        unknown = [n for n in self.keep if n.lower() not in defaults]
        if unknown:
            raise ValueError(f"keep: {', '.join(unknown)} not in the default list; "
                             "keep only takes names of that list")

    def default_names(self) -> tuple[str, ...]:
        """The default identity list in force: all of it, minus ``keep``, or none."""
        from ..mutate.identity_headers import DEFAULT_IDENTITY_HEADERS

        if not self.strip_defaults:
            return ()
        kept = {n.lower() for n in self.keep}
        return tuple(n for n in DEFAULT_IDENTITY_HEADERS if n.lower() not in kept)
