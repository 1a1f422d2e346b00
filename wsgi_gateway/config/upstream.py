"""``apis[].upstream``: the wrapped app, or HTTP(S) targets behind the reverse proxy.

Three spellings, one typed object::

    upstream: app                                   # the wrapped WSGI app (default)
    upstream: http://127.0.0.1:9000/base            # one URL
    upstream: {targets: [http://a:9000, http://b:9000], balance: least_outstanding, ...}

Everything is checked at load (URLs, sizes, timeouts, TLS files) so a bad upstream
stops start-up naming file, line and key, never the first request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .typed import Where, build_dataclass, parsed
from .units import parse_duration

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*\Z")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_size(value: object) -> int:
    """Bytes from ``10MiB``, ``512KB``, ``1GiB`` or a plain integer; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 10MiB, got {value!r}")
    match = _SIZE.match(str(value)) if isinstance(value, (int, str)) else None
    if not match:
        raise ValueError(f"expected a size such as 512KiB, 10MiB or 1GiB, got {value!r}")
    return int(float(match[1]) * _SIZE_UNITS[match[2]])


def _duration(default: float) -> float:
    return field(default=default, metadata={"parse": parsed(parse_duration)})


def _target(value: object) -> str:
    """A normalised target URL: scheme, host, port and an optional base path; no query."""
    if not isinstance(value, str):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: expected an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r}: a target takes no query, fragment or credentials")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{value!r}: bad port") from None
    path = parts.path.rstrip("/")
    if path and (not path.startswith("/") or "//" in path):
        raise ValueError(f"{value!r}: the base path must be normalised")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _targets(node: object, where: Where) -> tuple[str, ...]:
    items = [node] if isinstance(node, str) else node
    if not isinstance(items, list) or not items:
        raise ValueError("expected a URL or a non-empty list of URLs")
    targets = tuple(_target(item) for item in items)
    if len(set(targets)) != len(targets):
        raise ValueError("a target is listed twice")
    return targets


def _file(node: object, where: Where) -> str:
    path = where.config_path(node)
    if not path.is_file():
        raise ValueError(f"{node!r}: no such file (relative to {where.base_dir})")
    return str(path)


def _maybe_file(**kw):
    return field(default=None, metadata={"parse": _file}, **kw)


@dataclass(frozen=True)
class UpstreamTLS:
    """TLS to the targets: verification is always on.

    ``ca_file``: PEM bundle of the CAs to trust instead of the system's. ``cert_file``
    and ``key_file``: a client certificate (mTLS to the upstream). ``server_name``: the
    name sent as SNI and checked in the certificate when it differs from the URL's host
    (a target given by IP address).
    """

    ca_file: str | None = _maybe_file()
    """PEM bundle of the CAs to trust instead of the system's (relative to the config)."""
    cert_file: str | None = _maybe_file()
    """A client certificate for mTLS to the upstream (PEM, relative to the config)."""
    key_file: str | None = _maybe_file()
    """The client certificate's private key; needs cert_file."""
    server_name: str | None = None
    """Name sent as SNI and checked in the certificate when it differs from the URL's host
    (a target given by IP address).
    """

    def __post_init__(self):
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")


@dataclass(frozen=True)
class PassiveHealth:
    """A target that fails ``failures`` times in a row (connection refused or reset,
    timeout, malformed answer) is skipped for ``cooldown``; 0 failures turns it off."""

    failures: int = 3
    """Consecutive failures (refused, reset, timeout, malformed answer) that make a target
    skipped; 0 turns it off.
    """
    cooldown: float = _duration(10.0)
    """How long a failing target is skipped."""

    def __post_init__(self):
        if self.failures < 0:
            raise ValueError("failures must be 0 (off) or more")


@dataclass(frozen=True)
class UpstreamConfig:
    """Where an API's requests go: ``app`` (no targets) or the reverse proxy.

    Defaults are chosen for sync gunicorn workers: a request blocked on the upstream
    blocks the worker, so the read timeout (20 s) stays under gunicorn's 30 s worker
    timeout and the connect timeout is short (a refused or unroutable target should
    fail over fast).
    """

    targets: tuple[str, ...] = field(default=(), metadata={"parse": _targets})
    """http:// or https:// URLs, each with an optional base path; no query, fragment or
    credentials.
    """
    balance: Literal["round_robin", "least_outstanding"] = "round_robin"
    """How a target is chosen: round_robin, or least_outstanding (the fewest requests in
    flight from this worker).
    """
    strip_path: bool = False
    """true: /api/orders/7 under path /api goes to /orders/7 (after the target's base path)."""
    preserve_host: bool = False
    """true: the client's Host goes upstream, not the target's."""
    connect_timeout: float = _duration(2.0)
    """Per connection attempt; short, so a refused or unroutable target fails over fast."""
    read_timeout: float = _duration(20.0)
    """Between two reads, not for the whole body; under gunicorn's 30 s worker timeout."""
    retries: int = 1
    """Further targets tried when a connection failed (idempotent methods only)."""
    max_body: int = field(default=100 * 2**20, metadata={"parse": parsed(parse_size)})
    """The largest request body sent upstream; larger is 413."""
    pool_size: int = 10
    """Kept-alive connections per target and worker."""
    health: PassiveHealth = PassiveHealth()
    """Passive health: skip a target that keeps failing."""
    tls: UpstreamTLS = UpstreamTLS()
    """TLS to the targets; verification is always on."""
    expose_target: bool = False
    """Problem bodies name the target URL (an internal address): for debugging only."""
    ready: bool = False
    """/.gateway/ready fails while every target of this API is skipped."""

    def __post_init__(self):
        if self.retries < 0 or self.pool_size < 1:
            raise ValueError("retries must be 0 or more and pool_size at least 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be more than 0")

    @property
    def kind(self) -> Literal["app", "url"]:
        """``app`` (the wrapped WSGI app) or ``url`` (the reverse proxy)."""
        return "url" if self.targets else "app"


def parse_upstream(node: object, where: Where) -> UpstreamConfig:
    """``app``, a URL, or a mapping with ``targets`` and options."""
    if node == "app":
        return UpstreamConfig()
    if isinstance(node, str):
        return UpstreamConfig(targets=(_target(node),))
    if isinstance(node, dict):
        if "targets" not in node:
            raise ValueError("a mapping upstream needs targets: [URL, ...]")
        return build_dataclass(UpstreamConfig, node, where)
    raise ValueError(f"expected 'app', a URL or a mapping with targets, got {node!r}")


__all__ = ["PassiveHealth", "UpstreamConfig", "UpstreamTLS", "parse_size", "parse_upstream"]
