"""The WSGI layers, one concern each, in the order a request meets them."""

from .authenticate import Authenticate
from .context import RequestContextMiddleware
from .limits import Limiter, Limits, NoLimits
from .mutate import Mutate
from .ops import OpsEndpoints
from .router import Router
from .rules import AllowAll, Rules, RuleSet

__all__ = [
    "AllowAll", "Authenticate", "Limiter", "Limits", "Mutate", "NoLimits", "OpsEndpoints",
    "RequestContextMiddleware", "Router", "RuleSet", "Rules",
]
