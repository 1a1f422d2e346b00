"""Typed options of the ``oidc_login`` method (the gateway as an OpenID Connect client).

One frozen dataclass, documented where declared; the README's "Browser login" section
follows it. Durations accept the config's units (``10m``, ``8h``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from ...config.providers import check_url
from ...config.secrets import Secret, resolve_secret
from ...config.typed import Where, parsed
from ...config.units import parse_duration


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _duration(default: float) -> Any:
    return field(default=default, metadata={"parse": parsed(parse_duration)})


def _secret(node: object, where: Where) -> Secret:
    return resolve_secret(node, where.base_dir)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL, lowercased; "" when not absolute."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True)
class OidcLoginOptions:
    """Options of ``{method: oidc_login, ...}`` in an API's ``auth`` list.

    ``provider`` names an entry of ``providers:`` (its issuer and keys verify the ID
    token); endpoints come from its discovery document unless given here.
    """

    provider: str                          # a name under providers:
    """Required: a name under `providers:`; its issuer and key set verify ID and logout
    tokens."""
    client_id: str
    """Required: the client registered at the provider; an ID token's `aud` must contain
    it and its `azp`, when present (or with several audiences), must equal it."""
    public_url: str                        # this gateway's origin as browsers see it
    """Required: this gateway's origin as browsers see it (`https://apps.example.com`);
    the redirect URI is `<public_url><routes>callback`; the same-origin check compares
    with it. Never taken from the `Host` header."""
    client_secret: Secret | None = field(default=None, metadata={"parse": _secret})
    """`{env: NAME}` or `{file: PATH}`, for `client_secret_basic` (default) or
    `client_secret_post`."""
    client_auth: Literal["client_secret_basic", "client_secret_post",
                         "private_key_jwt"] = "client_secret_basic"
    """How the gateway authenticates at the token endpoint: `client_secret_basic`
    (default), `client_secret_post`, or `private_key_jwt` with `private_key: {file:
    key.pem}` (authlib signs the assertion)."""
    private_key: Secret | None = field(default=None, metadata={"parse": _secret})  # PEM
    """For client_auth private_key_jwt: the PEM private key signing the client assertion,
    {file: key.pem} or {env: NAME}."""
    scopes: tuple[str, ...] = ("openid", "profile", "email")  # openid is always added
    """`openid` is always sent; add `offline_access` where the provider needs it for a
    refresh token (default `[openid, profile, email]`)"""
    routes: str | None = None              # reserved prefix; default <ops.prefix>oidc/
    """The reserved prefix; two APIs with identical options share one client, different
    options need different `routes` and `cookie_name` (default `<ops.prefix>oidc/`)"""
    cookie_name: str | None = None         # default __Host-gw-session (gw-session without secure)
    """The session cookie (`gw-session` when `secure_cookies` is off; a
    `__Host-`/`__Secure-` name needs `secure_cookies`). It and the pre-login cookie are
    removed from every request the gateway passes upstream, on every route, and an
    upstream's `Set-Cookie` for either is dropped (no app behind the gateway can plant or
    end a session) (default `__Host-gw-session`)"""
    secure_cookies: bool = True            # off only for plain-http development (warned)
    """`Secure` and the `__Host-` prefix; turn off only for plain-http development (a
    warning at start-up) (default `true`)"""
    session_idle: float = _duration(8 * 3600.0)        # idle timeout
    """A session unused this long ends (default `8h`)"""
    session_absolute: float = _duration(24 * 3600.0)   # absolute timeout from login
    """A session ends this long after sign-in, used or not (default `24h`)"""
    touch_interval: float = _duration(60.0)            # last use written at most this often
    """The last use is written to the store at most this often (shorter than
    `session_idle`) (default `60s`)"""
    cache_ttl: float = _duration(1.0)      # a worker's copy of a session (logout lands within it)
    """A worker's copy of a session (≤ 1 s: a logout is seen everywhere within it)
    (default `1s`)"""
    pending_max: int = 3                   # logins pending at once per browser (oldest evicted)
    """Sign-ins pending at once per browser (1–10); the oldest is evicted (default `3`)"""
    pending_ttl: float = _duration(600.0)  # a started login must come back within this
    """A sign-in must come back within this (30 s – 1 h) (default `10m`)"""
    start_rate: int = 50                   # sign-ins started per second per worker, at most
    """Sign-ins started per second per worker; beyond it a 429 page (each start writes a
    store record that lives `pending_ttl`, so a flood must not push sessions out of
    memcached) (default `50`)"""
    refresh_lead: float = _duration(60.0)  # refresh this long before the access token expires
    """The access token is refreshed this long before it expires (default `60s`)"""
    refresh_lease: float = _duration(10.0) # one refresh per session at a time, for at most this
    """One refresh per session at a time, across workers and hosts, for at most this;
    must be longer than `http_timeout` (else a second worker refreshes with the same
    rotating token) (default `10s`)"""
    refresh_wait: float = _duration(2.0)   # how long a request waits for another's refresh
    """A request whose token has expired waits this long for another worker's refresh,
    then 503 (default `2s`)"""
    clock_skew: float = _duration(60.0)    # ID token iat may be this old / exp this late
    """Leeway for the ID token's `exp`/`iat`/`nbf` (default `60s`)"""
    http_timeout: float = _duration(5.0)   # every call to the provider
    """Every call to the provider (discovery, token, userinfo, revocation) (default `5s`)"""
    userinfo: bool = False                 # merge the userinfo response into the claims
    """Merge the userinfo response into the claims (its `sub` must match; the ID token's
    claims win) (default `false`)"""
    forward_access_token: bool = False     # send Authorization: Bearer <access token> upstream
    """Send `Authorization: Bearer <access token>` upstream (a client's own
    `Authorization` is always removed) (default `false`)"""
    revoke_on_logout: bool = False         # RFC 7009 revocation of the refresh token
    """RFC 7009: revoke the refresh token at logout (best effort) (default `false`)"""
    provider_logout: bool = True           # RP-initiated logout when the provider offers it
    """RP-initiated logout when the provider publishes an `end_session_endpoint` (default
    `true`)"""
    return_origins: tuple[str, ...] = ()   # origins a return-to may name besides public_url
    """Origins a `return_to` may name besides `public_url` (default `[]`)"""
    allowed_origins: tuple[str, ...] = ()  # cross-site origins allowed to send unsafe methods
    """Other origins allowed to send state-changing requests with the session (default
    `[]`)"""
    script_header: str | None = None       # a request carrying this header always gets 401
    """A request carrying this header always gets 401, never a redirect."""
    authorization_endpoint: str | None = None  # overrides discovery
    """Overrides the discovery document's authorization_endpoint; override what the
    discovery document says (default from discovery)"""
    token_endpoint: str | None = None
    """Overrides the discovery document's token_endpoint; override what the discovery
    document says (default from discovery)"""
    userinfo_endpoint: str | None = None
    """Overrides the discovery document's userinfo_endpoint; override what the discovery
    document says (default from discovery)"""
    end_session_endpoint: str | None = None
    """Overrides the discovery document's end_session_endpoint; override what the
    discovery document says (default from discovery)"""
    revocation_endpoint: str | None = None
    """Overrides the discovery document's revocation_endpoint; override what the
    discovery document says (default from discovery)"""
    extra_params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # e.g. {prompt: login}
    """Extra authorization parameters (`prompt: login`, `acr_values: ...`); never
    `state`, `nonce`, PKCE (`code_challenge*`, `code_verifier`), `scope`, `redirect_uri`
    or `response_mode` (the callback takes a query). With `max_age` (whole seconds), the
    ID token must carry an `auth_time` no older than that (OIDC Core §3.1.3.7)
    (default `{}`)"""

    def __post_init__(self):
        check_url(self.public_url, "public_url")
        if urlsplit(self.public_url).path.strip("/") or origin_of(self.public_url) == "":
            raise ValueError("public_url must be an origin like https://app.example.com")
        if not self.secure_cookies and urlsplit(self.public_url).scheme == "https":
            raise ValueError("secure_cookies false is for plain-http development only; "
                             f"{self.public_url} is https")
        if self.client_auth == "private_key_jwt" and self.private_key is None:
            raise ValueError("client_auth private_key_jwt needs private_key: {file: key.pem}")
        if self.client_auth != "private_key_jwt" and self.client_secret is None:
            raise ValueError(f"client_auth {self.client_auth} needs client_secret: {{env: NAME}}")
        if self.routes is not None and not re.fullmatch(r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*/",
                                                        self.routes):
            raise ValueError(f"routes {self.routes!r} must look like /.gateway/oidc/")
        if self.cookie_name is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.cookie_name):
            raise ValueError("cookie_name: 1-64 of A-Z a-z 0-9 _ -")
        if self.cookie_name and not self.secure_cookies and \
                self.cookie_name.lower().startswith(("__host-", "__secure-")):
            # browsers drop such a cookie without Secure: every sign-in would loop
            raise ValueError(f"cookie_name {self.cookie_name}: the __Host-/__Secure- prefixes "
                             "need secure_cookies")
        if not 1 <= self.pending_max <= 10:
            raise ValueError("pending_max must be within 1..10")
        if not 1 <= self.start_rate <= 10_000:
            raise ValueError("start_rate must be within 1..10000 per second")
        if not 30 <= self.pending_ttl <= 3600:
            raise ValueError("pending_ttl must be within 30s..1h")
        if not 0 < self.cache_ttl <= 1.0:
            raise ValueError("cache_ttl must be within (0, 1s]: a logout must land within a second")
        if self.refresh_lease <= self.http_timeout:
            # a second worker would refresh with the same (rotating) token: reuse, family revoked
            raise ValueError("refresh_lease must be longer than http_timeout")
        if not 0 < self.session_idle <= self.session_absolute:
            raise ValueError("need 0 < session_idle <= session_absolute")
        if not 0 < self.touch_interval < self.session_idle:
            # the last use is written this often: at or above session_idle, sessions in use
            # would time out as idle
            raise ValueError("touch_interval must be shorter than session_idle")
        for url in (self.authorization_endpoint, self.token_endpoint, self.userinfo_endpoint,
                    self.end_session_endpoint, self.revocation_endpoint):
            if url is not None:
                check_url(url, "endpoint")
        for origin in (*self.return_origins, *self.allowed_origins):
            if origin_of(origin) != origin.rstrip("/").lower():
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        reserved = {"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri",
                    "client_id", "response_type", "scope",
                    "code_verifier",   # a second value for authlib's own argument: a 500 per sign-in
                    "response_mode"}   # the callback is a GET with a query (form_post never lands)
        if reserved.intersection(self.extra_params):
            raise ValueError(f"extra_params may not set {', '.join(sorted(reserved))}")
        if "max_age" in self.extra_params and \
                re.fullmatch(r"[0-9]{1,9}", str(self.extra_params["max_age"])) is None:
            raise ValueError("extra_params.max_age must be whole seconds (0 or more, ASCII digits)")

    @property
    def origin(self) -> str:
        return origin_of(self.public_url)

    @property
    def scope(self) -> str:
        return " ".join(dict.fromkeys(("openid", *self.scopes)))

    def cookie(self, https: bool = True) -> str:
        """The session cookie's name: ``__Host-`` prefixed when secure (RFC 6265bis)."""
        if self.cookie_name:
            return self.cookie_name
        return "__Host-gw-session" if self.secure_cookies else "gw-session"

    @property
    def login_cookie(self) -> str:
        return "__Host-gw-login" if self.secure_cookies else "gw-login"
