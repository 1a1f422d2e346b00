"""The worker's garbage collector, tuned once the gateway is built (after the fork).

Python's collector walks every tracked object of the generation it collects. A worker
holds tens of thousands of long-lived objects (modules, compiled rules, key sets) and,
with many identities, caches of thousands of entries: a full (generation 2) collection
walking all of them took 57–85 ms under a new identity per request, two or three times
per 3,000 requests, which was the whole p99. So, once the worker has built the gateway:

- ``gc.freeze()`` moves everything alive into a permanent generation the collector never
  walks again (and, as a side effect, leaves those pages unwritten, so they stay shared
  with the master after the fork);
- the young-generation threshold is raised from 700 to :data:`GEN0` allocations: a
  request allocates a few hundred container objects that die with it, so the default
  ran a young collection every other request for almost nothing; generation 2 runs
  only after :data:`GEN2` generation-1 collections (and, as always, only when the
  objects added since the last full collection exceed a quarter of the long-lived).

``GATEWAY_GC_LOG=PATH`` appends one line per generation-2 collection (pid, milliseconds,
objects collected) to PATH: how the benchmark measures pauses. Off by default.
"""

from __future__ import annotations

import gc
import os
import time

GEN0, GEN1, GEN2 = 20_000, 20, 20


def tune_gc() -> None:
    """Freeze what the worker holds after start-up and set the thresholds above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
    path = os.environ.get("GATEWAY_GC_LOG")
    if path:
        _log_full_collections(path)


def _log_full_collections(path: str) -> None:
    started: list[float] = [0.0]

    def callback(phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
            return
        with open(path, "a") as out:
            out.write(f"{os.getpid()} {(time.perf_counter() - started[0]) * 1000:.2f} "
                      f"{info.get('collected', 0)}\n")

    gc.callbacks.append(callback)
