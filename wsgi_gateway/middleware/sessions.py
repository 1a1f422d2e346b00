"""Sessions: the identity's session record, and revocation, before rules and limits."""

from __future__ import annotations

from collections.abc import Callable

from ..context import context_of
from ..errors import GatewayError, Unauthorized


class SessionLayer:
    """Loads the session of an identified request into the context.

    :param app: the WSGI app to wrap.
    :param sessions: the :class:`~wsgi_gateway.limits.sessions.Sessions` store.
    :param header: when set, the session ID is sent upstream under this header.
    :param challenges: the API's ``WWW-Authenticate`` challenges, for a revoked session.
    """

    def __init__(self, app: Callable, *, sessions, header: str | None = None, challenges=()):
        self.app = app
        self.sessions = sessions
        self.header = header
        self.challenges = tuple(challenges)

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        try:
            record = self.sessions.resolve(ctx)
        except Unauthorized as err:
            ctx.decision = "revoked"
            return err.with_challenges(self.challenges)(environ, start_response)
        except GatewayError as err:
            ctx.decision = "unavailable"
            return err(environ, start_response)
        if record is None:
            return self.app(environ, start_response)
        ctx.session_record = record
        if self.header:
            ctx.upstream_headers[self.header] = ctx.session_id
        result = self.app(environ, start_response)
        # the rules have set ctx.policies by now (and the limits may have added the record)
        self.sessions.touch(ctx, ctx.session_record or record)
        return result
