"""Secrets named in the config (``{env: NAME}`` or ``{file: PATH}``), never inline."""

from __future__ import annotations

import os
from pathlib import Path


class Secret:
    """A secret value that never shows itself in a repr, a log line or an error."""

    __slots__ = ("_value", "source")

    def __init__(self, value: bytes, source: str):
        self._value = value
        self.source = source  # "env:NAME" or "file:PATH", safe to log

    def reveal(self) -> bytes:
        """The secret bytes. Call only where the secret is used."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, ***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.source)


def resolve_secret(spec: object, base_dir: Path) -> Secret:
    """Read the secret that ``spec`` names. Raises ValueError saying what is missing."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("env", "file"):
        raise ValueError("a secret is given as {env: VARIABLE} or {file: PATH}, never inline")
    kind, name = next(iter(spec.items()))
    if not isinstance(name, str) or not name:
        raise ValueError(f"secret {kind}: expected a name, got {name!r}")
    if kind == "env":
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set or empty")
        return Secret(value.encode(), f"env:{name}")
    path = (base_dir / name).resolve()
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"secret file {path} cannot be read: {exc.strerror}") from None
    if not data:
        raise ValueError(f"secret file {path} is empty")
    return Secret(data, f"file:{path}")
