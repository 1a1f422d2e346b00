"""Configuration: typed, frozen objects loaded from YAML and validated at start."""

from .loader import load_config
from .model import (
    ApiConfig,
    AuthMethodConfig,
    GatewayConfig,
    LoggingConfig,
    OpsConfig,
    RequestIdConfig,
    RoutingConfig,
    StoreConfig,
    UpstreamConfig,
)
from .secrets import Secret
from .units import Rate, parse_duration, parse_rate

__all__ = [
    "ApiConfig", "AuthMethodConfig", "GatewayConfig", "LoggingConfig", "OpsConfig",
    "Rate", "RequestIdConfig", "RoutingConfig", "Secret", "StoreConfig", "UpstreamConfig",
    "load_config", "parse_duration", "parse_rate",
]
