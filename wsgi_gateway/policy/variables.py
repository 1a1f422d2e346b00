"""The CEL variables a rule sees, as plain Python values.

``claims`` (as sent), ``token`` (normalised), ``identity`` (the result of ``map`` over a
base built from the verified identity), ``request``, ``session``, ``api`` and ``now``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..identity import Identity

TOKEN_ROOTS = frozenset({"claims", "token", "identity", "api", "cert"})  # fixed for one token and API


def token_variable(identity: Identity) -> dict[str, Any]:
    """``token``: iss, sub, aud (list), scopes (list), client_id, exp, kind, method."""
    return {
        "iss": identity.issuer,
        "sub": identity.subject,
        "aud": list(identity.audiences),
        "scopes": list(identity.scopes),
        "client_id": identity.client_id,
        "exp": int(identity.expires_at) if isinstance(identity.expires_at, (int, float)) else 0,
        "kind": identity.token_kind,
        "method": identity.method,
        "provider": identity.provider,
    }


def cert_variable(identity: Identity) -> dict[str, Any]:
    """``cert``: the client certificate an ``mtls`` identity was proved by (subject, cn,
    issuer, serial, not_before, not_after, san, fingerprint); empty for other methods."""
    if identity.method != "mtls":
        return {}
    return dict(identity.claims)


def base_identity(identity: Identity) -> dict[str, Any]:
    """``identity`` before ``map``: what the authenticator proved. ``map`` overrides keys."""
    return {
        "id": identity.subject,
        "username": identity.subject,
        "groups": [],
        "org": identity.org,
        "client_id": identity.client_id,
        "anonymous": identity.anonymous,
        "method": identity.method,
    }


def request_variable(environ: dict, request) -> dict[str, Any]:
    """``request``: method, path, host, scheme, headers (lower-cased names), query
    (first value of each parameter), remote_addr."""
    return {
        "method": environ.get("REQUEST_METHOD", ""),
        "path": environ.get("PATH_INFO", "") or "/",
        "host": request.host,
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query": {k: v for k, v in request.args.items()},
        "remote_addr": environ.get("REMOTE_ADDR", ""),
    }


def now_variable(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def session_variable(record: dict | None) -> dict[str, Any]:
    """``session``: id, created, last_seen (Unix seconds), meta; empty without a session."""
    if not record:
        return {"id": "", "created": 0.0, "last_seen": 0.0, "meta": {}}
    return {"id": record.get("id", ""), "created": float(record.get("created", 0.0)),
            "last_seen": float(record.get("last_seen", 0.0)), "meta": dict(record.get("meta") or {})}


def limits_variable(verdicts) -> dict[str, Any]:
    """``limits`` (headers only): ``rate`` and ``quota``, each with ``limit``,
    ``remaining`` and ``reset`` (seconds); an absent limit is an empty map."""
    out: dict[str, Any] = {"rate": {}, "quota": {}}
    for v in verdicts or ():
        out[v.kind] = {"limit": v.limit, "remaining": v.remaining, "reset": int(v.resets_in + 0.999)}
    return out
