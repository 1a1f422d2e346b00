"""Request mutation for the upstream: strip, drop, inject headers."""

from .headers import (
    check_header_value, drop_cookies, drop_headers, drop_query, environ_key, inject_headers,
)
from .identity_headers import DEFAULT_IDENTITY_HEADERS, PROXY_HEADERS
from .strip import ClientHeaderStrip, TrustedProxies

__all__ = [
    "DEFAULT_IDENTITY_HEADERS", "PROXY_HEADERS", "ClientHeaderStrip", "TrustedProxies",
    "check_header_value", "drop_cookies", "drop_headers", "drop_query", "environ_key",
    "inject_headers",
]
