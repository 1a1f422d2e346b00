"""Counting windows: pure arithmetic, no store, no clock of its own."""

from __future__ import annotations

import math
from dataclasses import dataclass

# memcached keeps whole seconds and can expire an item up to a second early; a counter
# must outlive its window by a margin or it resets inside the window (a 2 s TTL was seen
# living 0.63-1.9 s).
TTL_MARGIN = 3.0


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a ``period``: its index and where ``now`` falls in it."""

    index: int
    period: float
    now: float

    @classmethod
    def at(cls, now: float, period: float, anchor: float = 0.0) -> "Window":
        return cls(math.floor((now - anchor) / period), period, now - anchor)

    @property
    def elapsed(self) -> float:
        """Fraction of the window already gone, in [0, 1)."""
        return self.now / self.period - self.index

    @property
    def resets_in(self) -> float:
        """Seconds until the next window starts."""
        return (self.index + 1) * self.period - self.now

    def counter_ttl(self, keep_previous: bool) -> float:
        """How long a counter of this window must live in the store."""
        return self.period * (2 if keep_previous else 1) + TTL_MARGIN


def sliding_count(previous: int, current: int, window: Window) -> float:
    """The sliding-window estimate: the previous window weighted by its overlap."""
    return previous * (1.0 - window.elapsed) + current


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one limit says of one request."""

    kind: str         # "rate" or "quota"
    limit: int
    period: float
    used: float       # the count this request was judged on (it included)
    resets_in: float

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.limit - self.used))

    @property
    def retry_after(self) -> float:
        return max(1.0, self.resets_in)
