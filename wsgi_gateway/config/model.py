"""The typed, frozen configuration. Every key a user can write is a field here.

Each field's meaning is its attribute docstring (the string on the line after it):
docs/reference/configuration.md is generated from them (contrib/docs_reference.py), and
tests/test_docs.py fails when a field has none or the committed page is stale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .headers import ClientHeadersConfig
from .limits import LimitsConfig, SessionsConfig, StoreFailureConfig
from .observe import AuditConfig, MetricsConfig, TracingConfig
from .policies import PolicyConfig
from .providers import ProviderConfig
from .secrets import Secret, resolve_secret
from .typed import Invalid, Where, did_you_mean, parsed
from .upstream import UpstreamConfig, parse_upstream
from .units import parse_duration

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _duration(**kw) -> Any:
    return field(metadata={"parse": parsed(parse_duration)}, **kw)


MIN_SECRET_KEY = 32  # bytes: an HMAC-SHA256 key as long as its output (RFC 2104 §3)


def _secret_key(node: object, where: Where) -> Secret:
    secret = resolve_secret(node, where.base_dir)
    if len(secret.reveal()) < MIN_SECRET_KEY:
        raise ValueError(f"{secret.source} has {len(secret.reveal())} bytes; a secret key needs "
                         f"at least {MIN_SECRET_KEY} (e.g. python3 -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))')")
    return secret


def _secret_keys(node: object, where: Where) -> tuple[Secret, ...]:
    if not isinstance(node, list):
        raise ValueError("expected a list of secrets ({env: NAME} or {file: PATH})")
    secrets, ok = [], True
    for i, item in enumerate(node):
        try:
            secrets.append(_secret_key(item, where.key(node, i)))
        except ValueError as exc:  # named by index: the operator has several
            where.key(node, i).problem(str(exc))
            ok = False
    if not ok:
        raise Invalid
    return tuple(secrets)


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


def _revocations_file(node: object, where: Where) -> str:
    """The durable revocations file (relative to the config); its directory must exist,
    the file is created by the first ``sessions revoke`` / ``keys revoke``."""
    path = where.config_path(node)
    if not path.parent.is_dir():
        raise ValueError(f"the directory of revocations_file {node!r} does not exist")
    return str(path)


@dataclass(frozen=True)
class StoreConfig:
    """Where sessions and counters live.

    ``memory`` is embedded and per process (the demo default: each gunicorn worker has
    its own); ``memcached`` is shared by every worker and host. Several ``servers`` form
    one consistent-hash cluster (pymemcache's rendezvous hashing).
    """

    backend: Literal["memory", "memcached"] = "memory"
    """memory: embedded, per process (each gunicorn worker has its own; the demo default).
    memcached: shared by every worker and host.
    """
    servers: tuple[tuple[str, int], ...] = field(default=(), metadata={"parse": _servers})
    """[host:port, ...], required for memcached; several servers form one consistent-hash
    cluster. IPv6 as [::1]:11211.
    """
    namespace: str = "gw"
    """Prefix of every key, so several gateways can share a memcached."""
    connect_timeout: float = _duration(default=0.1)
    """Per connection attempt (a loopback or LAN memcached answers in under 1 ms)."""
    timeout: float = _duration(default=0.1)
    """Per store operation."""
    retry_after: float = _duration(default=1.0)
    """After a failure a server is left alone this long: calls fail at once instead of each
    waiting for a timeout (a circuit breaker per worker thread).
    """
    max_items: int = 100_000
    """Memory backend only: the bound; least recently used entries go first."""
    on_failure: StoreFailureConfig = StoreFailureConfig()
    """Per concern, open (serve and log) or closed (503 with Retry-After) while the store
    fails.
    """
    revocations_file: str | None = field(default=None, metadata={"parse": _revocations_file})
    """A file (relative to the config; its directory must exist) where sessions revoke and
    keys revoke also append revocations, so they survive a restart of every memcached.
    """

    def __post_init__(self):
        if self.backend == "memcached" and not self.servers:
            raise ValueError("backend memcached needs servers: [host:port, ...]")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.namespace):
            raise ValueError("namespace: 1-32 of A-Z a-z 0-9 _ . -")
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")


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
    """1-64 of A-Za-z0-9_.-, unique: names the API in logs, policies and rules (the api
    variable).
    """
    path: str
    """Path prefix, matched at segment boundaries (/v1/orders takes /v1/orders/7, not
    /v1/ordersX); the longest match wins. Unique; may not overlap the ops prefix.
    """
    upstream: UpstreamConfig = field(default=UpstreamConfig(), metadata={"parse": parse_upstream})
    """Where requests go: app (the wrapped WSGI app), an http(s):// URL, or a mapping with
    targets and the options below.
    """
    auth: tuple[AuthMethodConfig, ...] = field(
        default=(AuthMethodConfig("keyless"),), metadata={"parse": _auth_methods})
    """Authentication methods, tried in order: a method id, or {method: ID, ...options} (see
    the auth[...] sections). The first that recognises a credential decides; a bad
    credential fails the request and does not fall through.
    """
    auth_mode: Literal["any", "all"] = "any"
    """any: the first method that recognises a credential decides; all: every method must
    succeed.
    """
    identity_from: str | None = None
    """With auth_mode all: the method whose identity counts (default: the first)."""
    rules: str | None = None
    """A CEL rule file, relative to this config."""
    strip_auth: bool = True
    """Remove the client's credentials (Authorization and the methods' own headers) before
    the upstream.
    """
    segregate_by_client: bool = False
    """One session per identity and client ID (otherwise per identity)."""
    default_policy: str | None = None
    """The policy applied when the rules assign none (or there are no rules)."""
    drop_headers: tuple[str, ...] = ()
    """Client headers never forwarded, e.g. [X-Corp-Role]; like every strip list it applies
    to the whole gateway.
    """

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

    unmatched: Literal["not_found", "pass"] = "not_found"
    """A path no API takes: not_found (404 problem) or pass (straight to the app,
    unauthenticated: use with care). Passed requests still lose every stripped header.
    """


def _trust_incoming(node: object, where: Where) -> str:
    if node is True or node is False:  # the old boolean spelling
        return "always" if node else "never"
    if node not in ("trusted_proxies", "always", "never"):
        raise ValueError(f"expected trusted_proxies, always or never, got {node!r}")
    return node


@dataclass(frozen=True)
class RequestIdConfig:
    """Request IDs: taken from ``header`` when well-formed and trusted, else generated.

    ``trust_incoming``: ``trusted_proxies`` (default) believes the ID only from a peer in
    ``client_headers.trusted_proxies``; ``always`` from anyone (a client can then choose
    the ID written in the logs); ``never`` always generates one.
    """

    header: str = "X-Request-Id"
    """The request ID header, in (when trusted) and out, and passed upstream under the same
    name.
    """
    trust_incoming: Literal["trusted_proxies", "always", "never"] = field(
        default="trusted_proxies", metadata={"parse": _trust_incoming})
    """Whose incoming ID is accepted (when it is 1-128 of A-Za-z0-9._:-): trusted_proxies,
    always (a client then picks the ID your logs show) or never; true/false still mean
    always/never. Otherwise 128 random bits, hex.
    """


@dataclass(frozen=True)
class LoggingConfig:
    """One logging setup for the gateway and its request log."""

    format: Literal["text", "json"] = "text"
    """text (key=value) or json (one object per line, gunicorn's own lines included)."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level written."""
    access_log: bool = True
    """One line per request."""


@dataclass(frozen=True)
class OpsConfig:
    """Reserved paths (health, ready) under ``prefix``: never routed, never limited."""

    prefix: str = "/.gateway/"
    """The reserved prefix of health and ready; never routed, never limited."""

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
            sub.problem("not a gunicorn setting the gateway accepts" + (
                f" ({_SERVER_FORBIDDEN[key]})" if key in _SERVER_FORBIDDEN
                else did_you_mean(key, probe.settings)))
            continue
        try:
            probe.set(key, value)
        except (ValueError, TypeError) as exc:
            sub.problem(_server_value_problem(probe.settings[key], value, exc))
            continue
        out[key] = value
    if len(out) != len(node):
        raise Invalid
    return MappingProxyType(out)


# What gunicorn's validators expect, in words: their own messages are Python's
# ("invalid literal for int() with base 0: 'two'", "'int' object is not iterable").
_SERVER_EXPECTED = {
    "validate_pos_int": "a whole number (0 or more)",
    "validate_bool": "true or false",
    "validate_string": "a string",
    "validate_list_string": "a string or a list of strings",
    "validate_string_to_addr_list": "an address (host:port or unix:PATH) or a list of them",
    "validate_string_to_list": "a string or a list of strings",
    "validate_dict": "a mapping",
}


def _server_value_problem(setting: Any, value: object, exc: Exception) -> str:
    expected = _SERVER_EXPECTED.get(getattr(setting.validator, "__name__", ""))
    if expected is None:
        return f"invalid value: {exc}"
    shown = f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)
    return f"expected {expected}, got {shown}"


_SERVER_FORBIDDEN = {
    "wsgi_app": "give the app as the top-level 'app' key or --app",
    "config": "this file is the configuration",
}


@dataclass(frozen=True)
class CelConfig:
    """Which CEL engine evaluates the rules, and the bounds of one evaluation
    (defaults and meaning: ``wsgi_gateway.cel.limits``)."""

    engine: Literal["cel-python", "cel-cpp"] = "cel-python"
    """cel-python, or cel-cpp (pip install 'wsgi-gateway[fast-cel]')."""
    cost_limit: int = 2_000_000
    """The largest static worst-case cost a rule may have (Kubernetes-style units: 1 per
    node, 0.1 per character, 1 per list element), estimated at load from the declared
    input bounds; a rule over it is refused with file:line.
    """
    timeout: float = _duration(default=0.5)
    """Run-time bound of one cel-python evaluation, read at every comprehension step
    (cel-cpp cannot be interrupted from Python: the static cost is its bound).
    """

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
    """gunicorn settings by their gunicorn names (bind, workers, worker_class, threads,
    timeout, keepalive, certfile, ...), each checked by gunicorn's own validator at load;
    wsgi_app and config are refused. Default: bind 127.0.0.1:8000, 2 workers, and
    gunicorn's per-user control socket off (control_socket_disable: true) so two gateways
    on a host do not collide.
    """
    app: str | None = None
    """module:callable of the wrapped WSGI app (module:factory() calls a factory); --app
    overrides it.
    """
    store: StoreConfig = StoreConfig()
    """Where sessions, counters, API key records and revocations live."""
    apis: tuple[ApiConfig, ...] = ()
    """The APIs: a request belongs to the API with the longest matching path prefix."""
    routing: RoutingConfig = RoutingConfig()
    """What happens to a request no API takes."""
    client_headers: ClientHeadersConfig = ClientHeadersConfig()
    """Which client headers never reach an upstream, and which proxies to believe."""
    request_id: RequestIdConfig = RequestIdConfig()
    """The request ID: which header, and whose incoming value to believe."""
    logging: LoggingConfig = LoggingConfig()
    """Log format and level for the gateway, its request log and gunicorn."""
    ops: OpsConfig = OpsConfig()
    """The reserved paths of health and readiness."""
    # keys the digests that name credentials in the store (API key records, the
    # introspection cache): see authn/digests.py. previous_secret_keys: still accepted
    # on lookup after a rotation, never used for new records.
    secret_key: Secret | None = field(default=None, metadata={"parse": _secret_key})
    """Keys the HMAC digests that name credentials in the store (API key records, the
    introspection cache), {env: NAME} or {file: PATH}, at least 32 bytes. Without it they
    are plain SHA-256 and check warns when memcached holds them.
    """
    previous_secret_keys: tuple[Secret, ...] = field(default=(), metadata={"parse": _secret_keys})
    """Earlier secret_keys, still accepted when a stored API key is checked, never used for
    new records: the rotation list. Needs secret_key.
    """
    providers: tuple[ProviderConfig, ...] = ()
    """Trusted token issuers (JWT / OpenID Connect)."""
    policies: Mapping[str, PolicyConfig] = field(default_factory=lambda: _EMPTY)
    """Named policies (rate, quota, access) that rule files and default_policy assign."""
    cel: CelConfig = CelConfig()
    """The CEL engine and the bounds of one rule evaluation."""
    limits: LimitsConfig = LimitsConfig()
    """How rate limits and quotas are counted and announced."""
    sessions: SessionsConfig = SessionsConfig()
    """Session records per identity: caching, last use, revocation."""
    metrics: MetricsConfig = MetricsConfig()
    """Prometheus metrics: off by default; the path, who may scrape it, the multiprocess directory."""
    audit: AuditConfig = AuditConfig()
    """The decision audit log: one JSON line per decision, its file, sampling and listed claims."""
    tracing: TracingConfig = TracingConfig()
    """W3C trace context: accepted from trusted proxies, else generated, passed upstream."""

    def __post_init__(self):
        if self.previous_secret_keys and self.secret_key is None:
            raise ValueError("previous_secret_keys needs a secret_key (the current one)")

    def provider(self, name: str) -> ProviderConfig:
        """The provider called ``name``; KeyError when there is none."""
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)
