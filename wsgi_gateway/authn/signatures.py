"""``hmac`` and ``httpsig``: requests signed by the client, per request.

``hmac`` is Tyk's HMAC request signing (draft-cavage HTTP Signatures)::

    Authorization: Signature keyId="k1",algorithm="hmac-sha256",
                   headers="(request-target) date",signature="<base64>"

``httpsig`` is RFC 9421 HTTP Message Signatures (``Signature-Input`` / ``Signature``),
verified with the ``http-message-signatures`` package, with HMAC or public keys.

Both refuse a signature older or newer than ``max_skew``, and (``replay: true``) a
signature seen before: its digest is added to the store for the rest of its validity,
so every worker and host sharing the store refuses the second use.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..config.model import ApiConfig
from ..config.typed import Where, parsed
from ..config.units import parse_duration
from ..errors import ConfigError, InvalidRequest, InvalidToken
from ..identity import Identity
from ..store.keys import digest_key
from .credentials import CredentialPlaces
from .registry import Method, register
from .signature_keys import ASYMMETRIC, HMAC_ALGORITHMS, SigningKey, load_keys

MAX_HEADER = 8192                 # bytes of a signature header; real ones are < 1 KiB
MAX_COVERED = 32                  # components a signature may cover
_REALM = re.compile(r'[^"\\\x00-\x1f\x7f]{1,128}\Z')
_PARAM = re.compile(r'[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*'
                    r'(?:"((?:[^"\\\x00-\x1f\x7f]|\\[ -~])*)"|([0-9]+))[ \t]*(?:,|\Z)')
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+\Z|\(request-target\)\Z")
_DUMMY = b"\0" * 32               # unknown key ids cost one HMAC too


def _keys_file(node: object, where: Where) -> Path:
    """The keys file, relative to the config; loaded once so faults stop start-up."""
    path = where.config_path(node, "the path of a keys file")
    try:
        load_keys(path)
    except ConfigError as err:
        raise ValueError("; ".join(err.problems)) from None
    return path


def _duration(**kw):
    return field(metadata={"parse": parsed(parse_duration)}, **kw)


@dataclass(frozen=True)
class HmacOptions:
    """Options of the ``hmac`` method (draft-cavage ``Authorization: Signature``)."""

    secrets_file: Path = field(metadata={"parse": _keys_file})
    """The signing keys file, relative to the config; faults stop start-up as FILE:LINE:
    keys.ID: ...
    """
    algorithms: tuple[str, ...] = ("hmac-sha256",)
    """Accepted algorithms."""
    max_skew: float = _duration(default=300.0)
    """|now - Date| allowed."""
    required_headers: tuple[str, ...] = ("(request-target)", "date")
    """What every signature must cover (must include date)."""
    replay: bool = True
    """Refuse a signature seen before (one store add per request)."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""

    def __post_init__(self):
        _check_common(self.realm, self.max_skew)
        if not self.algorithms or set(self.algorithms) - set(HMAC_ALGORITHMS):
            raise ValueError(f"algorithms: a non-empty list of {', '.join(HMAC_ALGORITHMS)}")
        bad = [h for h in self.required_headers if not _HEADER_NAME.match(h)]
        if bad:
            raise ValueError(f"required_headers: {bad[0]!r} is not a lowercase header name")
        if "date" not in self.required_headers:
            raise ValueError("required_headers: must include date (the skew is checked on it)")


@dataclass(frozen=True)
class HttpsigOptions:
    """Options of the ``httpsig`` method (RFC 9421 ``Signature-Input`` / ``Signature``).

    ``required_components``: each entry must be covered; ``a|b`` means either one.
    """

    keys_file: Path = field(metadata={"parse": _keys_file})
    """The signing keys file (the same format as hmac's), relative to the config."""
    algorithms: tuple[str, ...] = ("hmac-sha256",) + ASYMMETRIC
    """Accepted algorithms (RFC 9421 names)."""
    max_skew: float = _duration(default=300.0)
    """|now - created| allowed."""
    required_components: tuple[str, ...] = ("@method", "@target-uri|@path", "@authority")
    """Each must be signed (a|b: either). With a body, content-digest (RFC 9530) or digest
    must be signed and must match the body.
    """
    replay: bool = True
    """Refuse a signature seen before (one store add per request)."""
    max_body: int = 1_048_576
    """Bytes read to check a digest."""
    realm: str | None = None
    """WWW-Authenticate realm; default: the API name."""

    def __post_init__(self):
        _check_common(self.realm, self.max_skew)
        allowed = {"hmac-sha256", *ASYMMETRIC}
        if not self.algorithms or set(self.algorithms) - allowed:
            raise ValueError(f"algorithms: a non-empty list of {', '.join(sorted(allowed))}")
        if not 0 <= self.max_body <= 64 * 1_048_576:
            raise ValueError("max_body must be within 0..67108864 bytes")


def _check_common(realm: str | None, max_skew: float) -> None:
    if realm is not None and not _REALM.match(realm):
        raise ValueError("realm: 1-128 characters, no quotes, backslashes or controls")
    if not 1 <= max_skew <= 3600:
        raise ValueError("max_skew must be within 1s..1h")


class Replays:
    """Signatures already seen, by digest, in the shared store (``add`` is atomic)."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix = store, prefix

    def first_use(self, signature: bytes, valid_for: float) -> None:
        """Raise 401 unless this is the first time ``signature`` is seen."""
        key = digest_key(self.prefix, signature)
        if not self.store.add(key, b"1", ttl=max(1.0, valid_for + 1.0)):
            raise InvalidToken("this signature was already used (replay)")


def parse_cavage(value: str) -> dict[str, str]:
    """The parameters of a draft-cavage ``Signature`` credential; 400 when malformed."""
    params, pos = {}, 0
    while pos < len(value):
        match = _PARAM.match(value, pos)
        if not match or match.end() == pos:
            raise InvalidRequest("the Signature credential is malformed")
        name = match[1]
        if name in params:
            raise InvalidRequest(f"the Signature parameter {name} is given twice")
        raw = match[2] if match[2] is not None else match[3]
        params[name] = re.sub(r"\\(.)", r"\1", raw)
        pos = match.end()
    for name in ("keyId", "signature", "algorithm"):
        if not params.get(name):
            raise InvalidRequest(f"the Signature credential has no {name}")
    return params


def request_target(environ: Mapping) -> str:
    """``(request-target)``: the lowercase method, the path as sent, and ``?query``."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if not raw.startswith("/"):
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
                     safe="/:@!$&'()*+,;=-._~%")
        query = environ.get("QUERY_STRING", "")
        raw = f"{path}?{query}" if query else path
    return f"{environ['REQUEST_METHOD'].lower()} {raw}"


class HmacAuthenticator:
    """The ``hmac`` method: Tyk-compatible draft-cavage signatures with shared secrets.

    :param keys: key id → :class:`SigningKey` (the secrets file).
    :param options: the method's options.
    :param realm: the challenge realm; the identity's issuer is ``hmac:<realm>``.
    :param replays: the shared record of used signatures, or None (``replay: false``).
    :param clock: wall-clock seconds (the Date skew).
    :param policies: the configured policy names; a key's other policies are ignored.
    """

    id = "hmac"
    credentials = CredentialPlaces(headers=("Authorization",))

    def __init__(self, keys: Mapping[str, SigningKey], options: HmacOptions, realm: str,
                 replays: Replays | None = None, clock: Callable[[], float] = time.time,
                 policies: frozenset[str] = frozenset()):
        self.keys, self.options, self.replays, self.clock = keys, options, replays, clock
        self.policies = frozenset(policies)
        self.issuer = f"hmac:{realm}"
        self.challenge = (f'Signature realm="{realm}",'
                          f'headers="{" ".join(options.required_headers)}"')

    def authenticate(self, request) -> Identity | None:
        environ = request.environ
        value = environ.get("HTTP_AUTHORIZATION")
        if value is None or value.strip(" \t").partition(" ")[0].lower() != "signature":
            return None
        if len(value) > MAX_HEADER:
            raise InvalidRequest("the Signature credential is too large")
        params = parse_cavage(value.strip(" \t").partition(" ")[2])
        given = _b64(params["signature"])
        covered = self._covered(params)
        key = self.keys.get(params["keyId"])
        algorithm = params["algorithm"].lower()
        if algorithm not in self.options.algorithms:
            raise InvalidToken("the signature algorithm is not allowed here")
        date = self._date(request, covered)
        base = self._signing_string(request, covered).encode()
        secret = key.secret.reveal() if key is not None and key.secret is not None else _DUMMY
        expected = hmac.digest(secret, base, algorithm.replace("hmac-", ""))
        if not hmac.compare_digest(expected, given) or key is None or key.secret is None:
            raise InvalidToken("the signature is not valid")
        if self.replays is not None:
            self.replays.first_use(given, date + self.options.max_skew - self.clock())
        return Identity(method="hmac", subject=key.subject, issuer=self.issuer,
                        client_id=key.key_id, claims={"key_id": key.key_id,
                                                      "algorithm": algorithm,
                                                      "headers": list(covered)},
                        policies=tuple(p for p in key.policies if p in self.policies))

    def _covered(self, params: dict[str, str]) -> tuple[str, ...]:
        covered = tuple(params.get("headers", "date").lower().split())
        if len(covered) > MAX_COVERED or not all(_HEADER_NAME.match(h) for h in covered):
            raise InvalidRequest("the Signature headers parameter is malformed")
        if len(set(covered)) != len(covered):
            raise InvalidRequest("the Signature headers parameter names a header twice")
        missing = [h for h in self.options.required_headers if h not in covered]
        if missing:
            raise InvalidToken(f"the signature must cover {' '.join(missing)}")
        return covered

    def _date(self, request, covered: tuple[str, ...]) -> float:
        """The covered Date, as seconds; 401 when absent or outside ``max_skew``."""
        value = request.headers.get("Date")
        if value is None or "date" not in covered:
            raise InvalidToken("the signature must cover a Date header")
        try:
            date = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            raise InvalidRequest("the Date header is not an HTTP date") from None
        if abs(self.clock() - date) > self.options.max_skew:
            raise InvalidToken("the Date header is too far from the gateway's clock")
        return date

    def _signing_string(self, request, covered: tuple[str, ...]) -> str:
        lines = []
        for name in covered:
            if name == "(request-target)":
                lines.append(f"{name}: {request_target(request.environ)}")
                continue
            values = request.headers.getlist(name)
            if not values:
                raise InvalidToken(f"the signed header {name} is missing")
            lines.append(f"{name}: " + ", ".join(v.strip(" \t") for v in values))
        return "\n".join(lines)

    def ready(self) -> str | None:
        return None


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the signature is not valid base64") from None


def _build_hmac(options: HmacOptions, build, api: ApiConfig) -> HmacAuthenticator:
    realm = options.realm or api.name
    keys = _load(options.secrets_file, build, api)
    replays = Replays(build.store, f"hmac:{realm}:seen") if options.replay else None
    return HmacAuthenticator(keys, options, realm, replays, build.clock,
                             frozenset(build.config.policies))


def _load(path: Path, build, api: ApiConfig) -> Mapping[str, SigningKey]:
    try:
        return build.shared(("signature-keys", path), lambda: load_keys(path))
    except ConfigError as err:
        raise ConfigError([f"{build.config.source}: apis[{api.name}]: {p}"
                           for p in err.problems]) from None


register(Method("hmac", HmacOptions, _build_hmac))


# --- httpsig: RFC 9421 HTTP Message Signatures ------------------------------------------

_ALGORITHM_CLASSES = {"hmac-sha256": "HMAC_SHA256", "ed25519": "ED25519",
                      "ecdsa-p256-sha256": "ECDSA_P256_SHA256",
                      "rsa-pss-sha512": "RSA_PSS_SHA512"}


class _Message:
    """A werkzeug request as the package's message interface (method, url, headers)."""

    def __init__(self, request):
        self.method, self.url, self.headers = request.method, request.url, request.headers


class HttpsigAuthenticator:
    """The ``httpsig`` method: RFC 9421 signatures, verified by ``http-message-signatures``.

    One signature per request (one ``Signature-Input`` label). Its key (by ``keyid``)
    decides the algorithm; a covered ``Content-Digest`` (RFC 9530) or ``Digest`` must
    match the body, and a body must be covered by one. Parameters as
    :class:`HmacAuthenticator`.
    """

    id = "httpsig"
    credentials = CredentialPlaces(headers=("Signature", "Signature-Input"))

    def __init__(self, keys: Mapping[str, SigningKey], options: HttpsigOptions, realm: str,
                 replays: Replays | None = None, clock: Callable[[], float] = time.time,
                 policies: frozenset[str] = frozenset()):
        import http_message_signatures as hms  # imported here: only httpsig needs it

        self._hms = hms
        self.keys, self.options, self.replays, self.clock = keys, options, replays, clock
        self.policies = frozenset(policies)
        self.issuer = f"httpsig:{realm}"
        self.challenge = f'Signature realm="{realm}"'
        self._verifiers = {}
        for name in options.algorithms:
            verifier = hms.HTTPMessageVerifier(
                signature_algorithm=getattr(hms.algorithms, _ALGORITHM_CLASSES[name]),
                key_resolver=self)
            verifier.max_clock_skew = datetime.timedelta(seconds=options.max_skew)
            self._verifiers[name] = verifier

    def resolve_public_key(self, key_id: str):
        """The package's key resolver: the secret or public key of ``key_id``."""
        key = self.keys[key_id]
        return key.secret.reveal() if key.secret is not None else key.public_key

    def authenticate(self, request) -> Identity | None:
        headers = request.headers
        sig_input, sig = headers.getlist("Signature-Input"), headers.getlist("Signature")
        if not sig_input and not sig:
            return None
        label, components, params = self._parse(", ".join(sig_input), ", ".join(sig))
        key = self.keys.get(params["keyid"])
        if key is None:
            raise InvalidToken("the signature is not valid")
        algorithm = key.algorithm or "hmac-sha256"
        if algorithm not in self._verifiers or params.get("alg", algorithm) != algorithm:
            raise InvalidToken("the signature algorithm is not allowed here")
        created = self._created(params)
        body = self._body(request, components)
        self._require(components, body)
        result = self._verify(self._verifiers[algorithm], request, body, components)
        if self.replays is not None:
            self.replays.first_use(_signed_digest(result), created + self.options.max_skew - self.clock())
        return Identity(method="httpsig", subject=key.subject, issuer=self.issuer,
                        client_id=key.key_id,
                        claims={"key_id": key.key_id, "algorithm": algorithm,
                                "label": label, "components": list(components),
                                **({"tag": params["tag"]} if "tag" in params else {})},
                        policies=tuple(p for p in key.policies if p in self.policies))

    def _parse(self, sig_input: str, sig: str) -> tuple[str, tuple[str, ...], dict]:
        """(label, covered component names, parameters); 400 when malformed."""
        if not sig_input or not sig:
            raise InvalidRequest("Signature-Input and Signature must be sent together")
        if len(sig_input) > MAX_HEADER or len(sig) > MAX_HEADER:
            raise InvalidRequest("the signature headers are too large")
        import http_sf

        try:
            inputs = http_sf.parse(sig_input.encode(), tltype="dictionary")
            signatures = http_sf.parse(sig.encode(), tltype="dictionary")
        except Exception:  # http_sf raises ValueError and friends on bad syntax
            raise InvalidRequest("the signature headers are not structured fields") from None
        if len(inputs) != 1 or set(inputs) != set(signatures):
            raise InvalidRequest("send exactly one signature, with the same label in both headers")
        (label, (members, params)), = inputs.items()
        if (not isinstance(members, list) or len(members) > MAX_COVERED
                or not isinstance(signatures[label][0], bytes)
                or not all(isinstance(m[0], str) for m in members)):
            raise InvalidRequest("the signature headers are malformed")
        if not isinstance(params.get("keyid"), str) or not params["keyid"]:
            raise InvalidRequest("the signature has no keyid")
        if type(params.get("created")) is not int:
            raise InvalidRequest("the signature has no integer created parameter")
        return label, tuple(m[0] for m in members), dict(params)

    def _created(self, params: dict) -> float:
        created = params["created"]
        if abs(self.clock() - created) > self.options.max_skew:
            raise InvalidToken("the signature's created time is too far from the gateway's clock")
        return float(created)

    def _body(self, request, components: tuple[str, ...]) -> bytes:
        has_body = (request.content_length or 0) > 0 or "HTTP_TRANSFER_ENCODING" in request.environ
        if not has_body:
            return b""
        from .signature_keys import read_body

        return read_body(request, self.options.max_body)

    def _require(self, components: tuple[str, ...], body: bytes) -> None:
        for entry in self.options.required_components:
            if not any(name in components for name in entry.split("|")):
                raise InvalidToken(f"the signature must cover {entry.replace('|', ' or ')}")
        if body and "content-digest" not in components and "digest" not in components:
            raise InvalidToken("the signature must cover content-digest when there is a body")

    def _verify(self, verifier, request, body: bytes, components: tuple[str, ...]):
        from .signature_keys import check_legacy_digest

        message = _Message(request)
        try:
            results = verifier.verify(message, max_age=None)
            if "content-digest" in components:
                results = verifier.verify_body(message, results, body)
        except self._hms.InvalidSignature:
            raise InvalidToken("the signature is not valid") from None
        except (self._hms.HTTPMessageSignaturesException, ValueError):
            raise InvalidRequest("the signature cannot be checked on this request") from None
        if "digest" in components and "content-digest" not in components:
            if not check_legacy_digest(request.headers.get("Digest", ""), body):
                raise InvalidToken("the Digest header does not match the body")
        return results[0]


def _signed_digest(result) -> bytes:
    """What the signature vouches for (components and parameters, not the label or the
    signature bytes): a replay record an ECDSA-malleated or relabelled copy also hits."""
    params = json.dumps(result.parameters, sort_keys=True, default=str)
    base = "\n".join(f"{k}: {v}" for k, v in result.covered_components.items())
    return hashlib.sha256(f"{base}\n{params}".encode()).digest()


def _build_httpsig(options: HttpsigOptions, build, api: ApiConfig) -> HttpsigAuthenticator:
    realm = options.realm or api.name
    keys = _load(options.keys_file, build, api)
    replays = Replays(build.store, f"httpsig:{realm}:seen") if options.replay else None
    return HttpsigAuthenticator(keys, options, realm, replays, build.clock,
                                frozenset(build.config.policies))


register(Method("httpsig", HttpsigOptions, _build_httpsig))
