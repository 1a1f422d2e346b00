"""build_app: the gateway's middleware stack, assembled from config in one readable order.

    RequestContext → Trace → Metrics path → Ops → Router → per API:
        Authenticate → Sessions → Rules → Limits → LimitHeaders → Mutate → upstream

LimitHeaders (only for rule files whose headers read `limits`) evaluates those headers
after Limits has counted; no layer calls back into an earlier one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .authn.base import Authenticator
from .authn.credentials import CredentialPlaces
from .authn.registry import get_method
from .config.model import ApiConfig, GatewayConfig
from .errors import ConfigError, StoreError
from .middleware import (
    AllowAll, Authenticate, Limits, Mutate, OpsEndpoints, RequestContextMiddleware,
    Router, Rules,
)
from .limits.limiter import StoreLimiter
from .limits.sessions import Sessions
from .middleware.limit_headers import LimitHeaders
from .middleware.sessions import SessionLayer
from .mutate.strip import ClientHeaderStrip, TrustedProxies
from .observe import build_observer
from .observe.endpoint import MetricsEndpoint, StageMark
from .observe.trace import TraceMiddleware
from .store import Store, build_store
from .upstream import ReverseProxy, load_app


@dataclass(frozen=True)
class BuildContext:
    """What a layer may need while it is built: the config, store, clock, and
    resources shared by every API (a provider's key set is fetched once, not per API)."""

    config: GatewayConfig
    store: Store
    clock: Callable[[], float]
    resources: dict = field(default_factory=dict)
    strip: ClientHeaderStrip = field(default_factory=ClientHeaderStrip)

    def shared(self, key: object, make: Callable[[], object]):
        """The resource under ``key``, made on first request."""
        if key not in self.resources:
            self.resources[key] = make()
        return self.resources[key]


@dataclass(frozen=True)
class ApiRuntime:
    """One API as built: its config, authenticators and rule set (for explain, tests)."""

    config: ApiConfig
    authenticators: tuple[Authenticator, ...]
    rules: object
    proxy: ReverseProxy | None = None  # a URL upstream's proxy; None for the wrapped app


class Gateway:
    """The assembled gateway: a WSGI app, plus what operators ask of it.

    Build it with :func:`build_app`. ``ready_reasons()`` backs ``/.gateway/ready``.
    """

    def __init__(self, config: GatewayConfig, stack: Callable, store: Store,
                 apis: dict[str, ApiRuntime], router: Router):
        self.config = config
        self.store = store
        self.apis = apis
        self.router = router
        self.authenticators = [a for api in apis.values() for a in api.authenticators]
        self.warnings: list[str] = []
        self.rule_files: dict = {}  # path -> compiled RuleFile
        self.resources: dict = {}   # what every API shares (key sets, ...), closed with it
        self.observer = None        # metrics and the audit log (observe.Observer), or None
        self._stack = stack

    def __call__(self, environ, start_response):
        return self._stack(environ, start_response)

    def ready_reasons(self) -> list[str]:
        """Why the gateway cannot serve yet; empty when it can."""
        return ready_reasons(self.store, self.authenticators, _ready_proxies(self.apis))

    def warm(self) -> None:
        """Load what serving needs (key sets) before the first request; bounded waits."""
        for authenticator in self.authenticators:
            warm = getattr(authenticator, "warm", None)
            if warm is not None:
                warm()

    def close(self) -> None:
        """Stop background work (key set refresh threads), release the store's and the
        upstreams' connections."""
        for resource in self.resources.values():
            close = getattr(resource, "close", None)
            if callable(close):
                close()
        self.store.close()
        if self.observer is not None:
            self.observer.close()
        for api in self.apis.values():
            if api.proxy is not None:
                api.proxy.pools.close()


def build_app(config: GatewayConfig, upstream: Callable | None = None, *,
              store: Store | None = None, clock: Callable[[], float] = time.time,
              rule_files: dict | None = None) -> Gateway:
    """The gateway for ``config``, wrapping ``upstream`` (else the config's ``app``).

    ``rule_files``: rule files already compiled (``Gateway.rule_files`` of an earlier
    build), used instead of reading the files again: gunicorn workers start with the
    set the master checked, even if a file changed on disk since.
    Raises ConfigError when anything cannot be loaded.
    """
    if upstream is None and (config.app or _needs_app(config)):
        if not config.app:
            raise ConfigError(f"{config.source}: app: no WSGI app given (set 'app' or pass --app)")
        upstream = load_app(config.app, f"{config.source}: app")
    trusted = TrustedProxies(config.client_headers.trusted_proxies)
    build = BuildContext(config, store or build_store(config.store, clock=clock), clock,
                         strip=_client_header_strip(config, trusted))
    build.resources.update({("rules", path): rules for path, rules in (rule_files or {}).items()})
    apis: dict[str, ApiRuntime] = {}
    routes = []
    problems: list[str] = []
    for api in config.apis:
        try:
            api_app, apis[api.name] = _api_stack(api, upstream, build)
        except ConfigError as err:  # report every API's faults, not just the first
            problems.extend(p for p in err.problems if p not in problems)
            continue
        routes.append((api.path, api.name, api_app))
    if problems:
        raise ConfigError(problems)
    build.strip.seal()  # every API registered what it injects: one set for every route
    unmatched = None
    if config.routing.unmatched == "pass":  # unauthenticated, but never with identity headers
        unmatched = Mutate(upstream, strip_auth=False, strip=build.strip)
    router = Router(routes, unmatched=unmatched)
    authenticators = [a for api in apis.values() for a in api.authenticators]
    warnings = _lint(config, apis)
    proxies = _ready_proxies(apis)
    ops = OpsEndpoints(router, prefix=config.ops.prefix,
                       readiness=lambda: ready_reasons(build.store, authenticators, proxies))
    flows = build.resources.get("oidc_login_flows")
    if flows:  # browser login's reserved paths (login, callback, logout, ...)
        from .authn.oidc_login.routes import LoginRoutes

        ops = LoginRoutes(ops, flows=flows)
    observer = build_observer(config, clock=clock)
    if observer is not None and observer.metrics is not None:
        ops = MetricsEndpoint(ops, path=config.ops.prefix + config.metrics.path,
                              allow=TrustedProxies(config.metrics.allow),
                              directory=observer.metrics.directory, flush=observer.flush)
    if config.tracing.enabled:
        otel = config.tracing.otel
        ops = TraceMiddleware(ops, trusted=trusted, sample=otel.sample if otel.enabled else 0.0)
    trust_id = {"always": True, "never": False}.get(config.request_id.trust_incoming, trusted)
    stack = RequestContextMiddleware(
        ops, request_id_header=config.request_id.header,
        trust_incoming=trust_id, access_log=config.logging.access_log, observe=observer)
    gateway = Gateway(config, stack, build.store, apis, router)
    gateway.observer = observer
    if observer is not None and observer.metrics is not None:  # key sets, introspection
        observer.metrics.sources = [r for r in build.resources.values() if hasattr(r, "fetch_stats")]
    gateway.warnings = warnings
    gateway.resources = build.resources
    gateway.rule_files = {k[1]: v for k, v in build.resources.items() if k[0] == "rules"}
    return gateway


def _lint(config: GatewayConfig, apis: dict[str, "ApiRuntime"]) -> list[str]:
    """Warnings about rules and policies that load but are probably wrong."""
    from .policy.evaluate import CelRuleSet
    from .policy.lint import lint_policies, lint_rule_file

    warnings: list[str] = []
    assignable = {api.config.default_policy for api in apis.values()} - {None}
    seen = set()
    for api in apis.values():
        if isinstance(api.rules, CelRuleSet) and api.rules.rules.path not in seen:
            seen.add(api.rules.rules.path)
            warnings.extend(lint_rule_file(api.rules.rules, config.cel.engine))
            assignable |= api.rules.rules.policies
    warnings.extend(lint_policies(config.policies, assignable))
    return warnings


def _client_header_strip(config: GatewayConfig, trusted: TrustedProxies) -> ClientHeaderStrip:
    """The gateway-wide strip list, before the APIs add what they inject."""
    extra = [*config.client_headers.strip, *(h for api in config.apis for h in api.drop_headers)]
    if config.sessions.header:  # even with sessions off: no client may forge it
        extra.append(config.sessions.header)
    return ClientHeaderStrip(extra=extra, defaults=config.client_headers.default_names(),
                             trusted=trusted)


def _rate_keys(build: BuildContext) -> dict:
    """The policies' rate_key expressions, compiled once per gateway."""
    def make():
        from .limits.keys import RateKey
        from .cel import get_engine

        keys = {}
        for name, policy in build.config.policies.items():
            if policy.rate_key and policy.rate_key not in keys:
                keys[policy.rate_key] = RateKey(policy.rate_key, get_engine(build.config.cel.engine),
                                                f"{build.config.source}: policies.{name}.rate_key")
        return keys
    return build.shared("rate_keys", make)


def _rule_set(api: ApiConfig, build: BuildContext):
    """The API's rules: its compiled rule file, or allow-all without one."""
    if api.rules is None:
        return AllowAll(api.default_policy, build.config.policies, api.name)
    from .cel import get_engine
    from .policy.evaluate import CelRuleSet
    from .policy.rulefile import load_rule_file

    engine = get_engine(build.config.cel.engine)
    path = (build.config.source.parent / api.rules).resolve()
    rules = build.shared(("rules", str(path)),
                         lambda: load_rule_file(path, engine, set(build.config.policies),
                                                 build.config.cel.limits()))
    return CelRuleSet(rules, engine, api.name, build.config.policies, clock=build.clock,
                      default_policy=api.default_policy)


def _needs_app(config: GatewayConfig) -> bool:
    """Whether any route goes to the wrapped app (an API without URL targets, or pass)."""
    return config.routing.unmatched == "pass" or any(
        api.upstream.kind == "app" for api in config.apis) or not config.apis


def _ready_proxies(apis: dict[str, "ApiRuntime"]) -> list[ReverseProxy]:
    """The URL upstreams whose API asked to be part of readiness (``upstream.ready``)."""
    return [api.proxy for api in apis.values() if api.proxy is not None and api.config.upstream.ready]


def ready_reasons(store: Store, authenticators: list[Authenticator],
                  proxies: list[ReverseProxy] = ()) -> list[str]:
    """Why the gateway cannot serve yet (store, key sets, upstreams); empty when it can."""
    reasons = [f"upstream of {p.api}: every target failing" for p in proxies
               if p.targets.all_down()]
    try:
        store.ping()
    except StoreError:
        reasons.append("store unavailable")
    for authenticator in authenticators:
        reason = authenticator.ready()
        if reason:
            reasons.append(f"{authenticator.id}: {reason}")
    return reasons


def _api_stack(api: ApiConfig, upstream: Callable, build: BuildContext):
    """One API's layers around the upstream, innermost first."""
    authenticators = [get_method(m.method).factory(m.options, build, api) for m in api.auth]
    places = CredentialPlaces()
    for authenticator in authenticators:
        places = places | authenticator.credentials
    config = build.config
    # a 401 from rules or a revoked session challenges like the API's methods do
    challenges = [a.challenge for a in authenticators if a.challenge] or [f'Bearer realm="{api.name}"']
    rules = _rule_set(api, build)
    sessions = build.shared("sessions", lambda: Sessions(
        build.store, config.sessions, clock=build.clock, on_failure=config.store.on_failure,
        create_on_read=config.limits.quota_renewal == "first_use")) if config.sessions.enabled else None
    limiter = StoreLimiter(build.store, config.limits, api.name, config.policies,
                           default_policy=api.default_policy, clock=build.clock,
                           keys=_rate_keys(build), on_failure=config.store.on_failure,
                           sessions=sessions)
    # every header the gateway may inject anywhere is removed from every client request
    injected = [r.name for r in rules.rules.headers] if hasattr(rules, "rules") else []
    injected += [h for a in authenticators for h in getattr(a, "owned_headers", ())]
    build.strip.add(injected)
    proxy = ReverseProxy(api.name, api.path, api.upstream) if api.upstream.kind == "url" else None
    # one code path decides what reaches the upstream, whatever the upstream is
    timed = config.metrics.enabled or (config.tracing.enabled and config.tracing.otel.enabled)
    mark = StageMark if timed else (lambda app, stage: app)
    app = mark(Mutate(proxy or upstream, strip_auth=api.strip_auth, credentials=places,
                      strip=build.strip), "upstream")
    if getattr(rules, "reads_limits", False):  # header rules reading `limits`
        app = LimitHeaders(app, rules=rules)
    app = mark(Limits(app, limiter=limiter), "limits")
    app = mark(Rules(app, rules=rules, challenges=challenges), "rules")
    if sessions is not None:
        app = mark(SessionLayer(app, sessions=sessions, header=config.sessions.header,
                                challenges=challenges), "sessions")
    identity_from = None
    if api.identity_from is not None:  # a method name in the config → that authenticator's id
        identity_from = authenticators[[m.method for m in api.auth].index(api.identity_from)].id
    app = mark(Authenticate(app, authenticators=authenticators, segregate_by_client=api.segregate_by_client,
                            mode=api.auth_mode, identity_from=identity_from), "authn")
    return app, ApiRuntime(api, tuple(authenticators), rules, proxy)
