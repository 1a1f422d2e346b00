"""``custom``: an authenticator of your own, by dotted path or by entry point.

    auth:
      - method: custom
        class: mypackage.auth:ServiceToken     # module:attribute, or
        entry_point: service-token             # a name in the wsgi_gateway.authenticators group
        options: {header: X-Service-Token}     # passed to the class as a mapping

The class is called once per API at start as ``cls(options, api=NAME, store=STORE,
clock=CLOCK)`` and must return an object with the Authenticator protocol
(``wsgi_gateway.authn.base``): ``id``, ``challenge``, ``credentials``,
``authenticate(request)`` and ``ready()``; it is checked when the gateway starts.

An exception raised inside ``authenticate`` is logged with the request ID and answered
503 (the gateway cannot decide), never a 500 with a trace; raising
``wsgi_gateway.errors.Unauthorized`` (or another GatewayError) answers that error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from ..context import peek_context
from ..errors import ConfigError, GatewayError, ServiceUnavailable
from ..identity import Identity
from ..upstream.app import load_app
from .credentials import CredentialPlaces
from .registry import Method, register

log = logging.getLogger("wsgi_gateway.authn")
ENTRY_POINT_GROUP = "wsgi_gateway.authenticators"


@dataclass(frozen=True)
class CustomOptions:
    """Options of the ``custom`` method."""

    entry_point: str | None = None
    """A name in the wsgi_gateway.authenticators entry-point group of an installed package
    (or give class).
    """
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Passed to the class's from_options, which validates them at load."""
    # ``class`` is a Python keyword: the loader maps the YAML key onto this field
    class_: str | None = field(default=None, metadata={"key": "class"})
    """module:attribute of the authenticator class (or give entry_point)."""

    def __post_init__(self):
        if (self.class_ is None) == (self.entry_point is None):
            raise ValueError("give exactly one of class (module:attribute) or entry_point")


class Guarded:
    """Wraps a custom authenticator so that its faults fail closed, never as a 500."""

    def __init__(self, inner, where: str):
        self.inner = inner
        self.where = where
        self.id = str(inner.id)
        self.challenge = getattr(inner, "challenge", None)
        self.credentials = getattr(inner, "credentials", None) or CredentialPlaces()

    def authenticate(self, request) -> Identity | None:
        try:
            identity = self.inner.authenticate(request)
        except GatewayError:
            raise
        except Exception:
            ctx = peek_context(request.environ)
            log.exception("custom authenticator %s failed request_id=%s", self.id,
                          ctx.request_id if ctx else "-")
            raise ServiceUnavailable("the request could not be authenticated now") from None
        if identity is not None and not isinstance(identity, Identity):
            log.error("custom authenticator %s returned %s, not an Identity", self.id,
                      type(identity).__name__)
            raise ServiceUnavailable("the request could not be authenticated now")
        return identity

    def ready(self) -> str | None:
        try:
            return self.inner.ready()
        except Exception:  # noqa: BLE001 - a broken probe means not ready
            return f"{self.id}: readiness check failed"

    def warm(self, timeout: float | None = None) -> None:
        warm = getattr(self.inner, "warm", None)
        if warm is not None:
            warm(timeout)


def _load_class(options: CustomOptions, where: str):
    if options.class_ is not None:
        return load_app(options.class_, where)  # imports module:attribute, checks callable
    found = entry_points(group=ENTRY_POINT_GROUP, name=options.entry_point)
    if not found:
        raise ConfigError(f"{where}: no entry point {options.entry_point!r} in the "
                          f"{ENTRY_POINT_GROUP} group (is the package installed?)")
    try:
        return next(iter(found)).load()
    except Exception as exc:  # noqa: BLE001 - any import fault is a config error
        raise ConfigError(f"{where}: entry point {options.entry_point!r} failed to load: {exc}") from None


def _build(options: CustomOptions, build, api) -> Guarded:
    where = f"{build.config.source}: apis[{api.name}].auth (custom)"
    cls = _load_class(options, where)
    try:
        inner = cls(dict(options.options), api=api.name, store=build.store, clock=build.clock)
    except Exception as exc:  # noqa: BLE001 - a constructor fault stops start-up, named
        raise ConfigError(f"{where}: {getattr(cls, '__name__', cls)} could not be created: "
                          f"{type(exc).__name__}: {exc}") from None
    missing = [name for name in ("id", "authenticate", "ready") if not hasattr(inner, name)]
    if missing:
        raise ConfigError(f"{where}: the authenticator lacks {', '.join(missing)} "
                          "(see wsgi_gateway.authn.base.Authenticator)")
    return Guarded(inner, where)


register(Method("custom", CustomOptions, _build))
