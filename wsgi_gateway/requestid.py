"""Request IDs: accept a well-formed incoming one, else make a new one."""

from __future__ import annotations

import os
import re

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}\Z")


def new_request_id() -> str:
    """A fresh, unguessable request ID (128 random bits, hex)."""
    return os.urandom(16).hex()


def accept_request_id(value: str | None) -> str:
    """``value`` when it is a safe ID (1–128 of ``A-Za-z0-9._:-``), else a new one."""
    if value and _WELL_FORMED.match(value):
        return value
    return new_request_id()
