"""The provider side of browser login: endpoints, code exchange, refresh, token checks.

OAuth 2.0 requests go through authlib's ``OAuth2Session`` (PKCE S256, client
authentication, RFC 7009 revocation); ID and logout tokens are verified with the
gateway's own JWT :class:`~wsgi_gateway.authn.jwt.verify.Verifier` (the provider's
key set, allowed algorithms, header hardening), then checked against OpenID Connect
Core §3.1.3.7 and Back-Channel Logout §2.6 here. Every refusal is a fixed sentence.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.base import OAuth2Error

from ...config.providers import ProviderConfig, check_url
from ..jwt.jwks import KeysUnavailable
from ..jwt.verify import TokenRejected, Verifier, parse
from .options import OidcLoginOptions
from .pending import LoginRejected
from .sessions import Tokens

DISCOVERY_TTL = 3600.0
RETRY_AFTER = 5.0  # seconds between discovery attempts after a failure
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# RFC 6749 §5.2: the token endpoint's refusals. Any other error code (server_error,
# temporarily_unavailable, Auth0's too_many_requests with a 429) is an outage: a refresh
# that meets one keeps a still-valid session instead of ending it.
REFUSALS = frozenset({"invalid_request", "invalid_client", "invalid_grant",
                      "unauthorized_client", "unsupported_grant_type", "invalid_scope"})


class ProviderUnavailable(Exception):
    """The provider cannot be reached or answered nonsense (a 503, not the user's fault)."""


class GrantRejected(Exception):
    """The provider refused a code or refresh token (``invalid_grant`` and friends)."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str | None = None
    end_session: str | None = None
    revocation: str | None = None
    #: the provider's discovery document says every authorization response carries
    #: ``iss`` (RFC 9207 ``authorization_response_iss_parameter_supported``)
    names_issuer: bool = False


class OidcClient:
    """One registered client at one provider.

    :param options: the method's options.
    :param provider: the trusted provider (issuer, keys, algorithms).
    :param verifier: verifies signatures with the provider's keys.
    :param clock: wall-clock seconds.
    :param http: the requests session for discovery (tests may inject one).
    """

    def __init__(self, options: OidcLoginOptions, provider: ProviderConfig, verifier: Verifier, *,
                 clock: Callable[[], float], http: requests.Session | None = None):
        self.options, self.provider, self.verifier, self.clock = options, provider, verifier, clock
        self.http = http or requests.Session()
        self._endpoints: Endpoints | None = None
        self._fetched = -1e18
        self._failed = -1e18
        self._lock = threading.Lock()
        self.last_failure: str | None = None

    # -- endpoints ------------------------------------------------------------------
    def endpoints(self) -> Endpoints:
        """The provider's endpoints (options first, then discovery, kept an hour)."""
        o = self.options
        if o.authorization_endpoint and o.token_endpoint:
            return Endpoints(o.authorization_endpoint, o.token_endpoint, o.userinfo_endpoint,
                             o.end_session_endpoint, o.revocation_endpoint)
        with self._lock:
            now = self.clock()
            if self._endpoints is not None and now - self._fetched <= DISCOVERY_TTL:
                return self._endpoints
            if now - self._failed < RETRY_AFTER:  # an outage costs one timeout per interval
                if self._endpoints is not None:
                    return self._endpoints
                raise ProviderUnavailable(self.last_failure or "discovery failed")
            try:
                self._endpoints, self._fetched = self._discover(), now
            except ProviderUnavailable:
                self._failed = now
                if self._endpoints is None:
                    raise
            return self._endpoints  # the last good endpoints outlive a failed re-discovery

    def _discover(self) -> Endpoints:
        url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = self.http.get(url, timeout=self.options.http_timeout, allow_redirects=False)
            doc = response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("issuer") != self.provider.issuer:
            self.last_failure = "discovery document unavailable or for another issuer"
            raise ProviderUnavailable(self.last_failure)
        o = self.options

        def pick(override: str | None, name: str) -> str | None:
            value = override or doc.get(name)
            if value is not None:
                check_url(value, name)  # ValueError below: a bad document is an outage
            return value
        try:
            found = Endpoints(pick(o.authorization_endpoint, "authorization_endpoint"),
                              pick(o.token_endpoint, "token_endpoint"),
                              pick(o.userinfo_endpoint, "userinfo_endpoint"),
                              pick(o.end_session_endpoint, "end_session_endpoint"),
                              pick(o.revocation_endpoint, "revocation_endpoint"),
                              doc.get("authorization_response_iss_parameter_supported") is True)
        except ValueError:
            found = None
        if found is None or not found.authorization or not found.token:
            self.last_failure = "discovery document lacks usable endpoints"
            raise ProviderUnavailable(self.last_failure)
        self.last_failure = None
        return found

    def check_response_issuer(self, iss: str | None) -> None:
        """RFC 9207 (RFC 9700 §4.4, mix-up attacks): an authorization response naming
        another issuer is refused before its code goes anywhere, and so is one without
        ``iss`` from a provider whose discovery document promises it."""
        if iss is None:
            if self.endpoints().names_issuer:
                raise LoginRejected("the sign-in response does not name its issuer")
        elif iss != self.provider.issuer:
            raise LoginRejected("the sign-in response comes from another issuer")

    # -- the protocol ---------------------------------------------------------------
    def _session(self, redirect_uri: str | None = None) -> OAuth2Session:
        o = self.options
        secret = o.private_key.reveal().decode() if o.client_auth == "private_key_jwt" \
            else o.client_secret.reveal().decode()
        session = OAuth2Session(o.client_id, secret, token_endpoint_auth_method=o.client_auth,
                                revocation_endpoint_auth_method=o.client_auth, scope=o.scope,
                                redirect_uri=redirect_uri, code_challenge_method="S256",
                                default_timeout=o.http_timeout)
        if o.client_auth == "private_key_jwt":
            from authlib.oauth2.rfc7523 import PrivateKeyJWT

            session.register_client_auth_method(PrivateKeyJWT(self.endpoints().token))
        return session

    def authorization_url(self, *, state: str, nonce: str, verifier: str, redirect_uri: str) -> str:
        """Where the browser goes to sign in: code flow, PKCE S256, state and nonce."""
        with self._session(redirect_uri) as session:
            url, _ = session.create_authorization_url(
                self.endpoints().authorization, state=state, code_verifier=verifier, nonce=nonce,
                response_type="code", **dict(self.options.extra_params))
        return url

    def exchange(self, code: str, *, verifier: str, redirect_uri: str) -> Mapping[str, Any]:
        """The token response for an authorization code."""
        with self._session(redirect_uri) as session:
            return self._call(lambda: session.fetch_token(
                self.endpoints().token, grant_type="authorization_code", code=code,
                code_verifier=verifier, redirect_uri=redirect_uri))

    def refresh(self, refresh_token: str) -> Mapping[str, Any]:
        """A new token response for ``refresh_token`` (which the provider may rotate)."""
        with self._session() as session:
            return self._call(lambda: session.refresh_token(self.endpoints().token,
                                                            refresh_token=refresh_token))

    def revoke(self, refresh_token: str) -> None:
        """RFC 7009 revocation; best effort (a logout never fails on it)."""
        url = self.endpoints().revocation
        if url:
            with self._session() as session:
                try:
                    session.revoke_token(url, token=refresh_token, token_type_hint="refresh_token")
                except (requests.RequestException, OAuthError, OAuth2Error, ValueError):
                    pass

    def userinfo(self, access_token: str) -> Mapping[str, Any]:
        url = self.endpoints().userinfo
        if not url:
            return {}
        try:
            response = self.http.get(url, timeout=self.options.http_timeout,
                                     headers={"Authorization": f"Bearer {access_token}"})
            body = response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            body = None
        if not isinstance(body, dict):
            raise ProviderUnavailable("the userinfo endpoint failed")
        return body

    def end_session_url(self, id_token: str | None, post_logout: str) -> str | None:
        """RP-initiated logout at the provider, when it offers an end-session endpoint."""
        try:
            url = self.endpoints().end_session if self.options.provider_logout else None
        except ProviderUnavailable:
            return None
        if not url:
            return None
        params = {"client_id": self.options.client_id, "post_logout_redirect_uri": post_logout}
        if id_token:
            params["id_token_hint"] = id_token
        return url + ("&" if "?" in url else "?") + urlencode(params)

    def _call(self, fn: Callable[[], Any]) -> Mapping[str, Any]:
        try:
            token = fn()
        except (OAuthError, OAuth2Error) as exc:
            error = getattr(exc, "error", "") or ""
            if error not in REFUSALS:
                raise ProviderUnavailable("the token endpoint failed") from None
            raise GrantRejected(error) from None
        except (requests.RequestException, ValueError) as exc:
            response = getattr(exc, "response", None)
            if response is not None and 400 <= response.status_code < 500:
                raise GrantRejected(f"HTTP {response.status_code}") from None
            raise ProviderUnavailable("the token endpoint failed") from None
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            raise ProviderUnavailable("the token endpoint answered without an access token")
        return token

    def tokens(self, response: Mapping[str, Any], previous: Tokens | None = None) -> Tokens:
        """Tokens from a token response; a refresh that rotates nothing keeps the old ones."""
        expires_in = _seconds(response.get("expires_in"))
        expires = None if expires_in is None else self.clock() + expires_in
        return Tokens(response["access_token"],
                      response.get("refresh_token") or (previous.refresh_token if previous else None),
                      response.get("id_token") or (previous.id_token if previous else None),
                      expires)

    # -- token checks ---------------------------------------------------------------
    def verify_id_token(self, token: object, *, nonce: str | None,
                        previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The claims of a valid ID token (OIDC Core §3.1.3.7; §12.2 after a refresh)."""
        if not isinstance(token, str):
            raise TokenRejected("the provider sent no ID token")
        claims = self._signed(token)
        self._check_audience(claims)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("the ID token has no subject")
        if not isinstance(claims.get("exp"), (int, float)):
            raise TokenRejected("the ID token has no expiry")
        if previous is None:
            if not isinstance(claims.get("nonce"), str) or claims["nonce"] != nonce:
                raise TokenRejected("the ID token's nonce does not match this sign-in")
            if claims["iat"] < self.clock() - self.options.pending_ttl - self.options.clock_skew:
                raise TokenRejected("the ID token is too old")
            self._check_auth_time(claims)
        else:
            if claims["sub"] != previous.get("sub") or claims["iss"] != previous.get("iss"):
                raise TokenRejected("the refreshed ID token names another user")
            if "nonce" in claims and claims["nonce"] != previous.get("nonce"):
                raise TokenRejected("the refreshed ID token's nonce differs")
        return claims

    def _check_auth_time(self, claims: Mapping[str, Any]) -> None:
        """With ``max_age`` asked (``extra_params``), the sign-in itself must be that
        recent: ``auth_time`` present and no older (OIDC Core §3.1.2.1, §3.1.3.7)."""
        max_age = self.options.extra_params.get("max_age")
        if max_age is None:
            return
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, (int, float)) or isinstance(auth_time, bool):
            raise TokenRejected("the ID token has no auth_time although max_age was asked")
        if auth_time < self.clock() - int(max_age) - self.options.clock_skew:
            raise TokenRejected("the sign-in is older than max_age allows")

    def verify_logout_token(self, token: object) -> tuple[str | None, str | None, dict[str, Any]]:
        """``(sid, sub, claims)`` of a valid logout token (Back-Channel Logout §2.6)."""
        if not isinstance(token, str):
            raise TokenRejected("no logout_token")
        claims = self._signed(token, typ=("logout+jwt", "jwt", ""))
        self._check_audience(claims)
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
            raise TokenRejected("the logout token has no back-channel logout event")
        if "nonce" in claims:
            raise TokenRejected("a logout token must not carry a nonce")
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("exp"), (int, float)):
            raise TokenRejected("the logout token lacks jti or exp")
        sid, sub = claims.get("sid"), claims.get("sub")
        sid = sid if isinstance(sid, str) and sid else None
        sub = sub if isinstance(sub, str) and sub else None
        if sid is None and sub is None:
            raise TokenRejected("the logout token names neither sid nor sub")
        return sid, sub, claims

    def _signed(self, token: str, typ: tuple[str, ...] = ("jwt", "", "id", "id_token")) -> dict[str, Any]:
        parsed = parse(token, self.provider.max_token_size)
        header_typ = parsed.header.get("typ", "")
        if not isinstance(header_typ, str) or header_typ.lower().removeprefix("application/") not in typ:
            raise TokenRejected("the token's type is not accepted here")
        try:
            self.verifier.verify_signature(token, parsed)
        except KeysUnavailable:
            raise ProviderUnavailable("the provider's keys are unavailable") from None
        claims = parsed.claims
        if not isinstance(claims.get("iat"), (int, float)):
            raise TokenRejected("the token has no iat")
        self.verifier.check_times(claims)
        return claims

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        client_id = self.options.client_id
        if client_id not in audiences:
            raise TokenRejected("the token is not for this client")
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != client_id:
            raise TokenRejected("the token was issued to another party (azp)")


_DECIMAL = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")


def _seconds(value: object) -> float | None:
    """``expires_in`` in seconds: a JSON number (RFC 6749 §5.1), or the decimal text some
    providers send instead (``"3600"``, ``" 3600.0"``); a negative number is already
    expired (0). None, a boolean, a non-finite number or other text: no expiry known,
    as when the provider leaves it out (it is only RECOMMENDED)."""
    if isinstance(value, str):
        text = value.strip()
        value = float(text) if _DECIMAL.fullmatch(text) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return max(float(value), 0.0)
