"""Faults put in place for sure (memcached killed, or frozen and seen stopped)."""

from __future__ import annotations

import time


def fault_in(server, fault: str) -> None:
    """Kill or freeze ``server``, and return only once the fault is in place: SIGSTOP is
    delivered asynchronously, and a memcached still answering for a moment would refresh
    the caches the test means to see expire."""
    getattr(server, fault)()
    if fault == "freeze":
        deadline = time.monotonic() + 5
        while _state(server.proc.pid) != "T":
            if time.monotonic() > deadline:
                raise TimeoutError("memcached did not stop")
            time.sleep(0.001)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]
