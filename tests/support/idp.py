"""A real OpenID Connect identity provider for tests, served over loopback HTTP.

``TestIdP`` runs a small werkzeug application on a free ``127.0.0.1`` port in a
background thread. It publishes an OpenID Connect discovery document and a JWK
set, mints JWT access tokens signed with joserfc, and implements just enough
OAuth 2.0 for the gateway's tests: a ``client_credentials`` token endpoint and
an RFC 7662 introspection endpoint.

It can also produce hostile tokens on purpose (``forge``, ``tamper``,
``sign_raw``, ``sign_hmac``) and simulate a misbehaving provider (outage via
``stop``/``start`` on the same port, ``set_delay``, ``set_status``), and it
counts requests so tests can assert how often the JWK set was fetched.

Typical use::

    with TestIdP() as idp:
        token = idp.issue({"scope": "read"})
        requests.get(idp.jwks_uri).json()   # the public keys
        idp.rotate()                        # new signing key, old one still published

Key material: RSA keys are 2048-bit and come from a per-process pool, because
generating them costs ~60 ms each. Within one ``TestIdP`` every key is distinct,
but two ``TestIdP`` instances in the same process may hold the same RSA key
material (under different ``kid`` values). Pass ``fresh=True`` to ``add_key``
when a test needs an RSA key no other instance has.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = ["TestIdP", "SUPPORTED_ALGORITHMS", "b64url"]

#: JWS algorithm -> (joserfc key type, key size in bits or curve name).
#: "Ed25519" is the RFC 9864 fully-specified name of "EdDSA" over Ed25519.
SUPPORTED_ALGORITHMS: dict[str, tuple[str, int | str]] = {
    "RS256": ("RSA", 2048),
    "RS384": ("RSA", 2048),
    "RS512": ("RSA", 2048),
    "PS256": ("RSA", 2048),
    "PS384": ("RSA", 2048),
    "PS512": ("RSA", 2048),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
    "HS256": ("oct", 256),
    "HS384": ("oct", 384),
    "HS512": ("oct", 512),
}

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
TOKEN_PATH = "/token"
INTROSPECTION_PATH = "/introspect"
AUTHORIZATION_PATH = "/authorize"
END_SESSION_PATH = "/logout"
REVOCATION_PATH = "/revoke"
USERINFO_PATH = "/userinfo"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def b64url(data: bytes | str) -> str:
    """Base64url-encode ``data`` without padding (RFC 7515 section 2)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment_bytes(value: Mapping[str, Any] | bytes | str) -> bytes:
    """Turn a header/payload given as a dict (compact JSON) or raw text/bytes into bytes."""
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


# -- key material ------------------------------------------------------------------

_RSA_POOL: list[dict[str, Any]] = []
_RSA_POOL_LOCK = threading.Lock()


def _pooled_rsa_jwk(index: int) -> dict[str, Any]:
    """Return the ``index``-th private RSA JWK of the per-process pool, growing it as needed."""
    with _RSA_POOL_LOCK:
        while len(_RSA_POOL) <= index:
            _RSA_POOL.append(dict(RSAKey.generate_key(2048).as_dict(private=True)))
        return _RSA_POOL[index]


def _generate_key(alg: str, kid: str, rsa_index: int | None) -> Key:
    """Generate a private joserfc key for ``alg``; ``rsa_index`` picks a pooled RSA key."""
    key_type, size_or_curve = SUPPORTED_ALGORITHMS[alg]
    params = {"kid": kid}
    if key_type == "RSA":
        if rsa_index is None:
            return RSAKey.generate_key(int(size_or_curve), parameters=params)
        pooled = {k: v for k, v in _pooled_rsa_jwk(rsa_index).items() if k != "kid"}
        return RSAKey.import_key(pooled, parameters=params)
    if key_type == "EC":
        return ECKey.generate_key(size_or_curve, parameters=params)  # type: ignore[arg-type]
    if key_type == "OKP":
        return OKPKey.generate_key(size_or_curve, parameters=params)  # type: ignore[arg-type]
    return OctKey.generate_key(int(size_or_curve), parameters=params)


def _signature(signing_input: bytes, key: Key, alg: str) -> bytes:
    """Sign ``signing_input`` with joserfc's implementation of ``alg`` (``none`` gives b"")."""
    if alg == "none":
        return b""
    model = JWSRegistry.algorithms.get(alg)
    if model is None:
        raise ValueError(f"joserfc has no JWS algorithm {alg!r}")
    model.check_key(key)  # key type / curve must fit the algorithm
    return model.sign(signing_input, key)


@dataclass
class _KeyEntry:
    """One signing key held by the provider."""

    kid: str
    alg: str
    key: Key  # private joserfc key, carrying only "kid" as a parameter
    published: bool

    @property
    def symmetric(self) -> bool:
        return self.key.key_type == "oct"

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as published in the JWK set (with kid, use and alg)."""
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": self.alg}


@dataclass
class _IssuedToken:
    """A token known to the introspection endpoint."""

    claims: dict[str, Any]
    revoked: bool = False

    def active(self, now: float) -> bool:
        exp, nbf = self.claims.get("exp"), self.claims.get("nbf")
        if self.revoked:
            return False
        if isinstance(exp, (int, float)) and exp <= now:
            return False
        return not (isinstance(nbf, (int, float)) and nbf > now)


class _OAuthError(Exception):
    """An RFC 6749 section 5.2 error response."""

    def __init__(self, status: int, error: str, description: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.description = status, error, description
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        headers = {"WWW-Authenticate": 'Basic realm="test-idp"'} if self.status == 401 else {}
        return _json_response(body, self.status, {**headers, **self.headers})


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=dict(headers or {}))


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request to the ``werkzeug`` logger."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# -- the provider --------------------------------------------------------------------


class TestIdP:
    """An OpenID Connect provider on loopback HTTP, with fault injection and token forging.

    :param issuer_path: path part of the issuer, e.g. ``"/realms/test"`` (default: none)
    :param host: loopback address to bind
    :param port: port to bind; 0 picks a free one on first ``start()``, which is then reused
    :param default_alg: algorithm of the initial signing key (None: start with no keys)
    :param jwks_max_age: ``Cache-Control: max-age`` of the JWK set (None: no header)
    :param audience: default ``aud`` of issued tokens
    :param client_id: default ``client_id``/``azp`` of issued tokens
    :param subject: default ``sub`` of issued tokens
    :param scope: default ``scope`` of issued tokens and of registered clients
    :param typ: default ``typ`` JOSE header of issued tokens (RFC 9068 ``at+jwt``)
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        *,
        issuer_path: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        default_alg: str | None = "RS256",
        jwks_max_age: int | None = 300,
        audience: str | list[str] = "test-api",
        client_id: str = "test-client",
        subject: str = "test-user",
        scope: str = "read write",
        typ: str | None = "at+jwt",
    ):
        if issuer_path and (not issuer_path.startswith("/") or issuer_path.endswith("/")):
            raise ValueError("issuer_path must start with '/' and not end with '/'")
        self.host, self.issuer_path = host, issuer_path
        self.audience, self.client_id, self.subject, self.scope, self.typ = audience, client_id, subject, scope, typ
        self.jwks_max_age = jwks_max_age
        #: extra/overriding members of the discovery document (e.g. a wrong "issuer")
        self.discovery_overrides: dict[str, Any] = {}
        #: raw JWK dicts appended to the published set as-is (e.g. unknown kty, duplicate kid)
        self.extra_jwks: list[dict[str, Any]] = []
        self.token_ttl = 300
        #: the provider's clock (tests share a fake clock with the gateway)
        self.clock = time.time
        #: browser login: users, codes, refresh tokens, provider sessions, counters
        self.login = _LoginState()

        self._lock = threading.RLock()
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._delay = 0.0
        self._status_overrides: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._keys: dict[str, _KeyEntry] = {}
        self._rsa_used = 0
        self._signing_kid: str | None = None
        self._clients: dict[str, tuple[str, str]] = {}
        self._tokens: dict[str, _IssuedToken] = {}
        if default_alg is not None:
            self.add_key(default_alg)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> TestIdP:
        """Serve on the loopback port (the same port again after a ``stop()``)."""
        with self._lock:
            if self._server is not None:
                return self
            server = make_server(self.host, self._port, self._wsgi_app, threaded=True, request_handler=_QuietHandler)
            self._port = server.server_address[1]
            self._stopping.clear()
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"TestIdP:{self._port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; keys, clients and tokens are kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._stopping.set()  # wakes requests sleeping in set_delay()
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()

    @property
    def running(self) -> bool:
        """Whether the HTTP server is currently serving."""
        return self._server is not None

    def __enter__(self) -> TestIdP:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known after the first ``start()``)."""
        if not self._port:
            raise RuntimeError("TestIdP has no port yet: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """Scheme, host and port, without the issuer path."""
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier, e.g. ``http://127.0.0.1:PORT/realms/test``."""
        return self.base_url + self.issuer_path

    def url(self, path: str = "") -> str:
        """Absolute URL of ``path`` relative to the issuer (``url("/jwks")``)."""
        return self.issuer + path

    @property
    def discovery_url(self) -> str:
        return self.url(DISCOVERY_PATH)

    @property
    def jwks_uri(self) -> str:
        return self.url(JWKS_PATH)

    @property
    def token_endpoint(self) -> str:
        return self.url(TOKEN_PATH)

    @property
    def introspection_endpoint(self) -> str:
        return self.url(INTROSPECTION_PATH)

    # -- keys ------------------------------------------------------------------------

    def add_key(self, alg: str, kid: str | None = None, *, publish: bool = True, fresh: bool = False) -> str:
        """Generate a key for ``alg`` and return its kid.

        Asymmetric keys are published in the JWK set unless ``publish=False`` (a key
        the verifier cannot know). HMAC keys are never published; see ``secret()``.
        The first key added becomes ``signing_kid``. ``fresh=True`` generates a new
        RSA key instead of taking one from the per-process pool.
        """
        if alg not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"unsupported algorithm {alg!r}; choose from {sorted(SUPPORTED_ALGORITHMS)}")
        with self._lock:
            kid = kid or self._new_kid(alg)
            if kid in self._keys:
                raise ValueError(f"kid {kid!r} already exists")
            rsa_index = None
            if SUPPORTED_ALGORITHMS[alg][0] == "RSA" and not fresh:
                rsa_index, self._rsa_used = self._rsa_used, self._rsa_used + 1
            key = _generate_key(alg, kid, rsa_index)
            entry = _KeyEntry(kid, alg, key, published=publish and key.key_type != "oct")
            self._keys[kid] = entry
            if self._signing_kid is None:
                self._signing_kid = kid
            return kid

    def rotate(self, alg: str | None = None) -> str:
        """Add a new published key (default: same alg as the current signing key) and sign with it.

        The previous keys stay published, as during a real key rollover.
        """
        with self._lock:
            alg = alg or (self._entry(self._signing_kid).alg if self._signing_kid else "RS256")
            kid = self.add_key(alg)
            self._signing_kid = kid
            return kid

    def remove_key(self, kid: str) -> None:
        """Unpublish ``kid`` from the JWK set. The key can still sign (``issue(kid=...)``),
        so tests can mint tokens with a retired key; ``signing_kid`` is left unchanged."""
        with self._lock:
            self._entry(kid).published = False

    @property
    def signing_kid(self) -> str | None:
        """kid used by ``issue()`` when no ``kid`` is given."""
        return self._signing_kid

    @signing_kid.setter
    def signing_kid(self, kid: str) -> None:
        with self._lock:
            self._entry(kid)
            self._signing_kid = kid

    def kids(self, *, published_only: bool = False) -> list[str]:
        """All kids in creation order (optionally only those in the JWK set)."""
        with self._lock:
            return [e.kid for e in self._keys.values() if e.published or not published_only]

    def alg_of(self, kid: str) -> str:
        """The algorithm a key was generated for."""
        return self._entry(kid).alg

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK set as currently published (without HTTP)."""
        with self._lock:
            keys = [e.public_jwk() for e in self._keys.values() if e.published]
            return {"keys": keys + [dict(jwk) for jwk in self.extra_jwks]}

    def public_jwk(self, kid: str) -> dict[str, Any]:
        """The public JWK of an asymmetric key, published or not (e.g. for a ``jwk`` header)."""
        entry = self._asymmetric(kid)
        return entry.public_jwk()

    def public_pem(self, kid: str) -> bytes:
        """SubjectPublicKeyInfo PEM of an asymmetric key (for the HS256 key-confusion attack)."""
        key = self._asymmetric(kid).key
        return key.as_pem(private=False)  # type: ignore[union-attr]

    def secret(self, kid: str) -> bytes:
        """The shared secret of an HMAC (HS*) key."""
        entry = self._entry(kid)
        if not entry.symmetric:
            raise ValueError(f"kid {kid!r} is an asymmetric {entry.alg} key, not an HMAC key")
        return entry.key.raw_value  # type: ignore[return-value]

    def private_key(self, kid: str) -> Key:
        """The private joserfc key (for tests that sign by other means)."""
        return self._entry(kid).key

    # -- minting tokens --------------------------------------------------------------

    def default_claims(self, *, ttl: int = 300, now: int | None = None) -> dict[str, Any]:
        """Claims every issued token carries unless overridden or omitted."""
        now = int(self.clock()) if now is None else now
        return {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "client_id": self.client_id,
            "azp": self.client_id,
            "scope": self.scope,
        }

    def issue(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        kid: str | None = None,
        alg: str | None = None,
        headers: Mapping[str, Any] | None = None,
        ttl: int = 300,
        omit: Iterable[str] = (),
        now: int | None = None,
    ) -> str:
        """Mint a signed JWT access token and register it for introspection.

        :param claims: merged over ``default_claims()``
        :param kid: signing key (default ``signing_kid``)
        :param alg: signing algorithm (default: the key's); ``"none"`` gives an empty signature
        :param headers: JOSE header fields to add/override (``typ``, ``crit``, ``jku``, even
            ``alg``/``kid`` to lie about the key); a value of ``None`` removes the field.
            Not validated: ``crit`` with unknown names or a non-URL ``jku`` are signed as given.
        :param ttl: seconds until ``exp`` (negative for an already-expired token)
        :param omit: claim names to drop after merging, e.g. ``("exp",)``
        :param now: fixed "now" for ``iat``/``nbf``/``exp``
        """
        entry = self._entry(kid or self._require_signing_kid())
        alg = alg or entry.alg
        payload = {**self.default_claims(ttl=ttl, now=now), **dict(claims or {})}
        for name in omit:
            payload.pop(name, None)
        header: dict[str, Any] = {"alg": alg, "typ": self.typ, "kid": entry.kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        token = self._sign_compact(_segment_bytes(header), _segment_bytes(payload), entry.key, alg)
        self._register(token, payload)
        return token

    def issue_opaque(self, claims: Mapping[str, Any] | None = None, *, ttl: int = 300) -> str:
        """Mint an opaque (non-JWT, dot-free) access token known only to introspection."""
        token = secrets.token_urlsafe(32)
        self._register(token, {**self.default_claims(ttl=ttl), **dict(claims or {})})
        return token

    def revoke(self, token: str) -> None:
        """Make introspection answer ``{"active": false}`` for ``token`` from now on."""
        with self._lock:
            self._tokens.setdefault(token, _IssuedToken(claims={})).revoked = True

    def sign_raw(
        self,
        header: Mapping[str, Any] | bytes | str,
        payload: bytes | str,
        kid: str | None = None,
        *,
        alg: str | None = None,
    ) -> str:
        """Sign arbitrary header and payload bytes with a real key, exactly as given.

        The header (a dict, or raw JSON text for e.g. duplicate header names) is not
        completed with ``alg``/``kid``; the signature uses ``alg`` or the key's own
        algorithm, whatever the header claims. Not registered for introspection.
        """
        entry = self._entry(kid or self._require_signing_kid())
        return self._sign_compact(_segment_bytes(header), _segment_bytes(payload), entry.key, alg or entry.alg)

    @staticmethod
    def forge(
        header: Mapping[str, Any] | bytes | str,
        payload: Mapping[str, Any] | bytes | str,
        signature: bytes = b"",
    ) -> str:
        """Assemble ``b64url(header).b64url(payload).b64url(signature)`` with no validation.

        Dicts become compact JSON; ``str``/``bytes`` are encoded byte-for-byte (duplicate
        keys, invalid JSON, non-objects, invalid UTF-8). For malformed base64 or a wrong
        number of segments, edit the returned string.
        """
        return ".".join(b64url(part) for part in (_segment_bytes(header), _segment_bytes(payload), signature))

    @staticmethod
    def tamper(
        token: str,
        *,
        header: Mapping[str, Any] | bytes | str | None = None,
        payload: Mapping[str, Any] | bytes | str | None = None,
        signature: bytes | None = None,
    ) -> str:
        """Replace some segments of a compact token, keeping the others byte-for-byte."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("tamper() needs a three-segment compact token")
        if header is not None:
            parts[0] = b64url(_segment_bytes(header))
        if payload is not None:
            parts[1] = b64url(_segment_bytes(payload))
        if signature is not None:
            parts[2] = b64url(signature)
        return ".".join(parts)

    @staticmethod
    def sign_hmac(
        header: Mapping[str, Any] | bytes | str,
        payload: Mapping[str, Any] | bytes | str,
        secret: bytes,
        alg: str = "HS256",
    ) -> str:
        """HMAC-sign with any bytes as the secret, e.g. ``public_pem(kid)`` for key confusion.

        joserfc's ``OctKey.import_key`` refuses PEM public keys as secrets, so the key
        object is built directly; the MAC is still joserfc's HS* implementation.
        """
        if not alg.startswith("HS"):
            raise ValueError("sign_hmac() is for HS256/HS384/HS512")
        key = OctKey(secret, secret)
        return TestIdP._sign_compact(_segment_bytes(header), _segment_bytes(payload), key, alg)

    # -- clients ---------------------------------------------------------------------

    def add_login_client(self, client_id: str, secret: str, *, redirect_uris: Iterable[str],
                         post_logout_redirect_uris: Iterable[str] = (),
                         backchannel_logout_uri: str | None = None) -> None:
        """Register a client for the authorization code flow (browser login)."""
        self.add_client(client_id, secret, scope="openid profile email offline_access")
        with self._lock:
            self.login.clients[client_id] = _LoginClient(
                tuple(redirect_uris), tuple(post_logout_redirect_uris), backchannel_logout_uri)

    def add_user(self, username: str, password: str, **claims: Any) -> None:
        """A user who can sign in at the login form; ``claims`` go into their ID token."""
        with self._lock:
            self.login.users[username] = (password, {"sub": username, **claims})

    def add_client(self, client_id: str, secret: str, *, scope: str | None = None) -> None:
        """Register a confidential client for the token and introspection endpoints.

        :param scope: space-separated scopes the client may request (default: ``self.scope``)
        """
        with self._lock:
            self._clients[client_id] = (secret, self.scope if scope is None else scope)

    # -- fault injection and counters ------------------------------------------------

    def set_delay(self, seconds: float) -> None:
        """Make every response wait ``seconds`` (0 to disable)."""
        self._delay = max(0.0, float(seconds))

    def set_status(self, code: int | None, *, paths: Iterable[str] = (DISCOVERY_PATH, JWKS_PATH)) -> None:
        """Make ``paths`` (issuer-relative; default discovery and JWKS) answer ``code``.

        ``set_status(None)`` restores normal answers on all paths.
        """
        with self._lock:
            if code is None:
                self._status_overrides.clear()
                return
            for path in paths:
                self._status_overrides[path] = int(code)

    def set_jwks_max_age(self, seconds: int | None) -> None:
        """Set the JWK set's ``Cache-Control: max-age`` (None: send no Cache-Control)."""
        self.jwks_max_age = seconds

    def requests_count(self, path: str | None = None) -> int:
        """Requests received for ``path`` (issuer-relative like ``url()``, or an absolute URL);
        all requests when ``path`` is None. Requests answered with errors count too."""
        with self._lock:
            if path is None:
                return sum(self._counts.values())
            return self._counts[self._server_path(path)]

    def reset_counts(self) -> None:
        """Forget all request counts."""
        with self._lock:
            self._counts.clear()

    # -- internals: keys and signing ------------------------------------------------

    def _new_kid(self, alg: str) -> str:
        while True:
            kid = f"{alg.lower()}-{secrets.token_hex(4)}"
            if kid not in self._keys:
                return kid

    def _entry(self, kid: str | None) -> _KeyEntry:
        with self._lock:
            if kid not in self._keys:
                raise KeyError(f"unknown kid {kid!r}")
            return self._keys[kid]  # type: ignore[index]

    def _asymmetric(self, kid: str) -> _KeyEntry:
        entry = self._entry(kid)
        if entry.symmetric:
            raise ValueError(f"kid {kid!r} is an HMAC key and has no public key")
        return entry

    def _require_signing_kid(self) -> str:
        if self._signing_kid is None:
            raise RuntimeError("no signing key: call add_key() first")
        return self._signing_kid

    @staticmethod
    def _sign_compact(header: bytes, payload: bytes, key: Key, alg: str) -> str:
        signing_input = f"{b64url(header)}.{b64url(payload)}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{b64url(_signature(signing_input, key, alg))}"

    def _register(self, token: str, claims: dict[str, Any]) -> None:
        with self._lock:
            self._tokens[token] = _IssuedToken(claims=dict(claims))

    # -- internals: HTTP -----------------------------------------------------------

    def _server_path(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return urlsplit(path).path
        return self.issuer_path + path

    def _wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self._counts[request.path] += 1
        if self._delay and self._stopping.wait(self._delay):
            response = _json_response({"error": "temporarily_unavailable"}, 503)
        else:
            response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if not path.startswith(self.issuer_path + "/"):
            return _json_response({"error": "not_found"}, 404)
        relative = path[len(self.issuer_path) :]
        override = self._status_overrides.get(relative)
        if override is not None:
            return _json_response({"error": "server_error", "status": override}, override)
        handler = {
            DISCOVERY_PATH: self._handle_discovery,
            JWKS_PATH: self._handle_jwks,
            TOKEN_PATH: self._handle_token,
            INTROSPECTION_PATH: self._handle_introspection,
            AUTHORIZATION_PATH: self._handle_authorize,
            END_SESSION_PATH: self._handle_end_session,
            REVOCATION_PATH: self._handle_revocation,
            USERINFO_PATH: self._handle_userinfo,
        }.get(relative)
        if handler is None:
            return _json_response({"error": "not_found"}, 404)
        try:
            return handler(request)
        except _OAuthError as error:
            return error.response()

    def _handle_discovery(self, request: Request) -> Response:
        _require_method(request, "GET", "HEAD")
        with self._lock:
            algs = list(dict.fromkeys(e.alg for e in self._keys.values() if e.published))
            document = {
                "issuer": self.issuer,
                "authorization_endpoint": self.url(AUTHORIZATION_PATH),
                "token_endpoint": self.token_endpoint,
                "introspection_endpoint": self.introspection_endpoint,
                "jwks_uri": self.jwks_uri,
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "end_session_endpoint": self.url(END_SESSION_PATH),
                "revocation_endpoint": self.url(REVOCATION_PATH),
                "userinfo_endpoint": self.url(USERINFO_PATH),
                "backchannel_logout_supported": True,
                "backchannel_logout_session_supported": True,
                "id_token_signing_alg_values_supported": algs or ["RS256"],
                "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
                "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
                **self.discovery_overrides,
            }
        return _json_response(document)

    def _handle_jwks(self, request: Request) -> Response:
        _require_method(request, "GET", "HEAD")
        max_age = self.jwks_max_age
        headers = {} if max_age is None else {"Cache-Control": f"max-age={max_age}"}
        return _json_response(self.jwks(), headers=headers)

    def _handle_authorize(self, request: Request) -> Response:
        return _authorize(self, request)

    def _handle_token(self, request: Request) -> Response:
        _require_method(request, "POST")
        client_id = self._authenticate_client(request)
        grant_type = request.form.get("grant_type")
        if not grant_type:
            raise _OAuthError(400, "invalid_request", "missing grant_type")
        if grant_type == "authorization_code":
            return _code_grant(self, client_id, request)
        if grant_type == "refresh_token":
            return _refresh_grant(self, client_id, request)
        if grant_type != "client_credentials":
            raise _OAuthError(400, "unsupported_grant_type")
        scope = self._grant_scope(client_id, request.form.get("scope"))
        claims = {"sub": client_id, "client_id": client_id, "azp": client_id, "scope": scope}
        token = self.issue(claims, ttl=self.token_ttl)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl, "scope": scope}
        return _json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _handle_introspection(self, request: Request) -> Response:
        _require_method(request, "POST")
        self._authenticate_client(request)
        token = request.form.get("token")
        if not token:
            raise _OAuthError(400, "invalid_request", "missing token")
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or not issued.active(self.clock()):
                return _json_response({"active": False})
            return _json_response({"token_type": "Bearer", **issued.claims, "active": True})

    def _authenticate_client(self, request: Request) -> str:
        """client_secret_basic or client_secret_post (RFC 6749 section 2.3.1); returns client_id."""
        basic = request.authorization
        form_id, form_secret = request.form.get("client_id"), request.form.get("client_secret")
        if basic is not None and basic.type == "basic":
            if form_secret is not None:
                raise _OAuthError(400, "invalid_request", "more than one client authentication method")
            client_id, secret = unquote_plus(basic.username or ""), unquote_plus(basic.password or "")
        elif form_id is not None and form_secret is not None:
            client_id, secret = form_id, form_secret
        else:
            raise _OAuthError(401, "invalid_client", "client authentication required")
        with self._lock:
            registered = self._clients.get(client_id)
        if registered is None or not hmac.compare_digest(registered[0].encode(), secret.encode()):
            raise _OAuthError(401, "invalid_client", "unknown client or wrong secret")
        return client_id

    def _grant_scope(self, client_id: str, requested: str | None) -> str:
        allowed = self._clients[client_id][1].split()
        if requested is None:
            return " ".join(allowed)
        wanted = requested.split()
        if not set(wanted) <= set(allowed):
            raise _OAuthError(400, "invalid_scope", f"allowed scopes: {' '.join(allowed)}")
        return " ".join(wanted)


from tests.support.idp_login import (  # noqa: E402  (browser login: its own module)
    _authorize, _code_grant, _LoginClient, _LoginState, _refresh_grant, login_methods,
)

for _name, _fn in login_methods().items():
    setattr(TestIdP, _name, _fn)


def _require_method(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise _OAuthError(405, "invalid_request", f"use {' or '.join(methods)}", {"Allow": ", ".join(methods)})
