"""The users file of the ``basic`` method: user names, salted password hashes, claims.

A YAML file, written by ``wsgi-gateway users`` and readable by people::

    users:
      alice:
        hash: "scrypt:32768:8:1$<salt>$<hex>"   # werkzeug.security format
        groups: [ops]                            # every other key is a claim
        policies: [gold]

Hashes are werkzeug's (``generate_password_hash``: scrypt by default, pbkdf2 accepted),
so no other dependency is needed. Names and passwords are NFC-normalised (RFC 7617
``charset="UTF-8"``) and may not contain control characters; names may not contain
``:`` (RFC 7617 §2). Writes are atomic (a temporary file in the same folder, fsync,
rename), keep the file's mode, and are serialised between writers by a lock on the folder.
While serving, :class:`UsersTable` re-reads the file when it changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml
from werkzeug.security import generate_password_hash

from ..config.source import line_of, load_yaml
from ..errors import ConfigError

log = logging.getLogger("wsgi_gateway.authn")

DEFAULT_METHOD = "scrypt"       # werkzeug's default: scrypt:32768:8:1 (32 MiB, ~50-150 ms)
MAX_NAME = 256
MAX_PASSWORD = 1024
# A new password's minimum length. The basic method is single-factor, and NIST SP
# 800-63B-4 (§3.1.1.2) asks for at least 15 characters for a password used alone (8 only
# within multi-factor authentication): length, not composition rules, is what makes a
# password hard to guess. Checked where passwords are chosen (`users add`), not when a
# file is read, so an existing users file keeps working.
MIN_NEW_PASSWORD = 15
NEW_FILE_MODE = 0o600
FILE_CHECK_INTERVAL = 1.0    # seconds between two looks at the file while serving
HEADER = "# wsgi-gateway users file: written by `wsgi-gateway users`; hashes are werkzeug's\n"
_SCRYPT = re.compile(r"scrypt:(\d+):(\d+):(\d+)\$[^$]+\$[0-9a-f]+\Z")
_PBKDF2 = re.compile(r"pbkdf2:([a-z0-9_-]+):(\d+)\$[^$]+\$[0-9a-f]+\Z")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # exactly Unicode category Cc
_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class User:
    """One user: the password hash and the claims its identity carries."""

    name: str
    hash: str
    claims: Mapping[str, object] = field(default_factory=lambda: _EMPTY)

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies the users file grants (the ``policies`` claim)."""
        return tuple(self.claims.get("policies", ()))

    @property
    def method(self) -> str:
        """The hash's method and parameters, e.g. ``scrypt:32768:8:1``."""
        return self.hash.split("$", 1)[0]


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a user name (RFC 7617), or None."""
    if not 0 < len(name) <= MAX_NAME:
        return f"a user name has 1-{MAX_NAME} characters"
    if ":" in name:
        return "a user name may not contain ':' (RFC 7617)"
    if has_control(name):
        return "a user name may not contain control characters"
    if unicodedata.normalize("NFC", name) != name:
        return "a user name must be in Unicode NFC form"
    return None


def check_password(password: str) -> str | None:
    """Why ``password`` cannot be set, or None."""
    if not 0 < len(password) <= MAX_PASSWORD:
        return f"a password has 1-{MAX_PASSWORD} characters"
    if has_control(password):
        return "a password may not contain control characters (RFC 7617)"
    return None


def check_new_password(password: str) -> str | None:
    """Why ``password`` is not good enough to be chosen now, or None."""
    problem = check_password(password)
    if problem is None and len(password) < MIN_NEW_PASSWORD:
        problem = (f"a new password needs at least {MIN_NEW_PASSWORD} characters, this one has "
                   f"{len(password)}: the basic method is single-factor, and NIST SP 800-63B "
                   "asks for 15 or more for a password used alone (a passphrase of a few "
                   "words is fine)")
    return problem


def has_control(text: str) -> bool:
    """Any C0/C1 control character or DEL (RFC 5234 CTL, and Unicode Cc)."""
    return _CONTROL.search(text) is not None


def check_hash(value: object) -> str | None:
    """Why ``value`` is not a usable werkzeug password hash, or None."""
    if not isinstance(value, str):
        return "expected a werkzeug password hash (a string)"
    if match := _SCRYPT.match(value):
        n, r, p = map(int, match.groups())
        if n < 2 or n & (n - 1) or not 0 < r * p < 2**30 or 132 * n * r * p > 2**31:
            return "scrypt parameters out of range (n a power of two; at most 2 GiB)"
        return None
    if match := _PBKDF2.match(value):
        if match[1] not in hashlib.algorithms_available or int(match[2]) < 1:
            return f"unknown pbkdf2 digest {match[1]!r} or no iterations"
        return None
    return "not a werkzeug password hash (scrypt:N:R:P$salt$hex or pbkdf2:DIGEST:N$salt$hex)"


def load_users(path: Path) -> dict[str, User]:
    """The users in ``path``; a ConfigError naming file, line and key otherwise."""
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) - {"users"}:
        raise ConfigError(f"{path}:1: expected a mapping with one key, users")
    users = data.get("users") or {}
    if not isinstance(users, dict):
        raise ConfigError(f"{path}:{line_of(data, 'users')}: users: expected a mapping")
    problems, out = [], {}
    for name, entry in users.items():
        try:
            out[name] = _user(name, entry)
        except ValueError as exc:
            problems.append(f"{path}:{line_of(users, name)}: users.{name}: {exc}")
    if problems:
        raise ConfigError(problems)
    return out


def _user(name: object, entry: object) -> User:
    if not isinstance(name, str):
        raise ValueError("a user name must be a string (quote it)")
    if reason := check_name(name):
        raise ValueError(reason)
    if not isinstance(entry, dict) or "hash" not in entry:
        raise ValueError("expected a mapping with hash: and optional claims")
    if reason := check_hash(entry["hash"]):
        raise ValueError(f"hash: {reason}")
    claims = {k: _plain(v, f"{k}") for k, v in entry.items() if k != "hash"}
    if any(not isinstance(k, str) for k in claims):
        raise ValueError("claim names must be strings")
    for key in ("groups", "policies"):
        value = claims.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key}: expected a list of names")
    return User(name, entry["hash"], MappingProxyType(claims))


def _plain(value: object, where: str) -> object:
    """A JSON-like copy of a claim value (dates, binary, NaN are refused)."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"{where}: claims hold strings, numbers, booleans, lists and mappings")


def dump_users(users: Mapping[str, User]) -> str:
    """The file's text for ``users``, in their order."""
    body = {name: {"hash": u.hash, **_thawed(u.claims)} for name, u in users.items()}
    return HEADER + yaml.safe_dump({"users": body}, sort_keys=False, allow_unicode=True,
                                   default_flow_style=False, width=1000)


def _thawed(value):
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(v) for v in value]
    return value


def save_users(path: Path, users: Mapping[str, User]) -> None:
    """Replace ``path`` atomically: readers see the old file or the new one, never half."""
    path = Path(path)
    mode, owner = _mode_of(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dump_users(users))
            out.flush()
            os.fchmod(out.fileno(), mode)
            if owner and hasattr(os, "fchown"):
                _try(os.fchown, out.fileno(), *owner)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        _try(os.unlink, tmp)
        raise
    _fsync_dir(path.parent)


def _mode_of(path: Path) -> tuple[int, tuple[int, int] | None]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return NEW_FILE_MODE, None
    return st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the file's folder: one writer at a time, no lock file."""
    fd = os.open(Path(path).parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _existing(path: Path) -> dict[str, User]:
    return load_users(path) if Path(path).exists() else {}


def add_user(path: Path, name: str, password: str, *, claims: Mapping | None = None,
             method: str = DEFAULT_METHOD) -> bool:
    """Set ``name``'s password; True when the user is new.

    ``claims`` set those claims; an existing user keeps its other claims.
    """
    name = unicodedata.normalize("NFC", name)
    password = unicodedata.normalize("NFC", password)
    for reason in (check_name(name), check_password(password)):
        if reason:
            raise ValueError(reason)
    if "hash" in (claims or {}):
        raise ValueError("'hash' is not a claim name")
    hashed = generate_password_hash(password, method=method)  # slow: outside the lock
    with locked(path):
        users = _existing(path)
        old = users.get(name)
        merged = {**(old.claims if old else {}), **(claims or {})}
        users[name] = User(name, hashed,
                           MappingProxyType({k: _plain(v, k) for k, v in merged.items()}))
        save_users(path, users)
    return old is None


def remove_user(path: Path, name: str) -> bool:
    """Remove ``name``; False when there was no such user."""
    name = unicodedata.normalize("NFC", name)
    with locked(path):
        users = _existing(path)
        if users.pop(name, None) is None:
            return False
        save_users(path, users)
    return True


@dataclass(frozen=True)
class Snapshot:
    """One version of the users file. ``dummy`` is checked for unknown users, with the
    file's most common hash parameters, so they cost what a wrong password costs."""

    generation: int
    users: Mapping[str, User]
    dummy: str


def _snapshot(users: Mapping[str, User], generation: int) -> Snapshot:
    common = Counter(u.method for u in users.values()).most_common(1)
    method = common[0][0] if common else "scrypt:32768:8:1"
    return Snapshot(generation, users, f"{method}${secrets.token_hex(8)}${'0' * 128}")


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class UsersTable:
    """The users file as last read, re-read when it changes (looked at once per
    ``interval`` at most). A broken new version is logged and the last good one kept."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 interval: float = FILE_CHECK_INTERVAL):
        self.path, self.clock, self.interval = Path(path), clock, interval
        self._lock = threading.Lock()
        self._signature = _signature(self.path)
        self.current = _snapshot(load_users(self.path), 0)
        self._checked = clock()
        self._bad: tuple | None = ("unseen",)  # the signature of a broken version, logged once

    def refresh(self) -> Snapshot:
        """The current snapshot, after looking at the file if ``interval`` has passed."""
        now = self.clock()
        if now - self._checked >= self.interval:
            with self._lock:
                if now - self._checked >= self.interval:
                    self._checked = now
                    signature = _signature(self.path)
                    if signature not in (self._signature, self._bad):
                        self._reload(signature)
        return self.current

    def _reload(self, signature: tuple | None) -> None:
        try:
            users = load_users(self.path)
        except ConfigError as err:
            self._bad = signature
            log.error("basic: the users file is broken; the previous version stays: %s",
                      "; ".join(err.problems))
            return
        self._signature, self._bad = signature, ("unseen",)
        self.current = _snapshot(users, self.current.generation + 1)
        log.info("basic: users file %s reloaded (%d users)", self.path, len(users))
