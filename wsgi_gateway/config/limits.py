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
    window boundary. ``leased`` (opt-in) takes ``lease`` units at a time from the
    store per worker: fewer round trips, never over the limit, but up to
    ``workers × (lease − 1)`` requests per window may go unused.
    """

    algorithm: Literal["sliding", "fixed"] = "sliding"
    mode: Literal["exact", "leased"] = "exact"
    lease: int = 10
    headers: Literal["both", "rate", "quota", "off"] = "both"
    quota_status: Literal[429, 403] = 429            # Tyk answers an exceeded quota with 403
    quota_renewal: Literal["calendar", "first_use"] = "calendar"
    on_store_failure: Literal["open", "closed"] = "open"  # open: serve without limits

    def __post_init__(self):
        if not 2 <= self.lease <= 1000:
            raise ValueError("lease must be within 2..1000")


@dataclass(frozen=True)
class SessionsConfig:
    """Session records per identity: policies, first and last use, revocation."""

    enabled: bool = True
    cache_ttl: float = _duration(1.0)        # a worker re-reads a session (and revocation) this often
    touch_interval: float = _duration(60.0)  # last_seen is written at most this often
    ttl: float = _duration(30 * 86400.0)     # a session record lives this long after last use
    header: str | None = None                # inject the session ID upstream, e.g. X-Session-Id
    on_store_failure: Literal["open", "closed"] = "closed"  # closed: 503 when revocation cannot be checked

    def __post_init__(self):
        if not 0 < self.cache_ttl <= 1.0:
            raise ValueError("cache_ttl must be within (0, 1s]: revocation must land within a second")
        if self.header is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.header):
            raise ValueError("header must be a header name like X-Session-Id")
