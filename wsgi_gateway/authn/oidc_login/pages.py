"""What a browser or a script sees: redirects, small HTML pages, problem bodies, cookies.

The errors here belong to the gateway's one hierarchy (:mod:`wsgi_gateway.errors`);
they only change how they render: a person's navigation gets a short HTML page, a
script the usual ``application/problem+json``. Page text is fixed or escaped.
"""

from __future__ import annotations

import html

from werkzeug.wrappers import Response

from ...errors import (
    BadRequest, Forbidden, GatewayError, ServiceUnavailable, TooManyRequests, Unauthorized,
)


class LoginRedirect(Unauthorized):
    """A navigation without a session: 302 to the provider (with the pre-login cookie)."""

    def __init__(self, location: str, cookies: list[str]):
        super().__init__("sign-in required")
        self.location, self.cookies = location, cookies

    def render(self, request_id=None):
        headers = [("Location", self.location), ("Cache-Control", "no-store"),
                   ("Content-Length", "0"), *(("Set-Cookie", c) for c in self.cookies)]
        return "302 Found", headers, b""


class HtmlForBrowsers:
    """Mixin: renders as a small HTML page when ``html_page`` is set (a navigation)."""

    html_page = False

    def for_browser(self, html_page: bool):
        self.html_page = html_page
        return self

    def render(self, request_id=None):
        status, headers, body = super().render(request_id)
        if not self.html_page:
            return status, headers, body
        page = _page(self.title, self.detail or self.title,
                     f"Request ID: {request_id}" if request_id else "")
        headers = [(k, v) for k, v in headers if k not in ("Content-Type", "Content-Length")]
        return status, [("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(page))), *headers], page


class SessionUnavailable(HtmlForBrowsers, ServiceUnavailable):
    """The session store or the provider cannot be reached: 503, never a redirect loop."""

    code = "login_unavailable"


class SignInsThrottled(HtmlForBrowsers, TooManyRequests):
    """More sign-ins start on this worker than ``start_rate`` allows."""

    code = "sign_ins_throttled"


class LoginFailed(HtmlForBrowsers, BadRequest):
    """A callback that cannot become a session (altered, replayed, late, other browser)."""

    code = "login_failed"


class CrossSiteRefused(HtmlForBrowsers, Forbidden):
    """An unsafe method with the session cookie from another origin."""

    code = "cross_site_request"


class SessionEnded(HtmlForBrowsers, Unauthorized):
    """A script whose session is gone (logged out, timed out, refresh refused)."""

    code = "session_required"


def html_response(title: str, text: str, status: int = 200, headers=()) -> Response:
    return Response(_page(title, text), status=status, headers=[("Cache-Control", "no-store"),
                                                                 *headers],
                    content_type="text/html; charset=utf-8")


def error_response(error: GatewayError, request_id: str | None) -> Response:
    status, headers, body = error.render(request_id)
    response = Response(body, status=int(status.split()[0]))
    response.headers.clear()
    for name, value in headers:
        response.headers.add(name, value)
    return response


def _page(title: str, text: str, footer: str = "") -> bytes:
    return ("<!doctype html><html><head><meta charset=utf-8><title>" + html.escape(title) +
            "</title></head><body><h1>" + html.escape(title) + "</h1><p>" + html.escape(text) +
            "</p>" + (f"<p><small>{html.escape(footer)}</small></p>" if footer else "") +
            '<p><a href="/">Home</a></p></body></html>').encode()


def cookie(name: str, value: str, *, max_age: int, secure: bool) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, Path=/ (and Secure unless dev)."""
    return (f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
            + ("; Secure" if secure else ""))
