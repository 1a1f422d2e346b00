"""Authenticate: prove who the request is, with the API's methods tried in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..authn.base import Authenticator
from ..context import context_of
from ..errors import GatewayError, Unauthorized


class Authenticate:
    """Sets the context's identity, or answers 401 / 503 and stops the request.

    :param app: the WSGI app to wrap.
    :param authenticators: tried in order; the first that recognises a credential
        decides (a bad credential fails the request, it does not fall through).
    :param segregate_by_client: the session ID includes the client ID.

    When none recognises a credential the answer is 401 with every method's
    ``WWW-Authenticate`` challenge and no error code (RFC 6750 §3.1).
    """

    def __init__(self, app: Callable, *, authenticators: Sequence[Authenticator],
                 segregate_by_client: bool = False):
        if not authenticators:
            raise ValueError("Authenticate needs at least one authenticator")
        self.app = app
        self.authenticators = tuple(authenticators)
        self.segregate_by_client = segregate_by_client
        self.challenges = tuple(a.challenge for a in self.authenticators if a.challenge)

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        request = ctx.request(environ)
        try:
            for authenticator in self.authenticators:
                identity = authenticator.authenticate(request)
                if identity is not None:
                    ctx.identity = identity
                    ctx.session_id = identity.session_id(self.segregate_by_client)
                    ctx.record("authn", authenticator.id, "identified", identity.alias)
                    break
            else:
                ctx.record("authn", "-", "no credential")
                raise Unauthorized("credentials are required", challenges=self.challenges)
        except Unauthorized as err:
            ctx.decision = "unauthenticated"
            return err.with_challenges(self.challenges)(environ, start_response)
        except GatewayError as err:
            ctx.decision = "unavailable"
            return err(environ, start_response)
        return self.app(environ, start_response)
