"""``rate_key``: a policy's CEL expression naming whose counter a request spends
(``identity.org`` rate-limits an organisation across its users)."""

from __future__ import annotations

import logging

from ..cel import CompileError, Engine, EvalError
from ..policy.variables import base_identity, token_variable

log = logging.getLogger("wsgi_gateway.limits")


class RateKey:
    """One compiled ``rate_key`` expression.

    :param source: the expression; it must give a string.
    :param engine: the CEL engine.
    :param where: ``policies.NAME.rate_key``, for errors.

    It reads ``claims``, ``token``, ``identity`` (as mapped by the rules, when the API
    has a rule file) and ``api``. An error or an empty result falls back to the session
    (still limited, never unlimited).
    """

    def __init__(self, source: str, engine: Engine, where: str):
        from ..errors import ConfigError

        self.source, self.engine = source, engine
        try:
            self.program = engine.compile(source)
        except CompileError as exc:
            raise ConfigError(f"{where}: {exc.message}\n    {source}\n    {' ' * (exc.column - 1)}^") from None
        roots = {ref.partition(".")[0] for ref in self.program.references}
        if not roots <= {"claims", "token", "identity", "api"}:
            raise ConfigError(f"{where}: a rate_key reads only claims, token, identity and api")

    def subject(self, ctx, request) -> str | None:
        identity = ctx.identity
        if identity is None:
            return None
        mapped = ctx.mapped_identity or base_identity(identity)
        convert = self.engine.convert
        activation = {"claims": convert(dict(identity.claims)), "token": convert(token_variable(identity)),
                      "identity": convert(mapped), "api": convert(ctx.api or "")}
        try:
            value = self.program.evaluate(activation)
        except EvalError as exc:
            ctx.record("limits", "rate_key", f"error: {exc.message}", "fell back to the session")
            return None
        if not isinstance(value, str) or not value:
            return None
        return f"key:{value}"
