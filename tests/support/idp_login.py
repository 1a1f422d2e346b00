"""Browser login for the test provider (:class:`tests.support.idp.TestIdP`).

The authorization endpoint with PKCE (S256 only) and an HTML login form, the token
endpoint's ``authorization_code`` and ``refresh_token`` grants (refresh tokens rotate:
each works once; reusing a spent one revokes its whole family, as the OAuth 2.0
Security BCP recommends), RP-initiated logout (``end_session_endpoint``), RFC 7009
revocation, userinfo, and a back-channel logout sender. Kept in its own module so the
provider's core stays readable; the methods are attached to ``TestIdP``.

Fault switches for tests that show a check can fail: ``login.wrong_nonce``,
``login.id_token_overrides`` (any claim, e.g. another ``aud``), ``login.refuse_refresh``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from werkzeug.wrappers import Request, Response

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass(frozen=True)
class _LoginClient:
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    username: str
    sid: str
    scope: str
    expires: float


@dataclass
class _Refresh:
    client_id: str
    username: str
    sid: str
    scope: str
    family: str
    spent: bool = False


@dataclass
class _LoginState:
    users: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    clients: dict[str, _LoginClient] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    revoked_families: set[str] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)   # "code", "refresh", "refresh_refused", ...
    ended_sessions: list[str] = field(default_factory=list)
    last_authorize: dict[str, str] = field(default_factory=dict)
    wrong_nonce: bool = False
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    refuse_refresh: bool = False
    reusable_codes: bool = False  # a broken provider: lets a mutant test reach the gateway's replay check
    refresh_delay: float = 0.0
    expires_in_as_text: bool = False  # "expires_in": "300", as some providers send it
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(status: int, error: str, description: str = ""):
    from tests.support.idp import _OAuthError

    return _OAuthError(status, error, description)


def _json(body: Any, status: int = 200) -> Response:
    from tests.support.idp import _json_response

    return _json_response(body, status, {"Cache-Control": "no-store"})


# -- the authorization endpoint ------------------------------------------------------

def _authorize(idp, request: Request) -> Response:
    params = request.args if request.method == "GET" else request.form
    client = idp.login.clients.get(params.get("client_id", ""))
    redirect_uri = params.get("redirect_uri", "")
    if client is None or redirect_uri not in client.redirect_uris:
        return Response("unknown client or redirect_uri", status=400)  # never redirect then
    if params.get("response_type") != "code":
        return _to_client(redirect_uri, error="unsupported_response_type", state=params.get("state"))
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        return _to_client(redirect_uri, error="invalid_request", state=params.get("state"))
    if "openid" not in params.get("scope", "").split():
        return _to_client(redirect_uri, error="invalid_scope", state=params.get("state"))
    idp.login.last_authorize = dict(params)
    if request.method == "GET":
        return _form(params)
    username, password = request.form.get("username", ""), request.form.get("password", "")
    user = idp.login.users.get(username)
    if user is None or not hmac.compare_digest(user[0], password):
        return _form(params, error="Wrong username or password.")
    code = secrets.token_urlsafe(24)
    with idp.login.lock:
        idp.login.codes[code] = _Code(params["client_id"], redirect_uri, params["code_challenge"],
                                      params.get("nonce"), username, secrets.token_hex(8),
                                      params.get("scope", "openid"), idp.clock() + 60)
    return _to_client(redirect_uri, code=code, state=params.get("state"), iss=idp.issuer)


def _to_client(redirect_uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return Response(status=302, headers={"Location": f"{redirect_uri}?{query}",
                                         "Cache-Control": "no-store"})


def _form(params, error: str = "") -> Response:
    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in params.items() if k not in ("username", "password"))
    page = ("<!doctype html><html><head><title>Test IdP sign-in</title></head><body>"
            f"<h1>Sign in</h1><p id=error>{html.escape(error)}</p><form method=post>{hidden}"
            '<label>Username <input name=username id=username></label>'
            '<label>Password <input name=password id=password type=password></label>'
            '<button type=submit id=signin>Sign in</button></form></body></html>')
    return Response(page, content_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


# -- the token endpoint ----------------------------------------------------------------

def _code_grant(idp, client_id: str, request: Request) -> Response:
    code = request.form.get("code", "")
    with idp.login.lock:
        grant = idp.login.codes.get(code) if idp.login.reusable_codes else \
            idp.login.codes.pop(code, None)  # single use
    if grant is None or grant.client_id != client_id or grant.expires < idp.clock():
        raise _error(400, "invalid_grant", "unknown, used or expired code")
    if request.form.get("redirect_uri") != grant.redirect_uri:
        raise _error(400, "invalid_grant", "redirect_uri differs")
    verifier = request.form.get("code_verifier", "")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    if not verifier or not hmac.compare_digest(challenge, grant.challenge):
        raise _error(400, "invalid_grant", "PKCE verification failed")
    idp.login.counts["code"] += 1
    return _token_response(idp, client_id, grant.username, grant.sid, grant.scope,
                           nonce=grant.nonce, family=secrets.token_hex(8))


def _refresh_grant(idp, client_id: str, request: Request) -> Response:
    if idp.login.refresh_delay:
        idp._stopping.wait(idp.login.refresh_delay)
    token = request.form.get("refresh_token", "")
    with idp.login.lock:
        idp.login.counts["refresh"] += 1
        held = idp.login.refresh.get(token)
        if held is None or held.client_id != client_id or held.family in idp.login.revoked_families \
                or idp.login.refuse_refresh:
            idp.login.counts["refresh_refused"] += 1
            raise _error(400, "invalid_grant", "unknown or revoked refresh token")
        if held.spent:  # reuse of a rotated token: revoke the family (RFC 9700 §4.14.2)
            idp.login.revoked_families.add(held.family)
            idp.login.counts["refresh_reused"] += 1
            raise _error(400, "invalid_grant", "refresh token reused")
        held.spent = True
    return _token_response(idp, client_id, held.username, held.sid, held.scope, nonce=None,
                           family=held.family)


def _token_response(idp, client_id: str, username: str, sid: str, scope: str, *,
                    nonce: str | None, family: str) -> Response:
    claims = idp.login.users[username][1]
    access = idp.issue({"sub": username, "client_id": client_id, "azp": client_id, "scope": scope,
                        "sid": sid}, ttl=idp.token_ttl)
    refresh = secrets.token_urlsafe(32)
    with idp.login.lock:
        idp.login.refresh[refresh] = _Refresh(client_id, username, sid, scope, family)
    id_claims = {**claims, "aud": client_id, "azp": client_id, "sid": sid,
                 "auth_time": int(idp.clock())}
    if nonce is not None:
        id_claims["nonce"] = "wrong" if idp.login.wrong_nonce else nonce
    id_claims.update(idp.login.id_token_overrides)
    id_token = idp.issue(id_claims, ttl=idp.token_ttl, headers={"typ": "JWT"},
                         omit=["scope", "client_id", "jti"])
    expires_in = str(idp.token_ttl) if idp.login.expires_in_as_text else idp.token_ttl
    return _json({"access_token": access, "token_type": "Bearer", "expires_in": expires_in,
                  "refresh_token": refresh, "id_token": id_token, "scope": scope})


# -- logout, revocation, userinfo --------------------------------------------------------

def _handle_end_session(idp, request: Request) -> Response:
    target = request.args.get("post_logout_redirect_uri", "")
    client = idp.login.clients.get(request.args.get("client_id", ""))
    idp.login.counts["end_session"] += 1
    idp.login.ended_sessions.append(request.args.get("id_token_hint", ""))
    if client is not None and target in client.post_logout_redirect_uris:
        return Response(status=302, headers={"Location": target})
    return Response("<!doctype html><title>Signed out</title><p>Signed out at the provider.",
                    content_type="text/html")


def _handle_revocation(idp, request: Request) -> Response:
    idp._authenticate_client(request)
    with idp.login.lock:
        held = idp.login.refresh.get(request.form.get("token", ""))
        if held is not None:
            idp.login.revoked_families.add(held.family)
        idp.login.counts["revoked"] += 1
    return Response(status=200)


def _handle_userinfo(idp, request: Request) -> Response:
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ")
    with idp._lock:
        issued = idp._tokens.get(token)
    if issued is None or not issued.active(idp.clock()):
        return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    username = issued.claims.get("sub")
    return _json({**idp.login.users[username][1], "userinfo_only": "from-userinfo"})


def logout_token(idp, client_id: str, *, sid: str | None = None, sub: str | None = None,
                 **overrides: Any) -> str:
    """A signed back-channel logout token (overrides may break it on purpose)."""
    claims: dict[str, Any] = {"aud": client_id, "jti": secrets.token_hex(8),
                              "events": {BACKCHANNEL_EVENT: {}}}
    if sid:
        claims["sid"] = sid
    if sub:
        claims["sub"] = sub
    claims.update(overrides)
    omit = ["scope", "client_id", "azp", "nbf"] + [k for k, v in overrides.items() if v is None]
    if not sub:
        omit.append("sub")
    return idp.issue({k: v for k, v in claims.items() if v is not None}, ttl=120,
                     headers={"typ": "logout+jwt"}, omit=omit)


def send_backchannel_logout(idp, client_id: str, token: str | None = None, **kw: Any) -> requests.Response:
    """POST a logout token to the client's registered back-channel logout URI."""
    client = idp.login.clients[client_id]
    token = token or idp.logout_token(client_id, **kw)
    return requests.post(client.backchannel_logout_uri, data={"logout_token": token}, timeout=5)


def sid_of(idp, username: str) -> str | None:
    """The provider session ID of ``username``'s latest login."""
    with idp.login.lock:
        found = [r.sid for r in idp.login.refresh.values() if r.username == username]
    return found[-1] if found else None


def login_methods() -> dict[str, Any]:
    """The methods attached to TestIdP."""
    return {"_handle_end_session": _handle_end_session, "_handle_revocation": _handle_revocation,
            "_handle_userinfo": _handle_userinfo, "logout_token": logout_token,
            "send_backchannel_logout": send_backchannel_logout, "sid_of": sid_of}

