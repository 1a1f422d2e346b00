"""Rules: the access decision for an identified request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..context import context_of
from ..errors import Forbidden, GatewayError, Unauthorized

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..context import RequestContext


class RuleSet(Protocol):
    """Decides an identified request.

    ``evaluate`` records what it decided in the context (policies, headers for the
    upstream, the trail) and raises a GatewayError (401 invalid_token, 403) to refuse.
    """

    name: str

    def evaluate(self, ctx: "RequestContext", request: "Request") -> None: ...


class AllowAll:
    """The rule set of an API with no rule file: every identified request passes.

    :param policy: the API's default policy, applied to every request whose credential
        grants none (API keys and users files grant theirs), and the access rights of
        the applied policies checked (None: no policy).
    :param policies: the config's policies by name.
    :param api: the API's name.
    """

    name = "allow-all"

    def __init__(self, policy: str | None = None, policies=None, api: str = ""):
        self.policy, self.policies, self.api = policy, policies or {}, api

    def evaluate(self, ctx: "RequestContext", request: "Request") -> None:
        granted = ctx.identity.policies if ctx.identity is not None else ()
        names = granted or ((self.policy,) if self.policy else ())
        if names:
            from ..policy.evaluate import access_refusal

            ctx.policies = names
            reason = access_refusal(self.policies, names, self.api, request.method, request.path)
            if reason:
                ctx.record("rules", self.name, "deny", reason)
                raise Forbidden(reason)
        ctx.record("rules", self.name, "allow")


class Rules:
    """Applies a :class:`RuleSet`; refused requests never reach the upstream.

    :param app: the WSGI app to wrap.
    :param rules: the rule set to apply.
    :param challenges: the API's ``WWW-Authenticate`` challenges, sent with a 401
        from a failed ``validate`` rule.
    """

    def __init__(self, app: Callable, *, rules: RuleSet, challenges: Sequence[str] = ()):
        self.app = app
        self.rules = rules
        self.challenges = tuple(challenges)

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        try:
            self.rules.evaluate(ctx, ctx.request(environ))
        except Unauthorized as err:
            ctx.decision = "invalid"
            return err.with_challenges(self.challenges)(environ, start_response)
        except GatewayError as err:
            ctx.decision = "deny"
            return err(environ, start_response)
        ctx.decision = ctx.decision or "allow"
        return self.app(environ, start_response)
