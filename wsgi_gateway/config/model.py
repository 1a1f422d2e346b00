"""The typed, frozen configuration. Every key a user can write is a field here.

The README's configuration reference follows this file; keep them together.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .limits import LimitsConfig, SessionsConfig
from .policies import PolicyConfig
from .providers import ProviderConfig
from .secrets import Secret, resolve_secret
from .typed import Invalid, Where, parsed
from .units import parse_duration

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _duration(**kw) -> Any:
    return field(metadata={"parse": parsed(parse_duration)}, **kw)


def _secret(node: object, where: Where) -> Secret:
    return resolve_secret(node, where.base_dir)


def _host_port(value: object) -> tuple[str, int]:
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", value) if isinstance(value, str) else None
    if not match or not 0 < int(match[2]) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return match[1], int(match[2])


def _servers(node: object, where: Where) -> tuple[tuple[str, int], ...]:
    if isinstance(node, str):
        node = [node]
    if not isinstance(node, list):
        raise ValueError("expected a list of host:port")
    return tuple(_host_port(item) for item in node)


@dataclass(frozen=True)
class StoreConfig:
    """Where sessions and counters live.

    ``memory`` is embedded and per process (the demo default: each gunicorn worker has
    its own); ``memcached`` is shared by every worker and host. Several ``servers`` form
    one consistent-hash cluster (pymemcache's rendezvous hashing).
    """

    backend: Literal["memory", "memcached"] = "memory"
    servers: tuple[tuple[str, int], ...] = field(default=(), metadata={"parse": _servers})
    namespace: str = "gw"              # prefix of every key, so gateways can share a memcached
    connect_timeout: float = _duration(default=0.1)  # loopback/LAN memcached answers in <1 ms
    timeout: float = _duration(default=0.1)          # per operation
    retry_after: float = _duration(default=1.0)      # a failed server is skipped this long
    max_items: int = 100_000           # memory backend: bound, least recently used evicted

    def __post_init__(self):
        if self.backend == "memcached" and not self.servers:
            raise ValueError("backend memcached needs servers: [host:port, ...]")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.namespace):
            raise ValueError("namespace: 1-32 of A-Z a-z 0-9 _ . -")
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")


@dataclass(frozen=True)
class UpstreamConfig:
    """Where an API's requests go. Today ``app`` (the wrapped WSGI app); URLs come later."""

    kind: Literal["app"] = "app"
    target: str = ""


def _upstream(node: object, where: Where) -> UpstreamConfig:
    if node == "app":
        return UpstreamConfig("app")
    if isinstance(node, str) and re.match(r"https?://", node):
        raise ValueError("URL upstreams (reverse proxy) are not supported yet; use 'app'")
    raise ValueError(f"expected 'app', got {node!r}")


@dataclass(frozen=True)
class AuthMethodConfig:
    """One entry of an API's ``auth`` list: the method id and its typed options."""

    method: str
    options: Any = None


def _auth_methods(node: object, where: Where) -> tuple[AuthMethodConfig, ...]:
    from ..authn.registry import parse_method

    if not isinstance(node, list) or not node:
        raise ValueError("expected a non-empty list of methods, e.g. [keyless]")
    return tuple(parse_method(item, where.key(node, i)) for i, item in enumerate(node))


@dataclass(frozen=True)
class ApiConfig:
    """One API: requests under ``path`` belong to it."""

    name: str
    path: str
    upstream: UpstreamConfig = field(default=UpstreamConfig(), metadata={"parse": _upstream})
    auth: tuple[AuthMethodConfig, ...] = field(
        default=(AuthMethodConfig("keyless"),), metadata={"parse": _auth_methods})
    auth_mode: Literal["any", "all"] = "any"  # any: the first method with a credential decides;
    #                                           all: every method must succeed
    identity_from: str | None = None   # with auth_mode all: the method whose identity counts
    rules: str | None = None           # a CEL rule file (rules/…yaml), relative to this config
    strip_auth: bool = True            # the upstream never sees the client's credentials
    segregate_by_client: bool = False  # one session per identity *and* client ID
    default_policy: str | None = None  # applied when the rules assign none (or there are none)
    drop_headers: tuple[str, ...] = () # client headers never forwarded (e.g. X-Forwarded-User)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ValueError(f"name {self.name!r}: 1-64 of A-Z a-z 0-9 _ . -")
        methods = [m.method for m in self.auth]
        if self.identity_from is not None and self.identity_from not in methods:
            raise ValueError(f"identity_from {self.identity_from!r} is not one of the API's "
                             f"methods ({', '.join(methods)})")
        if self.auth_mode == "all" and "keyless" in methods:
            raise ValueError("auth_mode all cannot include keyless (it proves nothing)")
        if not self.path.startswith("/") or "//" in self.path or "/./" in self.path + "/" \
                or "/../" in self.path + "/":
            raise ValueError(f"path {self.path!r} must start with / and be normalised")


@dataclass(frozen=True)
class RoutingConfig:
    """What happens to a request that matches no API's path."""

    unmatched: Literal["not_found", "pass"] = "not_found"  # pass = straight to the app, unauthenticated


@dataclass(frozen=True)
class RequestIdConfig:
    """Request IDs: taken from ``header`` when well-formed and trusted, else generated."""

    header: str = "X-Request-Id"
    trust_incoming: bool = True


@dataclass(frozen=True)
class LoggingConfig:
    """One logging setup for the gateway and its request log."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True            # one line per request


@dataclass(frozen=True)
class OpsConfig:
    """Reserved paths (health, ready) under ``prefix``: never routed, never limited."""

    prefix: str = "/.gateway/"

    def __post_init__(self):
        if not re.fullmatch(r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*/", self.prefix):
            raise ValueError(f"prefix {self.prefix!r} must look like /.gateway/")


def _server(node: object, where: Where) -> Mapping[str, Any]:
    """gunicorn settings by their gunicorn names, checked by gunicorn's own validators."""
    from gunicorn.config import Config

    if not isinstance(node, dict):
        raise ValueError("expected a mapping of gunicorn settings (bind, workers, ...)")
    probe, out = Config(), {}
    for key, value in node.items():
        sub = where.key(node, key)
        if key not in probe.settings or key in _SERVER_FORBIDDEN:
            hint = difflib.get_close_matches(str(key), list(probe.settings), n=1)
            sub.problem("not a gunicorn setting the gateway accepts" + (
                f" ({_SERVER_FORBIDDEN[key]})" if key in _SERVER_FORBIDDEN
                else f" (did you mean {hint[0]!r}?)" if hint else ""))
            continue
        try:
            probe.set(key, value)
        except (ValueError, TypeError) as exc:
            sub.problem(f"invalid value: {exc}")
            continue
        out[key] = value
    if len(out) != len(node):
        raise Invalid
    return MappingProxyType(out)


_SERVER_FORBIDDEN = {
    "wsgi_app": "give the app as the top-level 'app' key or --app",
    "config": "this file is the configuration",
}


@dataclass(frozen=True)
class CelConfig:
    """Which CEL engine evaluates the rules, and the bounds of one evaluation
    (defaults and meaning: ``wsgi_gateway.cel.limits``)."""

    engine: Literal["cel-python", "cel-cpp"] = "cel-python"  # cel-cpp: pip install 'wsgi-gateway[fast-cel]'
    cost_limit: int = 2_000_000    # static worst-case cost a rule may have; over it, refused at load
    timeout: float = _duration(default=0.5)  # run-time bound of one cel-python evaluation

    def __post_init__(self) -> None:
        if self.cost_limit <= 0 or self.timeout <= 0:
            raise ValueError("cel.cost_limit and cel.timeout must be positive")

    def limits(self):
        """The :class:`~wsgi_gateway.cel.limits.CelLimits` these settings give."""
        from ..cel.limits import CelLimits

        return CelLimits(cost_limit=self.cost_limit, timeout=self.timeout)


@dataclass(frozen=True)
class GatewayConfig:
    """The whole configuration, as loaded from one file."""

    source: Path = field(default=Path("<defaults>"), metadata={"internal": True})
    server: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, metadata={"parse": _server})
    app: str | None = None              # module:callable of the wrapped WSGI app
    store: StoreConfig = StoreConfig()
    apis: tuple[ApiConfig, ...] = ()
    routing: RoutingConfig = RoutingConfig()
    request_id: RequestIdConfig = RequestIdConfig()
    logging: LoggingConfig = LoggingConfig()
    ops: OpsConfig = OpsConfig()
    secret_key: Secret | None = field(default=None, metadata={"parse": _secret})
    providers: tuple[ProviderConfig, ...] = ()  # trusted token issuers (JWT / OIDC)
    policies: Mapping[str, PolicyConfig] = field(default_factory=lambda: _EMPTY)
    cel: CelConfig = CelConfig()
    limits: LimitsConfig = LimitsConfig()
    sessions: SessionsConfig = SessionsConfig()

    def provider(self, name: str) -> ProviderConfig:
        """The provider called ``name``; KeyError when there is none."""
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)
