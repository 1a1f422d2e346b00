"""LimitHeaders: the rule-file headers that read ``limits``, between Limits and Mutate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..context import context_of


class LimitHeaderRules(Protocol):
    """What this stage needs from a rule set (``policy.evaluate.CelRuleSet`` has it)."""

    def limit_headers(self, ctx, request) -> dict[str, str]: ...


class LimitHeaders:
    """Adds the header rules that read ``limits`` once the Limits layer has counted.

    Such rules cannot run in the Rules layer (nothing is counted yet) and the Limits
    layer must not call back into the rules; so they get their own stage, and the
    request flows down the stack in one direction.

    :param app: the WSGI app to wrap (Mutate).
    :param rules: the API's rule set.
    """

    def __init__(self, app: Callable, *, rules: LimitHeaderRules):
        self.app = app
        self.rules = rules

    def __call__(self, environ, start_response):
        ctx = context_of(environ)
        ctx.upstream_headers.update(self.rules.limit_headers(ctx, ctx.request(environ)))
        return self.app(environ, start_response)
