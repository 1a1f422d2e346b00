"""Policies (``policies:``): the limits and access rights a rule file can assign."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from .units import Rate, parse_rate
from .typed import parsed

_METHOD = re.compile(r"[A-Z]{1,16}\Z")


def _rate(**kw) -> Any:
    return field(metadata={"parse": parsed(parse_rate)}, **kw)


@dataclass(frozen=True)
class AccessRight:
    """What a policy lets through for one API: methods and path patterns (glob, ``*``
    matches across ``/``); empty lists allow every method / path."""

    api: str
    """The API's name."""
    methods: tuple[str, ...] = ()
    """Upper-case HTTP methods; empty = every method."""
    paths: tuple[str, ...] = ()
    """Glob patterns (* matches across /); empty = every path."""

    def __post_init__(self):
        bad = [m for m in self.methods if not _METHOD.match(m)]
        if bad:
            raise ValueError(f"methods must be upper-case HTTP methods, got {bad}")
        if any(not p.startswith("/") for p in self.paths):
            raise ValueError("paths must start with /")

    def allows(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and (
            not self.paths or any(fnmatch.fnmatchcase(path, p) for p in self.paths))


@dataclass(frozen=True)
class PolicyConfig:
    """A named policy. Several assigned policies merge: for each API the most
    permissive rate and quota win, and access is the union of access rights."""

    rate: Rate | None = _rate(default=None)
    """Requests per period, e.g. 100/s, counted per rate_key."""
    quota: Rate | None = _rate(default=None)
    """Requests per longer period, e.g. 100000/30d."""
    access: tuple[AccessRight, ...] = ()
    """What the policy lets through; empty = every API, method and path."""
    rate_key: str | None = None
    """CEL expression naming whose counter a request uses, e.g. identity.org; default: the
    session.
    """

    def allows(self, api: str, method: str, path: str) -> bool:
        """Whether this policy lets ``method path`` on ``api`` through."""
        if not self.access:
            return True
        return any(right.api == api and right.allows(method, path) for right in self.access)


def most_permissive(rates: list[Rate]) -> Rate | None:
    """The rate admitting the most requests per second (ties: the longer period)."""
    if not rates:
        return None
    return max(rates, key=lambda r: (r.count / r.period, r.period))
