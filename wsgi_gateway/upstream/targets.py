"""Targets of a URL upstream: which one takes the next request, and which are skipped.

Passive health only: nothing probes the targets. A target that fails ``failures``
times in a row is skipped for ``cooldown`` seconds, then tried again by the next
request (one success clears it). State is per worker process, like nginx's
``max_fails``/``fail_timeout`` per worker: no store round trip on the hot path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..config.upstream import PassiveHealth


@dataclass(eq=False)
class Target:
    """One target URL, split once; its counters are guarded by the set's lock."""

    url: str
    scheme: str = field(init=False)
    host_header: str = field(init=False)  # netloc as the Host header writes it
    base_path: str = field(init=False)    # "" or "/base" (no trailing slash)
    origin: str = field(init=False)       # scheme://netloc, for the pool
    failures: int = 0
    down_until: float = 0.0
    outstanding: int = 0

    def __post_init__(self):
        parts = urlsplit(self.url)
        self.scheme, self.base_path = parts.scheme, parts.path.rstrip("/")
        default = {"http": 80, "https": 443}[parts.scheme]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.host_header = host if parts.port in (None, default) else f"{host}:{parts.port}"
        self.origin = f"{parts.scheme}://{parts.netloc}"


class AllTargetsDown(Exception):
    """Every target is skipped; ``retry_after`` is when the first comes back (seconds)."""

    def __init__(self, retry_after: float):
        super().__init__("every target is skipped")
        self.retry_after = retry_after


class TargetSet:
    """Chooses targets (round robin or least outstanding) and tracks their health.

    :param urls: the normalised target URLs.
    :param balance: ``round_robin`` or ``least_outstanding`` (fewest requests in
        flight in this worker; ties go round robin).
    :param health: the passive health settings.
    :param clock: seconds, monotonic; injected so tests advance time instead of sleeping.
    """

    def __init__(self, urls: Iterable[str], *, balance: str = "round_robin",
                 health: PassiveHealth = PassiveHealth(),
                 clock: Callable[[], float] = time.monotonic):
        self.targets = tuple(Target(url) for url in urls)
        self.balance = balance
        self.health = health
        self.clock = clock
        self._next = 0
        self._lock = threading.Lock()

    def choose(self, exclude: Iterable[Target] = ()) -> Target:
        """The next target to try, counted as outstanding; raises AllTargetsDown.

        ``exclude``: targets this request already failed on (a retry goes elsewhere
        when there is elsewhere to go).
        """
        now = self.clock()
        with self._lock:
            up = [t for t in self.targets if t.down_until <= now]
            if not up:
                raise AllTargetsDown(min(t.down_until for t in self.targets) - now)
            fresh = [t for t in up if t not in exclude] or up
            target = self._pick(fresh)
            target.outstanding += 1
            return target

    def _pick(self, candidates: list[Target]) -> Target:
        start = self._next
        self._next += 1
        ordered = sorted(candidates, key=lambda t: (self.targets.index(t) - start)
                         % len(self.targets))
        if self.balance == "least_outstanding":
            return min(ordered, key=lambda t: t.outstanding)
        return ordered[0]

    def another(self, tried: Iterable[Target]) -> bool:
        """Whether a target not in ``tried`` is up (a retry goes elsewhere or nowhere)."""
        now = self.clock()
        return any(t.down_until <= now and t not in tried for t in self.targets)

    def done(self, target: Target, *, ok: bool) -> None:
        """The request on ``target`` finished; ``ok`` False counts a failure."""
        with self._lock:
            target.outstanding -= 1
            if ok:
                target.failures = 0
                return
            target.failures += 1
            if self.health.failures and target.failures >= self.health.failures:
                target.down_until = self.clock() + self.health.cooldown
                target.failures = self.health.failures - 1  # back on probation: one more failure

    def all_down(self) -> bool:
        """True while every target is skipped (for the readiness endpoint)."""
        now = self.clock()
        return all(t.down_until > now for t in self.targets)
