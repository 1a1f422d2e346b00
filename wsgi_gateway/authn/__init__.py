"""Authentication: the Authenticator protocol and the registry of methods by id."""

from .base import Authenticator
from .keyless import Keyless
from .registry import Method, get_method, register

__all__ = ["Authenticator", "Keyless", "Method", "get_method", "register"]
