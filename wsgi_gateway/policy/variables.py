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


#: What each declared variable and field means: the generated CEL variables reference
#: (docs/reference/cel-variables.md) is built from ``DECLARED`` and this table, and a test
#: fails when a declared path has no entry here (or an entry names no declared path).
DESCRIBED: dict[str, str] = {
    "claims": "The verified token's claims, as sent: open (any field, dyn).",
    "request": "The request being decided (not readable by map: an identity must not depend on it).",
    "request.method": "The HTTP method, e.g. GET.",
    "request.path": "The path, / when empty.",
    "request.host": "The Host the client asked for.",
    "request.scheme": "http or https.",
    "request.remote_addr": "The peer's address (REMOTE_ADDR).",
    "request.headers": "Header values by lower-case name: request.headers['x-tenant'] "
                       "(a name with capitals is a load error).",
    "request.query": "The first value of each query parameter.",
    "token": "The credential, normalised across methods.",
    "token.iss": "The issuer.",
    "token.sub": "The subject.",
    "token.aud": "The audiences, always a list.",
    "token.scopes": "The scopes, from the provider's scope_claim.",
    "token.client_id": "The client the token was issued to.",
    "token.exp": "Expiry, Unix seconds (0 without one).",
    "token.kind": "access or id.",
    "token.method": "The authentication method that proved it (jwt, apikey, ...).",
    "token.provider": "The provider's name, for jwt and introspection.",
    "identity": "Who the request is, after the rule file's map (whose entries add or "
                "override fields, typed as their expressions); map itself sees the unmapped one.",
    "identity.id": "The identity's ID (the subject unless map says otherwise).",
    "identity.username": "A display name (the subject unless map says otherwise).",
    "identity.groups": "Groups (empty unless map fills it).",
    "identity.org": "The organisation (the provider's org_claim).",
    "identity.client_id": "The client ID.",
    "identity.anonymous": "true for keyless requests.",
    "identity.method": "The authentication method.",
    "session": "The identity's session record; empty values without one.",
    "session.id": "The session ID.",
    "session.created": "First use, Unix seconds.",
    "session.last_seen": "Last use, Unix seconds (written at most every touch_interval).",
    "session.meta": "Free metadata stored with the session (open map).",
    "limits": "Only in headers: the limits just counted for this request.",
    "limits.rate": "The rate limit (an empty map without one).",
    "limits.rate.limit": "Requests allowed per period.",
    "limits.rate.remaining": "Requests left in this period.",
    "limits.rate.reset": "Seconds until the period ends.",
    "limits.quota": "The quota (an empty map without one).",
    "limits.quota.limit": "Requests allowed per quota period.",
    "limits.quota.remaining": "Requests left in this quota period.",
    "limits.quota.reset": "Seconds until the quota renews.",
    "cert": "For mtls identities, the client certificate; empty otherwise.",
    "cert.subject": "The subject DN, RFC 4514.",
    "cert.cn": "The subject's common name.",
    "cert.issuer": "The issuer DN, RFC 4514.",
    "cert.serial": "The serial number, hex.",
    "cert.not_before": "Start of validity, Unix seconds.",
    "cert.not_after": "End of validity, Unix seconds.",
    "cert.fingerprint": "SHA-256 of the DER certificate, hex.",
    "cert.x5t#S256": "The same, base64url (RFC 8705 confirmation).",
    "cert.san": "Subject alternative names.",
    "cert.san.dns": "DNS names.",
    "cert.san.email": "Email addresses.",
    "cert.san.uri": "URIs (e.g. SPIFFE IDs).",
    "api": "The API's name.",
    "now": "The current time (from the injected clock).",
}
