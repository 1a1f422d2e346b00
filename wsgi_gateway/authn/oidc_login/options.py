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
    client_id: str
    public_url: str                        # this gateway's origin as browsers see it
    client_secret: Secret | None = field(default=None, metadata={"parse": _secret})
    client_auth: Literal["client_secret_basic", "client_secret_post",
                         "private_key_jwt"] = "client_secret_basic"
    private_key: Secret | None = field(default=None, metadata={"parse": _secret})  # PEM
    scopes: tuple[str, ...] = ("openid", "profile", "email")  # openid is always added
    routes: str | None = None              # reserved prefix; default <ops.prefix>oidc/
    cookie_name: str | None = None         # default __Host-gw-session (gw-session without secure)
    secure_cookies: bool = True            # off only for plain-http development (warned)
    session_idle: float = _duration(8 * 3600.0)        # idle timeout
    session_absolute: float = _duration(24 * 3600.0)   # absolute timeout from login
    touch_interval: float = _duration(60.0)            # last use written at most this often
    cache_ttl: float = _duration(1.0)      # a worker's copy of a session (logout lands within it)
    pending_max: int = 3                   # logins pending at once per browser (oldest evicted)
    pending_ttl: float = _duration(600.0)  # a started login must come back within this
    start_rate: int = 50                   # sign-ins started per second per worker, at most
    refresh_lead: float = _duration(60.0)  # refresh this long before the access token expires
    refresh_lease: float = _duration(10.0) # one refresh per session at a time, for at most this
    refresh_wait: float = _duration(2.0)   # how long a request waits for another's refresh
    clock_skew: float = _duration(60.0)    # ID token iat may be this old / exp this late
    http_timeout: float = _duration(5.0)   # every call to the provider
    userinfo: bool = False                 # merge the userinfo response into the claims
    forward_access_token: bool = False     # send Authorization: Bearer <access token> upstream
    revoke_on_logout: bool = False         # RFC 7009 revocation of the refresh token
    provider_logout: bool = True           # RP-initiated logout when the provider offers it
    return_origins: tuple[str, ...] = ()   # origins a return-to may name besides public_url
    allowed_origins: tuple[str, ...] = ()  # cross-site origins allowed to send unsafe methods
    script_header: str | None = None       # a request carrying this header always gets 401
    authorization_endpoint: str | None = None  # overrides discovery
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    extra_params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # e.g. {prompt: login}

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
        if not 1 <= self.pending_max <= 10:
            raise ValueError("pending_max must be within 1..10")
        if not 1 <= self.start_rate <= 10_000:
            raise ValueError("start_rate must be within 1..10000 per second")
        if not 30 <= self.pending_ttl <= 3600:
            raise ValueError("pending_ttl must be within 30s..1h")
        if not 0 < self.cache_ttl <= 1.0:
            raise ValueError("cache_ttl must be within (0, 1s]: a logout must land within a second")
        if not 0 < self.session_idle <= self.session_absolute:
            raise ValueError("need 0 < session_idle <= session_absolute")
        for url in (self.authorization_endpoint, self.token_endpoint, self.userinfo_endpoint,
                    self.end_session_endpoint, self.revocation_endpoint):
            if url is not None:
                check_url(url, "endpoint")
        for origin in (*self.return_origins, *self.allowed_origins):
            if origin_of(origin) != origin.rstrip("/").lower():
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        reserved = {"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri",
                    "client_id", "response_type", "scope"}
        if reserved.intersection(self.extra_params):
            raise ValueError(f"extra_params may not set {', '.join(sorted(reserved))}")

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
