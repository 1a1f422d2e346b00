"""Who the request is: the verified :class:`Identity`, or the explicit :data:`ANONYMOUS`."""

from __future__ import annotations

import hashlib
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
    org: str = ""          # the organisation claim, when the provider names one
    provider: str = ""     # the provider (issuer config) that vouched for it
    token_kind: str = ""   # "access" or "id" for tokens
    policies: tuple[str, ...] = ()  # granted by the credential itself (API keys, users
    #                                 files); never taken from token claims

    @property
    def alias(self) -> str:
        """A short, loggable name: ``client_id:subject`` (never a credential)."""
        if self.anonymous:
            return "anonymous"
        return f"{self.client_id}:{self.subject}" if self.client_id else self.subject


    def session_id(self, segregate_by_client: bool = False) -> str | None:
        """The internal session ID: a digest of (org or issuer, subject[, client ID]).

        It does not depend on the credential, so quotas follow an identity across
        token re-issue; with ``segregate_by_client`` each client gets its own session.
        """
        if self.anonymous:
            return None
        parts = [self.org or self.issuer or self.method, self.subject]
        if segregate_by_client:
            parts.append(self.client_id)
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


ANONYMOUS = Identity(method="keyless", anonymous=True)
"""The identity of a request that an open (``keyless``) API let through."""
