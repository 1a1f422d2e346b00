"""The worker's garbage collector: no full collection walks the whole heap.

Python's collector walks every tracked object of the generations it collects. A worker
holds tens of thousands of long-lived objects (modules, compiled rules, key sets) and,
with many identities, caches of thousands of entries whose CEL values are objects too:
after 10,000 new identities a full collection walked 680,000 objects and took 440-560
ms here (issue 15 saw 57-85 ms pauses two or three times per 3,000 requests, the whole
p99). So, under gunicorn:

- once the worker has built the gateway (:func:`tune_gc`), everything alive is frozen
  (``gc.freeze()``: a permanent generation the collector never walks) and automatic
  full collections are switched off; young collections keep the default rhythm;
- after every :data:`COLLECT_EVERY` requests (:func:`after_request`, gunicorn's
  ``post_request`` hook: the response is already sent), one full collection walks only
  what is not frozen, i.e. what those requests left alive plus their cyclic garbage,
  and the survivors are frozen in turn. The pause is bounded by what
  :data:`COLLECT_EVERY` requests keep (a new identity each: a few ms), not by the heap.

Frozen objects are still freed by reference counting (a cache entry evicted is gone at
once); only a cycle formed among frozen objects is never collected. Should the frozen
heap grow past :data:`FROZEN_LIMIT` objects over what start-up froze, everything is
unfrozen and collected once (a long pause, logged) so such cycles cannot grow forever.

``GATEWAY_GC_LOG=PATH`` appends one line per full collection (pid, wall milliseconds, the
thread's CPU milliseconds, objects collected) to PATH: how the benchmark measures pauses. Off by default.
"""

from __future__ import annotations

import gc
import logging
import os
import time

log = logging.getLogger("wsgi_gateway.runtime")

COLLECT_EVERY = 100          # requests between two bounded full collections
FROZEN_LIMIT = 2_000_000     # frozen objects over start-up's before one complete collection
CHECK_FROZEN_EVERY = 100     # collections between two counts of the frozen objects
_NEVER = 2**31 - 1           # generation-2 threshold: no automatic full collection


class _State:
    requests = 0
    frozen_at_start = 0
    tuned = False


def tune_gc() -> None:
    """Freeze what the worker holds after start-up; full collections from now on come
    from :func:`after_request` only."""
    gc.collect()
    gc.freeze()
    _State.frozen_at_start = gc.get_freeze_count()
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, _NEVER)
    _State.tuned = True
    path = os.environ.get("GATEWAY_GC_LOG")
    if path:
        _log_full_collections(path)


def after_request(worker=None, req=None, environ=None, resp=None) -> None:
    """gunicorn's ``post_request`` hook: every :data:`COLLECT_EVERY` requests, collect
    what is not frozen and freeze the survivors."""
    if not _State.tuned:
        return
    _State.requests += 1
    if _State.requests % COLLECT_EVERY:
        return
    gc.collect()
    gc.freeze()
    # counting the frozen objects walks them (6 ms for 70,000): rarely
    if _State.requests % (COLLECT_EVERY * CHECK_FROZEN_EVERY) == 0 and \
            gc.get_freeze_count() - _State.frozen_at_start > FROZEN_LIMIT:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _State.frozen_at_start = gc.get_freeze_count()
        log.info("gc: complete collection of the frozen heap took %.0f ms",
                 (time.perf_counter() - started) * 1000)


def _log_full_collections(path: str) -> None:
    started: list[float] = [0.0, 0.0]

    def callback(phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[:] = time.perf_counter(), time.thread_time()
            return
        # wall time is what a waiting client sees; the thread's CPU time tells the
        # collector's own work from time the kernel gave other processes meanwhile
        with open(path, "a") as out:
            out.write(f"{os.getpid()} {(time.perf_counter() - started[0]) * 1000:.2f} "
                      f"{(time.thread_time() - started[1]) * 1000:.2f} {info.get('collected', 0)}\n")

    gc.callbacks.append(callback)
