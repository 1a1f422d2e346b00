"""The configurable bounds of one evaluation (``cel:`` in the config).

``cost_limit`` refuses at load a rule whose static worst case (:mod:`.cost`) is over it,
on both engines; ``timeout`` stops a cel-python evaluation at run time (cel-cpp cannot be
interrupted from Python: the static estimate is its bound). Both have documented
defaults; the value bounds of :mod:`.bounds` are fixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: Default worst-case cost of one evaluation (Kubernetes' per-call limit is 1,000,000,
#: with tighter declared sizes than here, where any claim string may be 8 KiB). Measured
#: on this 2-core host: a 1.85 M rule (``groups.exists(g, g in other_list)`` over two
#: 1,000-element lists) ran 18 ms on cel-cpp and 190 ms on cel-python; a 9 M rule
#: (``split('')`` of 8 KiB per element of a 1,000-element list) 0.5-1 s on cel-cpp.
DEFAULT_COST_LIMIT: Final = 2_000_000
#: Default wall-clock bound of one cel-python evaluation, in seconds.
DEFAULT_TIMEOUT: Final = 0.5


@dataclass(frozen=True, slots=True)
class CelLimits:
    """Bounds for compiling and evaluating rules.

    :param cost_limit: the largest static worst-case cost a rule may have.
    :param timeout: seconds one cel-python evaluation may run.
    :param clock: monotonic seconds (injected so tests need not sleep).
    """

    cost_limit: float = DEFAULT_COST_LIMIT
    timeout: float = DEFAULT_TIMEOUT
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


DEFAULT_LIMITS: Final = CelLimits()
