"""LoginRoutes: the reserved browser-login paths, answered before anything is routed.

``<routes>login?return_to=/path`` starts a sign-in, ``callback`` finishes it,
``logout`` signs out (here, then at the provider), ``logged-out`` is the landing page
and ``backchannel-logout`` takes the provider's logout tokens. Everything else passes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...context import context_of
from ...errors import GatewayError
from .login import LoginFlow
from .pages import error_response, html_response


class LoginRoutes:
    """Thin WSGI adapter over :class:`~.login.LoginFlow`.

    :param app: the WSGI app to wrap (the ops endpoints and the router).
    :param flows: login flows by their routes prefix.
    """

    def __init__(self, app: Callable, *, flows: Mapping[str, LoginFlow]):
        self.app = app
        self.flows = dict(flows)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        for prefix, flow in self.flows.items():
            if path.startswith(prefix):
                ctx = context_of(environ)
                ctx.api = "-login"
                return self._answer(flow, path[len(prefix):], ctx.request(environ),
                                    ctx.request_id)(environ, start_response)
        return self.app(environ, start_response)

    @staticmethod
    def _answer(flow: LoginFlow, endpoint: str, request, request_id):
        try:
            if endpoint == "login" and request.method == "GET":
                redirect = flow.start(request, request.args.get("return_to"))
                return error_response(redirect, request_id)
            if endpoint == "callback" and request.method == "GET":  # never HEAD: it consumes
                return flow.callback(request)
            if endpoint == "logout" and request.method in ("GET", "POST"):
                return flow.logout(request)
            if endpoint == "logged-out" and request.method in ("GET", "HEAD"):
                return flow.logged_out()
            if endpoint == "backchannel-logout":
                return flow.backchannel(request)
        except GatewayError as err:
            return error_response(err, request_id)
        return html_response("Not Found", "There is nothing here.", status=404)
