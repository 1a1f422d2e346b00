"""The one list of client headers that never reach an upstream, for the whole gateway.

What the gateway may inject anywhere is removed everywhere (STYLE habit 12): a header
one API's rules set is as trusted by the shared app when a client sends it to another
API, a keyless one, or an unmatched path passed through. :class:`ClientHeaderStrip`
collects those names while the gateway is built, adds the documented defaults and the
configured extras, and is sealed before the first request; every route applies the
same sealed set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .headers import drop_cookies, environ_key
from .identity_headers import DEFAULT_IDENTITY_HEADERS, PROXY_HEADERS


def split_names(names: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Header names (``X-User``, ``X-SSL-Client-*``) as environ keys and key prefixes.

    Environ keys are upper case with ``_`` for ``-``: every letter case and the
    underscore spelling of a name land on the same key.
    """
    keys, prefixes = set(), []
    for name in names:
        if name.endswith("*"):
            prefixes.append(environ_key(name[:-1]))
        else:
            keys.add(environ_key(name))
    return frozenset(keys), tuple(dict.fromkeys(prefixes))


class TrustedProxies:
    """The peers (``REMOTE_ADDR``) whose forwarding headers and request ID are believed.

    :param networks: addresses or CIDRs; empty trusts no one.
    """

    __slots__ = ("networks", "_seen")

    def __init__(self, networks: Iterable[str] = ()):
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, remote_addr: object) -> bool:
        if not self.networks or not isinstance(remote_addr, str):
            return False
        known = self._seen.get(remote_addr)
        if known is None:
            known = self._check(remote_addr)
            if len(self._seen) < 4096:  # a handful of proxies; bounded for scanners
                self._seen[remote_addr] = known
        return known

    def _check(self, remote_addr: str) -> bool:
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


_REMEMBERED = 1024        # tuples of environ keys whose doomed keys are remembered
_REMEMBERED_CHARS = 2048  # the longest remembered tuple, in characters: 2 MB at most


class ClientHeaderStrip:
    """Removes every identity, injected and (from untrusted peers) proxy header.

    :param extra: names the operator adds (``client_headers.strip`` and every API's
        ``drop_headers``); ``*`` at the end makes a prefix.
    :param defaults: the well-known identity headers, minus those the operator keeps.
    :param proxy: forwarding headers, removed unless the peer is in ``trusted``.
    :param trusted: the trusted proxies.

    Layers that inject headers register their names with :meth:`add` while the gateway
    is built; :meth:`seal` fixes the set before the first request.
    """

    def __init__(self, *, extra: Iterable[str] = (), defaults: Iterable[str] = DEFAULT_IDENTITY_HEADERS,
                 proxy: Iterable[str] = PROXY_HEADERS, trusted: TrustedProxies | None = None):
        self._names = list(dict.fromkeys([*defaults, *extra]))
        self._proxy = tuple(proxy)
        self.trusted = trusted or TrustedProxies()
        self._always: tuple[frozenset[str], tuple[str, ...]] | None = None
        self._untrusted: tuple[frozenset[str], tuple[str, ...]] | None = None
        self._cookies: frozenset[str] = frozenset()
        self._doomed: dict[tuple, tuple[str, ...]] = {}

    def add(self, names: Iterable[str]) -> None:
        """Also remove these names (headers the gateway injects somewhere)."""
        if self._always is not None:
            raise RuntimeError("the header strip list is sealed")
        self._names.extend(n for n in names if n not in self._names)

    def add_cookies(self, names: Iterable[str]) -> None:
        """Also remove these cookies from every request: the gateway's own (a browser
        session's handle) are sent for every path, so every route must drop them."""
        if self._always is not None:
            raise RuntimeError("the header strip list is sealed")
        self._cookies = self._cookies | frozenset(names)

    def seal(self) -> "ClientHeaderStrip":
        """Fix the set; :meth:`apply` works only after this."""
        self._always = split_names(self._names)
        self._untrusted = split_names([*self._names, *self._proxy])
        return self

    @property
    def cookies(self) -> frozenset[str]:
        """The gateway's own cookies: never sent to an upstream, never set by one."""
        return self._cookies

    @property
    def names(self) -> tuple[str, ...]:
        """Every name removed from every request (proxy headers not included)."""
        return tuple(self._names)

    def apply(self, environ: dict) -> None:
        """Remove the headers from ``environ`` (one pass over its keys)."""
        if self._untrusted is None:
            raise RuntimeError("seal() the header strip list before serving")
        trusted = environ.get("REMOTE_ADDR") in self.trusted
        # clients send the same header names request after request: the keys to drop are
        # remembered per tuple of environ keys (at most _REMEMBERED tuples of at most
        # _REMEMBERED_CHARS characters each: emptied when full)
        names = (trusted, *environ)
        doomed = self._doomed.get(names)
        if doomed is None:
            keys, prefixes = self._always if trusted else self._untrusted
            doomed = tuple(k for k in environ if k in keys or (prefixes and k.startswith(prefixes)))
            if sum(map(len, environ)) <= _REMEMBERED_CHARS:
                if len(self._doomed) >= _REMEMBERED:
                    self._doomed.clear()
                self._doomed[names] = doomed
        for key in doomed:
            del environ[key]
        if self._cookies and "HTTP_COOKIE" in environ:
            drop_cookies(environ, self._cookies)
