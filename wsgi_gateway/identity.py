"""Who the request is: the verified :class:`Identity`, or the explicit :data:`ANONYMOUS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified identity, whatever method proved it.

    ``subject`` is the value of the identity claim; ``scopes`` and ``audiences`` are
    normalised to tuples; ``claims`` keeps what the credential carried, as sent.
    ``method`` is the id of the authenticator that decided.
    """

    method: str
    subject: str = ""
    issuer: str = ""
    client_id: str = ""
    scopes: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    expires_at: float | None = None
    claims: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    anonymous: bool = False

    @property
    def alias(self) -> str:
        """A short, loggable name: ``client_id:subject`` (never a credential)."""
        if self.anonymous:
            return "anonymous"
        return f"{self.client_id}:{self.subject}" if self.client_id else self.subject


ANONYMOUS = Identity(method="keyless", anonymous=True)
"""The identity of a request that an open (``keyless``) API let through."""
