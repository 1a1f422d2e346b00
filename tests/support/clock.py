"""A clock the test moves, for every component that takes ``clock`` (build_app's included).

Tests advance it instead of sleeping: caches, windows, lockouts and expiries then land
exactly when the test says, whatever the machine's load. It starts at the real time, so
tokens minted with ``time.time()`` and records written to memcached (whose own expiry
runs on real time, and which the gateway never relies on alone) agree with it; steps
stay short where memcached's TTL and the gateway's clock must agree.
"""

from __future__ import annotations

import time


class FakeClock:
    """Wall-clock seconds that move only when :meth:`advance` is called."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move on ``seconds`` (never back) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go back in these tests")
        self.now += seconds
        return self.now
