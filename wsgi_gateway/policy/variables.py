"""The CEL variables a rule sees, as plain Python values.

``claims`` (as sent), ``token`` (normalised), ``identity`` (the result of ``map`` over a
base built from the verified identity), ``request``, ``session``, ``api`` and ``now``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..identity import Identity
from ..cel.shapes import ANY, BOOL, DOUBLE, INT, LIST, MAP, STRING, TIMESTAMP, Shape, Shapes, record, scalar

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


# --- declared shapes (checked when a rule file loads; see shapes.py) -------------------

_STR, _LIST_OF_STR = scalar(STRING), Shape(LIST, values=scalar(STRING))
_LIMIT = record(limit=scalar(INT), remaining=scalar(INT), reset=scalar(INT))

#: What each variable holds; ``identity`` gains the names of the file's ``map`` entries.
DECLARED: dict[str, Shape] = {
    "claims": ANY,
    "request": record(method=_STR, path=_STR, host=_STR, scheme=_STR, remote_addr=_STR,
                      headers=Shape(MAP, values=_STR, lower_keys=True),
                      query=Shape(MAP, values=_STR)),
    "token": record(iss=_STR, sub=_STR, aud=_LIST_OF_STR, scopes=_LIST_OF_STR, client_id=_STR,
                    exp=scalar(INT), kind=_STR, method=_STR, provider=_STR),
    "identity": record(id=_STR, username=_STR, groups=Shape(LIST), org=_STR, client_id=_STR,
                       anonymous=scalar(BOOL), method=_STR),
    "session": record(id=_STR, created=scalar(DOUBLE), last_seen=scalar(DOUBLE), meta=Shape(MAP)),
    "limits": record(rate=_LIMIT, quota=_LIMIT),
    "cert": record(subject=_STR, cn=_STR, issuer=_STR, serial=_STR, not_before=scalar(INT),
                   not_after=scalar(INT), fingerprint=_STR, **{"x5t#S256": _STR},
                   san=record(dns=_LIST_OF_STR, email=_LIST_OF_STR, uri=_LIST_OF_STR)),
    "api": _STR,
    "now": scalar(TIMESTAMP),
}


def declared_shapes(mapped: dict[str, Shape] | None = None) -> Shapes:
    """The variables' shapes, ``identity`` extended by ``map`` entries (name → shape)."""
    roots = dict(DECLARED)
    if mapped:
        roots["identity"] = roots["identity"].with_fields(mapped)
    return Shapes(roots)
