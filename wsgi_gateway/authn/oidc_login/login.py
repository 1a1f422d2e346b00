"""The browser-login flow as plain logic: start, callback, current session, logout.

Takes werkzeug requests and returns werkzeug responses (values); the WSGI edges are
:mod:`.routes` (the reserved paths) and :mod:`.method` (the authenticator).

Decisions where OpenID Connect leaves a choice:
- the navigation that needs a session goes straight to the provider (one redirect);
  the reserved ``login`` path exists for links and takes ``return_to``;
- without a refresh token a session ends when its access token expires;
- a refresh the provider refuses ends the session (navigation: sign in again,
  script: 401); a provider that cannot be reached keeps a still-valid token, else 503;
- store faults are 503 pages, never a redirect: no loop between gateway and provider.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from ...errors import StoreError
from ..jwt.verify import TokenRejected
from .browser import SAFE_METHODS, is_navigation, is_prefetch, safe_return_to, same_origin
from .client import GrantRejected, OidcClient, ProviderUnavailable
from .options import OidcLoginOptions
from .pages import (
    CrossSiteRefused, LoginFailed, LoginRedirect, SessionUnavailable, SignInsThrottled, cookie,
    error_response, html_response,
)
from .pending import LoginRejected, PendingLogins, without
from .sessions import BrowserSessions, Session

log = logging.getLogger("wsgi_gateway.oidc_login")
POLL = 0.05  # seconds between looks at a session another worker is refreshing


class LoginFlow:
    """One login client's flow. Store faults surface as SessionUnavailable (503).

    :param options: the method's options.
    :param client: the provider side.
    :param pending: logins in flight.
    :param sessions: signed-in browsers.
    :param routes: the reserved prefix (``/.gateway/oidc/``).
    :param clock: wall-clock seconds.
    :param sleep: how a request waits for another's refresh (tests inject one).
    """

    def __init__(self, options: OidcLoginOptions, client: OidcClient, pending: PendingLogins,
                 sessions: BrowserSessions, *, routes: str, clock: Callable[[], float],
                 sleep: Callable[[float], None] = time.sleep):
        self.options, self.client, self.pending, self.sessions = options, client, pending, sessions
        self.routes, self.clock, self.sleep = routes, clock, sleep
        self.origin = options.origin
        self.redirect_uri = options.origin + routes + "callback"
        self.cookie_name = options.cookie()
        self._tokens, self._bucket_at = float(options.start_rate), clock()
        self._bucket_lock = threading.Lock()

    # -- starting ------------------------------------------------------------------
    def wants_page(self, request: Request) -> bool:
        return is_navigation(request, self.options.script_header)

    def start(self, request: Request, return_to: str | None) -> LoginRedirect:
        """The redirect to the provider, with a new pending login bound to this browser."""
        target = safe_return_to(return_to, self.origin, self.options.return_origins)
        page = self.wants_page(request) or request.path.startswith(self.routes)
        if not self._start_allowed():
            raise SignInsThrottled("too many sign-ins are starting right now; try again in a "
                                   "moment", retry_after=1).for_browser(page)
        try:
            pending, binding = self.pending.start(target, request.cookies.get(self.options.login_cookie))
            url = self.client.authorization_url(state=pending.state, nonce=pending.nonce,
                                                verifier=pending.verifier,
                                                redirect_uri=self.redirect_uri)
        except StoreError:
            raise SessionUnavailable("sign-in is unavailable: the session store cannot be "
                                     "reached; try again shortly").for_browser(page) from None
        except ProviderUnavailable:
            raise SessionUnavailable("sign-in is unavailable: the identity provider cannot be "
                                     "reached; try again shortly").for_browser(page) from None
        login = cookie(self.options.login_cookie, binding, max_age=int(self.options.pending_ttl),
                       secure=self.options.secure_cookies)
        return LoginRedirect(url, [login])

    def _start_allowed(self) -> bool:
        """A per-worker token bucket: every start writes a store record that lives
        ``pending_ttl``, so a flood of starts must not push sessions out of the store."""
        with self._bucket_lock:
            now, rate = self.clock(), float(self.options.start_rate)
            self._tokens = min(rate, self._tokens + (now - self._bucket_at) * rate)
            self._bucket_at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    # -- the callback --------------------------------------------------------------
    def callback(self, request: Request) -> Response:
        """Check state/binding/age/replay, exchange the code, verify the ID token, sign in."""
        args = request.args
        try:
            pending = self.pending.finish(args.get("state"), request.cookies.get(self.options.login_cookie))
            self.client.check_response_issuer(args.get("iss"))
            if "error" in args:
                code = args["error"] if args["error"].replace("_", "").isalpha() else "error"
                raise LoginRejected(f"the identity provider did not sign you in ({code[:40]})")
            code = args.get("code")
            if not code or len(code) > 2048:
                raise LoginRejected("the sign-in response has no code")
            response = self.client.exchange(code, verifier=pending.verifier,
                                            redirect_uri=self.redirect_uri)
            claims = self.client.verify_id_token(response.get("id_token"), nonce=pending.nonce)
            if self.options.userinfo:
                claims = self._with_userinfo(claims, response["access_token"])
            tokens = self.client.tokens(response)
            self._end_old(request)
            handle, _ = self.sessions.create(claims, tokens)
        except (LoginRejected, TokenRejected, GrantRejected) as exc:
            # a refused code is often the operator's (invalid_client, a wrong redirect URI)
            log.log(logging.WARNING if isinstance(exc, GrantRejected) else logging.INFO,
                    "sign-in refused: %s", exc if not isinstance(exc, GrantRejected)
                    else f"the provider refused the code ({exc})")
            detail = str(exc) if not isinstance(exc, GrantRejected) else \
                "the identity provider refused this sign-in; please start again"
            return error_response(LoginFailed(detail).for_browser(True), None)
        except (StoreError, ProviderUnavailable):
            return error_response(SessionUnavailable(
                "sign-in is unavailable right now; try again shortly").for_browser(True), None)
        target = pending.return_to if "://" in pending.return_to else self.origin + pending.return_to
        response = Response(status=303, headers={"Location": target,
                                                 "Cache-Control": "no-store"})
        o = self.options
        response.headers.add("Set-Cookie", cookie(self.cookie_name, handle,
                                                  max_age=int(o.session_absolute), secure=o.secure_cookies))
        rest = without(request.cookies.get(o.login_cookie), pending.binding)  # other tabs' logins
        response.headers.add("Set-Cookie", cookie(o.login_cookie, rest, max_age=int(o.pending_ttl) if rest
                                                  else 0, secure=o.secure_cookies))
        return response

    def _with_userinfo(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        info = self.client.userinfo(access_token)
        if info.get("sub") != claims["sub"]:  # OIDC Core §5.3.2: must match, else ignore it
            raise TokenRejected("the userinfo response names another user")
        return {**info, **claims}  # the ID token's verified claims win

    def _end_old(self, request: Request) -> None:
        old = request.cookies.get(self.cookie_name)
        session = self.sessions.load(old) if old else None
        if session is not None:
            self.sessions.end(session)

    # -- a signed-in request -------------------------------------------------------
    def current(self, request: Request) -> Session | None:
        """The request's live session, refreshed when due; None when it has none."""
        handle = cookie_value(request.environ, self.cookie_name)
        if not handle:
            return None
        try:
            session = self.sessions.load(handle)
            return self._fresh(session) if session is not None else None
        except StoreError:
            raise SessionUnavailable("your session cannot be read right now: the session "
                                     "store is unavailable").for_browser(self.wants_page(request)) from None
        except SessionUnavailable as err:  # a refresh that cannot finish now
            raise err.for_browser(self.wants_page(request)) from None

    def check_origin(self, request: Request) -> None:
        """Unsafe methods with the session cookie must come from an allowed origin."""
        if request.method in SAFE_METHODS:
            return
        if not same_origin(request, self.origin, self.options.allowed_origins):
            raise CrossSiteRefused("a cross-site request cannot use this session "
                                   "(Origin or Referer must be this site)").for_browser(False)

    def _fresh(self, session: Session) -> Session | None:
        tokens, now = session.tokens, self.clock()
        if tokens.access_expires is None or now < tokens.access_expires - self.options.refresh_lead:
            return session
        if not tokens.refresh_token:
            if now < tokens.access_expires:
                return session
            self.sessions.end(session)
            return None
        if self.sessions.take_lease(session, self.options.refresh_lease):
            try:
                current = self.sessions.reload(session)  # another worker may have refreshed
                if current is None or (current.tokens.access_expires or 0) - \
                        self.options.refresh_lead > self.clock():
                    return current
                return self._refresh(current)
            finally:
                self.sessions.release_lease(session)
        return self._await_refresh(session)

    def _await_refresh(self, session: Session) -> Session | None:
        if self.clock() < (session.tokens.access_expires or 0):
            return session  # the old token is still good while another worker refreshes
        for _ in range(max(1, int(self.options.refresh_wait / POLL))):
            self.sleep(POLL)
            current = self.sessions.reload(session)
            if current is None or (current.tokens.access_expires or 0) > self.clock():
                return current
        raise SessionUnavailable("your session is being refreshed; try again")

    def _refresh(self, session: Session) -> Session | None:
        try:
            response = self.client.refresh(session.tokens.refresh_token)
            tokens = self.client.tokens(response, previous=session.tokens)
            claims = None
            if response.get("id_token"):
                new = self.client.verify_id_token(response["id_token"], nonce=None,
                                                  previous=session.claims)
                claims = {**session.claims, **new}
        except (GrantRejected, TokenRejected) as exc:
            log.info("session refresh refused (%s): the session ends", exc)
            self.sessions.end(session)
            return None
        except ProviderUnavailable:
            if self.clock() < (session.tokens.access_expires or 0):
                return session
            raise SessionUnavailable("the identity provider cannot be reached to renew your "
                                     "session; try again shortly") from None
        return self.sessions.update_tokens(session, tokens, claims)  # None: logged out meanwhile

    # -- logout --------------------------------------------------------------------
    def logout(self, request: Request) -> Response:
        """End the session here (everywhere within a second), then at the provider."""
        site = request.headers.get("Sec-Fetch-Site")
        if not (same_origin(request, self.origin, self.options.allowed_origins)
                or (request.method == "GET" and site in ("same-origin", "none"))):
            return error_response(CrossSiteRefused(
                "sign out from this site's own pages").for_browser(True), None)
        if is_prefetch(request):  # a logout link prefetched or prerendered, not clicked
            return error_response(CrossSiteRefused(
                "a prefetch cannot sign out").for_browser(True), None)
        o = self.options
        id_token = None
        try:
            handle = request.cookies.get(self.cookie_name)
            session = self.sessions.load(handle) if handle else None
            if session is not None:
                id_token = session.tokens.id_token
                self.sessions.end(session)
                if o.revoke_on_logout and session.tokens.refresh_token:
                    self.client.revoke(session.tokens.refresh_token)
        except StoreError:
            return error_response(SessionUnavailable(
                "sign-out is unavailable: the session store cannot be reached").for_browser(True), None)
        except ProviderUnavailable:
            pass  # revocation is best effort; the local session is gone
        logged_out = o.origin + self.routes + "logged-out"
        location = self.client.end_session_url(id_token, logged_out) if id_token else None
        response = Response(status=303, headers={"Location": location or logged_out,
                                                 "Cache-Control": "no-store"})
        response.headers.add("Set-Cookie", cookie(self.cookie_name, "", max_age=0, secure=o.secure_cookies))
        return response

    def backchannel(self, request: Request) -> Response:
        """OpenID Connect Back-Channel Logout 1.0: end every session of a sid or sub."""
        headers = {"Cache-Control": "no-store"}
        if request.method != "POST":
            return Response(status=405, headers={**headers, "Allow": "POST"})
        try:
            sid, sub, claims = self.client.verify_logout_token(request.form.get("logout_token"))
            if not self.sessions.first_use(f"jti:{claims['iss']}\0{claims['jti']}",
                                           ttl=float(claims["exp"]) - self.clock() + 60):
                raise TokenRejected("this logout token was already used")  # a replay could
                # otherwise end sessions signed in after the logout it announced
            ended = self.sessions.end_all(claims["iss"], sid=sid, sub=sub)
        except TokenRejected as exc:
            log.info("back-channel logout refused: %s", exc)
            return Response('{"error":"invalid_request"}', status=400, headers=headers,
                            content_type="application/json")
        except (StoreError, ProviderUnavailable):
            return Response('{"error":"temporarily_unavailable"}', status=503, headers=headers,
                            content_type="application/json")
        log.info("back-channel logout ended %d session(s)", ended)
        return Response(status=200, headers=headers)

    def logged_out(self) -> Response:
        return html_response("Signed out", "You are signed out.")


def cookie_value(environ: dict, name: str) -> str | None:
    """One cookie's value, read straight from the header: the hot path of every signed-in
    request (werkzeug's full cookie parsing cost more than the session lookup)."""
    header = environ.get("HTTP_COOKIE")
    if not header or name not in header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"') or None
    return None
