"""From verified claims to the gateway's Identity: identity, scopes, audiences, org."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...config.providers import ProviderConfig
from ...identity import Identity
from .verify import TokenRejected, Verified

_MISSING = object()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``: the whole name first (``https://x/roles``), else dot notation
    into nested objects (``realm_access.roles``). None when absent."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def scopes_of(value: Any) -> tuple[str, ...]:
    """Scopes from a space-delimited string or a list of strings (others ignored)."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def to_identity(verified: Verified, provider: ProviderConfig) -> Identity:
    """The Identity a verified token proves; raises TokenRejected without a usable subject."""
    claims = verified.claims
    subject = claim_at(claims, provider.identity_claim)
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = str(subject)
    if not isinstance(subject, str) or not subject:
        raise TokenRejected("the token has no usable identity claim")
    aud = claims.get("aud")
    org = claim_at(claims, provider.org_claim) if provider.org_claim else None
    return Identity(
        method="jwt",
        subject=subject,
        issuer=provider.issuer,
        client_id=verified.client_id,
        scopes=scopes_of(claim_at(claims, provider.scope_claim)),
        audiences=(aud,) if isinstance(aud, str) else tuple(aud or ()),
        expires_at=claims.get("exp"),
        claims=MappingProxyType(claims),
        org=org if isinstance(org, str) else "",
        provider=provider.name,
        token_kind=verified.kind,
    )
