"""``oidc_login``: browser sessions signed in at an OpenID Connect provider.

An API lists it like any other method (``auth: [jwt, oidc_login]``): a request with
the session cookie is the session's user; a request without one is "not my
credential", and when no method found one, :meth:`login_prompt` turns a person's
navigation into the redirect to the provider (scripts keep the plain 401).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from types import MappingProxyType
from urllib.parse import quote

from cachetools import LRUCache

from ...config.model import ApiConfig
from ...context import context_of
from ...errors import ConfigError
from ...identity import Identity
from ..credentials import CredentialPlaces
from ..jwt.claims import claim_at, scopes_of
from ..jwt.method import key_source
from ..jwt.verify import Verifier
from ..registry import Method, register
from .client import OidcClient, ProviderUnavailable
from .login import LoginFlow
from .options import OidcLoginOptions
from .pending import PendingLogins
from .sealing import Sealer
from .sessions import BrowserSessions, Session

log = logging.getLogger("wsgi_gateway.oidc_login")


class OidcLoginAuthenticator:
    """The :class:`~wsgi_gateway.authn.base.Authenticator` for browser sessions."""

    id = "oidc_login"

    def __init__(self, flow: LoginFlow, provider, realm: str):
        self.flow, self.provider = flow, provider
        options = flow.options
        # a browser is redirected; a script gets 401 with a problem body and, as RFC 9110
        # §11.6.1 requires of every 401, a challenge: the "Cookie" scheme of
        # draft-broyer-http-cookie-auth (no registered scheme names a cookie session),
        # saying where to sign in and which cookie then carries the session
        self.challenge = (f'Cookie realm="{realm}", form-action="{flow.routes}login", '
                          f'cookie-name="{flow.cookie_name}"')
        self.credentials = CredentialPlaces(cookies=(options.cookie(), options.login_cookie))
        # no owned_headers: a forwarded token goes in ctx.upstream_headers, which replaces a
        # client's Authorization for that request; listing Authorization gateway-wide would
        # also strip it from APIs that pass it through (strip_auth: false)
        self._identities: LRUCache = LRUCache(maxsize=10_000)  # per session version
        self._lock = threading.Lock()

    def authenticate(self, request) -> Identity | None:
        session = self.flow.current(request)
        if session is None:
            return None  # no cookie, or an unknown / ended handle: start fresh
        self.flow.check_origin(request)
        if self.flow.options.forward_access_token:
            context_of(request.environ).upstream_headers["Authorization"] = \
                f"Bearer {session.tokens.access_token}"
        version = (session.key, session.tokens.access_expires, session.claims.get("iat"))
        with self._lock:
            identity = self._identities.get(version)
        if identity is None:
            identity = self.identity(session)
            with self._lock:
                self._identities[version] = identity
        return identity

    def login_prompt(self, request) -> None:
        """Raise the redirect to sign in for a navigation; return for a script (401)."""
        if self.flow.wants_page(request):
            query = request.query_string.decode("latin-1")
            # the path as a URL again: a decoded "?", "#" or non-ASCII letter would send the
            # person elsewhere (or home) after sign-in
            path = quote(request.path, safe="/!$&'()*+,;=:@")
            raise self.flow.start(request, path + (f"?{query}" if query else ""))

    def identity(self, session: Session) -> Identity:
        claims, provider = session.claims, self.provider
        subject = claim_at(claims, provider.identity_claim)
        org = claim_at(claims, provider.org_claim) if provider.org_claim else None
        return Identity(method=self.id, subject=str(subject or session.subject),
                        issuer=provider.issuer, client_id=self.flow.options.client_id,
                        scopes=scopes_of(claim_at(claims, provider.scope_claim)),
                        audiences=(self.flow.options.client_id,),
                        expires_at=session.tokens.access_expires,
                        claims=MappingProxyType(dict(claims)), org=org if isinstance(org, str) else "",
                        provider=provider.name, token_kind="id")

    def ready(self) -> str | None:
        failure = self.flow.client.last_failure
        return f"provider {self.provider.name}: {failure}" if failure else None

    def warm(self, timeout: float | None = None) -> None:
        """The provider's keys and endpoints before the first sign-in (bounded waits);
        a failure shows in ``ready()`` and is retried by the first sign-in."""
        self.flow.client.verifier.keys.warm(timeout)
        try:
            self.flow.client.endpoints()
        except ProviderUnavailable:
            pass


def login_flows(build) -> dict[str, LoginFlow]:
    """Every login flow of the gateway by its routes prefix (for the reserved routes)."""
    return build.shared("oidc_login_flows", dict)


def _build(options: OidcLoginOptions, build, api: ApiConfig) -> OidcLoginAuthenticator:
    config = build.config
    where = f"{config.source}: apis[{api.name}]: oidc_login"
    try:
        provider = config.provider(options.provider)
    except KeyError:
        raise ConfigError(f"{where}: provider {options.provider!r} is not under providers:") from None
    if config.secret_key is None:
        raise ConfigError(f"{where}: browser sessions need secret_key (it names session "
                          "records and encrypts their tokens)")
    routes = options.routes or config.ops.prefix + "oidc/"
    # the cookies go to every path of this host: no route may pass them to its upstream
    build.strip.add_cookies((options.cookie(), options.login_cookie))
    flows = login_flows(build)
    if routes in flows:
        if flows[routes].options != options:
            raise ConfigError(f"{where}: another API uses routes {routes} with other options; "
                              "give each login client its own routes:")
        return OidcLoginAuthenticator(flows[routes], provider, api.name)
    clash = next((r for r, f in flows.items() if f.cookie_name == options.cookie()), None)
    if clash is not None:  # each sign-in would overwrite the other client's handle
        raise ConfigError(f"{where}: the login client at routes {clash} uses the same session "
                          f"cookie {options.cookie()}; give one its own cookie_name")
    if not options.secure_cookies:
        log.warning("%s: secure_cookies is off: session cookies travel over plain http "
                    "(development only)", where)
    flows[routes] = flow = _flow(options, provider, routes, build)
    return OidcLoginAuthenticator(flow, provider, api.name)


def _flow(options: OidcLoginOptions, provider, routes: str, build) -> LoginFlow:
    config = build.config
    sealer = Sealer([config.secret_key.reveal(), *(s.reveal() for s in config.previous_secret_keys)])
    id_provider = dataclasses.replace(provider, token_types=("id",), client_ids=(options.client_id,),
                                      clock_skew=options.clock_skew)
    verifier = Verifier(id_provider, key_source(provider, build), build.clock)
    # the same for every secret_key (a rotation keeps sessions), distinct per login client
    namespace = "oidc:" + hashlib.sha256(f"{routes}\0{options.client_id}".encode()).hexdigest()[:12]
    client = OidcClient(options, provider, verifier, clock=build.clock)
    pending = PendingLogins(build.store, sealer, namespace, ttl=options.pending_ttl,
                            max_pending=options.pending_max, clock=build.clock)
    sessions = BrowserSessions(build.store, sealer, namespace, idle=options.session_idle,
                               absolute=options.session_absolute,
                               touch_interval=options.touch_interval,
                               cache_ttl=options.cache_ttl, clock=build.clock)
    return LoginFlow(options, client, pending, sessions, routes=routes, clock=build.clock)


register(Method("oidc_login", OidcLoginOptions, _build))
