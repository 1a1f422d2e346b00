"""Durations (``30s``, ``5m``, ``30d``) and rates (``100/s``, ``1000/1d``): parsed here only."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*\Z")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d|w)\s*\Z")


def parse_duration(value: object) -> float:
    """Seconds from ``"30s"``, ``"1.5m"``, ``"30d"`` or a plain number of seconds.

    In text a unit is required (``"30"`` could mean seconds or days), except for ``"0"``,
    which is zero in every unit: ``--grace 0`` means what ``grace: 0`` means in a file.
    Raises ValueError with a message fit for a config error.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match or (match[2] is None and float(match[1]) != 0):
            hint = " (give a unit: only 0 needs none)" if match else ""
            raise ValueError(f"expected a duration such as 30s, 5m or 1d, got {value!r}{hint}")
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


def parse_rate(value: object) -> Rate:
    """A :class:`Rate` from ``"100/s"``, ``"1000/1d"`` or ``"5/30s"``."""
    match = _RATE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a rate such as 100/s or 1000/1d, got {value!r}")
    count, amount, unit = int(match[1]), float(match[2] or 1), match[3]
    period = amount * _UNITS[unit]
    if count < 1 or period <= 0:
        raise ValueError(f"a rate needs a positive count and period, got {value!r}")
    return Rate(count, period)
