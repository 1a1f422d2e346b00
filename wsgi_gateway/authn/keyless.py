"""``keyless``: open access. Every request gets the explicit ANONYMOUS identity."""

from __future__ import annotations

from dataclasses import dataclass

from ..identity import ANONYMOUS, Identity
from .credentials import CredentialPlaces
from .registry import Method, register


@dataclass(frozen=True)
class KeylessOptions:
    """keyless takes no options."""


class Keyless:
    """Lets every request through as :data:`~wsgi_gateway.identity.ANONYMOUS`.

    Listed last in an ``auth`` list, it is the anonymous fallback after real methods.
    """

    id = "keyless"
    challenge = None
    credentials = CredentialPlaces()

    def authenticate(self, request) -> Identity:
        return ANONYMOUS

    def ready(self) -> str | None:
        return None


register(Method("keyless", KeylessOptions, lambda options, build, api: Keyless()))
