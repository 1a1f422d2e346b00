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

#: Default worst-case cost of one evaluation (Kubernetes' per-call limit is 1,000,000 with
#: tighter declared sizes; here every claim string may be 8 KiB). Measured: a rule at the
#: limit runs in well under 50 ms on cel-python, and the size limit on built values
#: (1 MiB) catches the string-growth attacks long before.
DEFAULT_COST_LIMIT: Final = 10_000_000
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
