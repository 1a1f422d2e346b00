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
    :param mode: ``any`` (the first method that recognises a credential decides) or
        ``all`` (every method must succeed; the identity is ``identity_from``'s, else the
        first method's, as Tyk's ``base_identity_provided_by``).
    :param identity_from: with ``all``, the id of the method whose identity counts.

    When none recognises a credential the answer is 401 with every method's
    ``WWW-Authenticate`` challenge and no error code (RFC 6750 §3.1).
    """

    def __init__(self, app: Callable, *, authenticators: Sequence[Authenticator],
                 segregate_by_client: bool = False, mode: str = "any",
                 identity_from: str | None = None):
        if not authenticators:
            raise ValueError("Authenticate needs at least one authenticator")
        self.app = app
        self.authenticators = tuple(authenticators)
        self.segregate_by_client = segregate_by_client
        self.mode = mode
        self.identity_from = identity_from or self.authenticators[0].id
        self.challenges = tuple(a.challenge for a in self.authenticators if a.challenge)

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        request = ctx.request(environ)
        try:
            identity = self._all(ctx, request) if self.mode == "all" else self._any(ctx, request)
            ctx.identity = identity
            ctx.session_id = identity.session_id(self.segregate_by_client)
        except Unauthorized as err:
            ctx.decision = "unauthenticated"
            return err.with_challenges(self.challenges)(environ, start_response)
        except GatewayError as err:
            ctx.decision = "unavailable"
            return err(environ, start_response)
        return self.app(environ, start_response)

    def _any(self, ctx, request):
        for authenticator in self.authenticators:
            identity = _attempt(ctx, authenticator, request)
            if identity is not None:
                ctx.record("authn", authenticator.id, "identified", identity.alias)
                return identity
        ctx.record("authn", "-", "no credential")
        self._prompt(request)
        raise Unauthorized("credentials are required", challenges=self.challenges)

    def _prompt(self, request) -> None:
        """A method that can sign a person in (browser login) answers a navigation
        without credentials with its own redirect (it raises); scripts get the 401."""
        for authenticator in self.authenticators:
            prompt = getattr(authenticator, "login_prompt", None)
            if prompt is not None:
                prompt(request)

    def _all(self, ctx, request):
        chosen = first = None
        for authenticator in self.authenticators:
            identity = _attempt(ctx, authenticator, request)
            if identity is None:
                ctx.record("authn", authenticator.id, "no credential")
                self._prompt(request)
                raise Unauthorized("every credential of this API is required",
                                   challenges=self.challenges)
            ctx.record("authn", authenticator.id, "identified", identity.alias)
            first = first or identity
            if authenticator.id == self.identity_from and chosen is None:
                chosen = identity
        return chosen or first


def _attempt(ctx, authenticator: Authenticator, request):
    """``authenticator.authenticate``, its failure in the trail as its problem code (the
    metrics and the audit log name the method that refused, and why)."""
    try:
        return authenticator.authenticate(request)
    except GatewayError as err:
        ctx.record("authn", authenticator.id, "failed", err.code)
        raise
