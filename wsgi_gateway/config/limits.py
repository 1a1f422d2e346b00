"""How rate limits, quotas and sessions behave (``limits:`` and ``sessions:``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .typed import parsed
from .units import parse_duration


def _duration(default: float) -> Any:
    return field(default=default, metadata={"parse": parsed(parse_duration)})


@dataclass(frozen=True)
class LimitsConfig:
    """Rate limits and quotas, counted in the store and shared by every worker and host.

    ``sliding`` weighs the previous window's count by how much of it still overlaps
    the last ``period`` (accurate to a few per cent when traffic is steady); ``fixed``
    counts per calendar window, exactly, but allows up to twice the rate across a
    window boundary. ``auto`` (the default) counts a limit below 10,000 per window
    exactly and leases a larger one in blocks of limit/1000 (at most 1000): never over
    the limit, and one worker strands at most 0.1 % of it per window. ``exact`` counts
    every request in the store; ``leased`` takes ``lease`` units at a time for every
    limit: never over the limit, but up to ``workers × (lease − 1)`` requests per window
    may go unused.

    ``refused: free`` (the default) gives a refused request's slot back, so windows count
    served requests and a client above its limit is served the limit; ``counted`` is a
    penalty mode: refused requests count too, and a client must slow down below its
    limit to be served again (with ``sliding``, a client that never does stays refused).
    """

    algorithm: Literal["sliding", "fixed"] = "sliding"
    """sliding (the previous window weighted by its overlap) or fixed (calendar windows,
    exact, up to twice the rate across a boundary).
    """
    mode: Literal["auto", "exact", "leased"] = "auto"
    """auto (limits below 10,000 per window exact, larger ones leased in blocks of limit/1000),
    exact (every request counted in the store) or leased (units taken lease at a time per
    worker).
    """
    lease: int = 10
    """Units a worker takes at a time in leased mode (2-1000)."""
    headers: Literal["both", "rate", "quota", "off"] = "both"
    """Which RateLimit headers responses carry: both, rate, quota or off."""
    quota_status: Literal[429, 403] = 429
    """Status of an exceeded quota: 429, or 403 (as Tyk answers)."""
    quota_renewal: Literal["calendar", "first_use"] = "calendar"
    """calendar (periods aligned to the epoch) or first_use (a period starts at the first
    request).
    """
    refused: Literal["free", "counted"] = "free"
    """free: a refused request gives its slot back; counted: it counts too (a penalty mode)."""

    def __post_init__(self):
        if not 2 <= self.lease <= 1000:
            raise ValueError("lease must be within 2..1000")


@dataclass(frozen=True)
class SessionsConfig:
    """Session records per identity: policies, first and last use, revocation."""

    enabled: bool = True
    """Keep a session record per identity (needed for sessions revoke and first/last use)."""
    cache_ttl: float = _duration(1.0)
    """How long a worker trusts its copy of a record and its revocation markers (at most 1
    s).
    """
    touch_interval: float = _duration(60.0)
    """last_seen is written at most this often."""
    ttl: float = _duration(30 * 86400.0)
    """A session record lives this long after its last use."""
    header: str | None = None
    """Inject the session ID upstream under this header, e.g. X-Session-Id."""

    def __post_init__(self):
        if not 0 < self.cache_ttl <= 1.0:
            raise ValueError("cache_ttl must be within (0, 1s]: revocation must land within a second")
        if self.header is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.header):
            raise ValueError("header must be a header name like X-Session-Id")


Failure = Literal["open", "closed"]


@dataclass(frozen=True)
class StoreFailureConfig:
    """What each concern does while the store fails (``store.on_failure``).

    One rule throughout: **open** (serve, and log) where nothing is lost that the store
    alone knows and identity does not depend on it; **closed** (503 with Retry-After)
    where the identity itself lives in the store.
    """

    rate_limits: Failure = "open"
    """open: served without rate limits while the store fails; closed: 503."""
    quotas: Failure = "open"
    """open: served without quotas while the store fails; closed: 503."""
    revocation_checks: Failure = "open"
    """Self-contained credentials (JWT, introspection, basic, mTLS ...) are verified without
    the store; open serves them unchecked for revocation, closed answers 503.
    """
    store_credentials: Failure = "closed"
    """Gateway-issued API keys, whose record is the identity: closed (503) by default."""

    def summary(self) -> str:
        """The start-up log line's matrix."""
        return ", ".join(f"{name.replace('_', ' ')} {getattr(self, name)}"
                         for name in self.__dataclass_fields__) + \
            ", introspection cache open (the provider is asked)"
