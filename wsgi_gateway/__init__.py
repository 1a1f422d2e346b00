"""wsgi-gateway: an identity-aware API gateway made of composable WSGI middlewares."""

from .app import Gateway, build_app
from .config import GatewayConfig, load_config
from .context import ENVIRON_KEY, RequestContext, context_of
from .errors import ConfigError, GatewayError
from .identity import ANONYMOUS, Identity
from .serve import from_config

__all__ = [
    "ANONYMOUS", "ENVIRON_KEY", "ConfigError", "Gateway", "GatewayConfig", "GatewayError",
    "Identity", "RequestContext", "build_app", "context_of", "from_config", "load_config",
]
