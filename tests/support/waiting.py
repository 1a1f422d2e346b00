"""Waiting for another process or thread without a fixed sleep.

For what a test cannot drive with a fake clock (a background thread, a gunicorn worker,
a restarted server): ask again and again until the answer comes, and fail with a
message after a generous deadline. The test then lasts as long as the event takes, not
as long as the slowest machine might need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02,
               what: str = "the condition") -> T:
    """The first truthy result of ``check()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s (last: {result!r})")
        time.sleep(interval)  # polling, not waiting for a window: the loop ends on the event
