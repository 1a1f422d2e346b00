"""Request mutation for the upstream: strip, drop, inject headers."""

from .headers import (
    check_header_value, drop_cookies, drop_headers, drop_query, environ_key, inject_headers,
)

__all__ = [
    "check_header_value", "drop_cookies", "drop_headers", "drop_query", "environ_key",
    "inject_headers",
]
