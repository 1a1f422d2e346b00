"""Python values written back in CEL syntax, for people: ``explain``, ``eval``, trails.

A rule author reads ``true``, ``null``, ``['a', 'b']`` and ``timestamp('…Z')`` as the
rule would write them, not Python's ``True``, ``None`` or ``datetime(...)``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cel_text(value: Any) -> str:
    """``value`` as a CEL literal (or the call that builds it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bytes):
        return "b" + _string(value.decode("latin-1"))
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc) if value.tzinfo else value
        return f"timestamp('{moment.strftime('%Y-%m-%dT%H:%M:%S.%f').rstrip('0').rstrip('.')}Z')"
    if isinstance(value, timedelta):
        return f"duration('{_seconds(value.total_seconds())}s')"
    if isinstance(value, dict) or hasattr(value, "items"):
        return "{" + ", ".join(f"{cel_text(k)}: {cel_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cel_text(v) for v in value) + "]"
    return _string(str(value))


def _double(value: float) -> str:
    if math.isnan(value):
        return "double('NaN')"
    if math.isinf(value):
        return "double('Infinity')" if value > 0 else "double('-Infinity')"
    text = repr(value)
    return text if any(c in text for c in ".en") else text + ".0"


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"
