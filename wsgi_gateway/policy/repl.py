"""``wsgi-gateway eval``: one CEL expression against claims and a request, or a small REPL.

The variables are built exactly as for a rule (:mod:`.variables`): ``claims`` from the
file, ``token`` and ``identity`` normalised from them as ``rules test`` does (the base
identity, before any ``map``), ``request`` from ``'METHOD /path?query'`` and ``-H``
headers, ``now`` from ``--now`` or the clock. Results print in CEL syntax.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import yaml
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ..errors import ConfigError
from .celtext import cel_text
from ..cel import CompileError, Engine, EvalError
from .testing import case_identity
from .variables import (
    base_identity, cert_variable, declared_shapes, limits_variable, now_variable, request_variable,
    session_variable, token_variable,
)


@dataclass(frozen=True)
class Inputs:
    """What an expression is evaluated against."""

    claims: dict[str, Any]
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    api: str = "api"
    now: float | None = None
    remote_addr: str = "127.0.0.1"


def read_claims(path: str | None) -> dict[str, Any]:
    """The claims of a JSON or YAML file (none: an empty object)."""
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            claims = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--claims {path}: cannot be read: {exc}") from None
    if not isinstance(claims, dict):
        raise ConfigError(f"--claims {path}: expected a JSON or YAML object of claims")
    return claims


def parse_request(text: str, headers: list[str]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    method, _, path = text.strip().partition(" ")
    if not method or not path.strip().startswith("/"):
        raise ConfigError(f"--request: expected 'METHOD /path', got {text!r}")
    pairs = []
    for item in headers:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"-H: expected 'Name: value', got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return method.upper(), path.strip(), tuple(pairs)


def activation(engine: Engine, inputs: Inputs, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Every variable, converted for ``engine``."""
    identity = case_identity({"claims": inputs.claims}, {})
    path, _, query = inputs.path.partition("?")
    environ = EnvironBuilder(method=inputs.method, path=path, query_string=query or None,
                             headers=list(inputs.headers),
                             environ_base={"REMOTE_ADDR": inputs.remote_addr}).get_environ()
    values = {
        "claims": dict(inputs.claims), "token": token_variable(identity),
        "identity": base_identity(identity), "cert": cert_variable(identity), "api": inputs.api,
        "request": request_variable(environ, Request(environ)), "session": session_variable(None),
        "limits": limits_variable(()),
        "now": now_variable(inputs.now if inputs.now is not None else clock()),
    }
    return {name: engine.convert(value) for name, value in values.items()}


def evaluate(engine: Engine, source: str, values: dict[str, Any]) -> tuple[bool, str]:
    """(ok, text): the value in CEL syntax, or the compile or evaluation error."""
    try:
        program = engine.compile(source, shapes=declared_shapes())
    except CompileError as exc:
        return False, f"compile error at {exc.line}:{exc.column}: {exc.message}"
    try:
        return True, cel_text(program.evaluate(values))
    except EvalError as exc:
        return False, f"error: {exc.message}"


def repl(engine: Engine, values: dict[str, Any], stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Evaluate each line of ``stdin``; a prompt when it is a terminal. Exit 1 if any failed."""
    interactive = stdin.isatty()
    failed = False
    while True:
        if interactive:
            stdout.write("cel> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        if not line.strip() or line.strip().startswith("#"):
            continue
        ok, text = evaluate(engine, line.strip(), values)
        failed |= not ok
        stdout.write(text + "\n")
    if interactive:
        stdout.write("\n")
    return 1 if failed else 0


def parse_now(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ConfigError(f"--now: expected an RFC 3339 time, got {text!r}") from None
