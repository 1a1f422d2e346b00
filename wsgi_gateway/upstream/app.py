"""The wrapped WSGI app, imported from a ``module:callable`` reference."""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.utils import ImportStringError, import_string

from ..errors import ConfigError


def load_app(ref: str, where: str = "app") -> Callable:
    """The WSGI callable named by ``module:attr`` (``module:factory()`` calls a factory).

    Raises ConfigError naming ``where`` when it cannot be imported or is not callable.
    """
    target, call = (ref[:-2], True) if ref.endswith("()") else (ref, False)
    try:
        obj = import_string(target)
    except ImportStringError as exc:
        raise ConfigError(f"{where}: cannot import {ref!r}: {exc.exception}") from None
    except Exception as exc:  # the module itself failed while importing
        raise ConfigError(f"{where}: importing {ref!r} failed: {type(exc).__name__}: {exc}") from None
    if call:
        obj = obj()
    if not callable(obj):
        raise ConfigError(f"{where}: {ref!r} is not a WSGI callable")
    return obj
