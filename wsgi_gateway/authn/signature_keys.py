"""The keys file of the ``hmac`` and ``httpsig`` methods, and the request body they check.

A YAML file, relative to the config::

    keys:
      client-1: {env: CLIENT1_SECRET}             # shorthand: an HMAC secret
      client-2:
        secret: {file: secrets/client-2}           # HMAC secret, relative to this file
        subject: acme                              # default: the key id
        policies: [gold]
      client-3:
        public_key: keys/client-3.pem              # PEM public key (httpsig only)
        algorithm: ed25519                         # default: from the key's type

Faults stop start-up, named ``FILE:LINE: keys.ID: …``. Secrets are read once, at load.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..config.secrets import Secret, resolve_secret
from ..config.source import line_of, load_yaml
from ..errors import BodyReadError, ConfigError, InvalidRequest

KEY_ID = re.compile(r"[!#-~]{1,128}\Z")      # printable ASCII, no space or quote
MIN_SECRET = 16                               # bytes of an HMAC secret
HMAC_ALGORITHMS = ("hmac-sha256", "hmac-sha512")
ASYMMETRIC = ("ed25519", "ecdsa-p256-sha256", "rsa-pss-sha512")


@dataclass(frozen=True)
class SigningKey:
    """One client key: an HMAC secret or a public key, and what its identity carries."""

    key_id: str
    subject: str
    policies: tuple[str, ...]
    secret: Secret | None = None              # HMAC
    public_key: object | None = None          # a cryptography public key
    algorithm: str | None = None              # asymmetric keys: their one algorithm

    def allows(self, algorithm: str) -> bool:
        """Whether this key may verify ``algorithm`` (a secret never verifies a public-key
        algorithm, nor the reverse)."""
        if self.secret is not None:
            return algorithm in HMAC_ALGORITHMS
        return algorithm == self.algorithm


def load_keys(path: Path) -> Mapping[str, SigningKey]:
    """The keys of ``path``; ConfigError naming file, line and key for every fault."""
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"keys"} or not isinstance(data["keys"], dict):
        raise ConfigError(f"{path}:{getattr(data, 'line', 1)}: expected a mapping with one "
                          "key, keys, mapping key ids to secrets or public keys")
    entries, problems, out = data["keys"], [], {}
    for key_id, entry in entries.items():
        try:
            out[key_id] = _key(key_id, entry, path.parent)
        except ValueError as exc:
            problems.append(f"{path}:{line_of(entries, key_id)}: keys.{key_id}: {exc}")
    if problems:
        raise ConfigError(problems)
    if not out:
        raise ConfigError(f"{path}:{data.line}: keys: no key is defined")
    return MappingProxyType(out)


def _key(key_id: object, entry: object, base: Path) -> SigningKey:
    if not isinstance(key_id, str) or not KEY_ID.match(key_id):
        raise ValueError("a key id has 1-128 printable ASCII characters, no space or quote")
    if isinstance(entry, dict) and set(entry) <= {"env", "file"}:
        entry = {"secret": entry}
    if not isinstance(entry, dict):
        raise ValueError("expected {env: NAME}, {file: PATH} or a mapping with secret or public_key")
    unknown = set(entry) - {"secret", "public_key", "algorithm", "subject", "policies"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}; allowed: algorithm, policies, "
                         "public_key, secret, subject")
    subject = entry.get("subject", key_id)
    policies = entry.get("policies", [])
    if not isinstance(subject, str) or not subject:
        raise ValueError("subject: expected a non-empty string")
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise ValueError("policies: expected a list of names")
    if ("secret" in entry) == ("public_key" in entry):
        raise ValueError("give exactly one of secret ({env: NAME} / {file: PATH}) or public_key")
    common = {"key_id": key_id, "subject": subject, "policies": tuple(policies)}
    if "secret" in entry:
        if "algorithm" in entry:
            raise ValueError("algorithm: a secret serves the API's HMAC algorithms")
        return SigningKey(secret=_secret(entry["secret"], base), **common)
    public_key, algorithm = _public_key(entry["public_key"], entry.get("algorithm"), base)
    return SigningKey(public_key=public_key, algorithm=algorithm, **common)


def _secret(spec: object, base: Path) -> Secret:
    secret = resolve_secret(spec, base)
    if len(secret.reveal()) < MIN_SECRET:
        raise ValueError(f"secret ({secret.source}): at least {MIN_SECRET} bytes")
    return secret


def _public_key(value: object, algorithm: object, base: Path) -> tuple[object, str]:
    if not isinstance(value, str) or not value:
        raise ValueError("public_key: expected the path of a PEM public key")
    path = (base / value).resolve()
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"public_key: {path} cannot be read: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ValueError(f"public_key: {path} is not a PEM public key") from None
    natural = _algorithm_of(key)
    if natural is None:
        raise ValueError("public_key: only Ed25519, EC P-256 and RSA (2048+ bits) keys")
    if algorithm is not None and algorithm != natural:
        raise ValueError(f"algorithm: this key verifies {natural}, not {algorithm!r}")
    return key, natural


def _algorithm_of(key: object) -> str | None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return "rsa-pss-sha512"
    return None


def read_body(request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (400 beyond), put back so the upstream reads it."""
    length = request.content_length
    if length is not None and length > limit:
        raise InvalidRequest("the body is too large to verify its digest")
    request.max_content_length = limit
    try:
        body = request.get_data(cache=True)
    except BodyReadError:  # bad framing or a short body: the gateway's own 400
        raise
    except Exception:  # RequestEntityTooLarge
        raise InvalidRequest("the body could not be read within its size limit") from None
    environ = request.environ
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


_DIGEST_ITEM = re.compile(r"\s*([A-Za-z0-9-]+)=([A-Za-z0-9+/]+={0,2})\s*\Z")
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def check_legacy_digest(value: str, body: bytes) -> bool:
    """Whether an RFC 3230 ``Digest: SHA-256=<b64>`` header matches ``body``.

    Every known algorithm given must match and at least one must be known; a malformed
    header is a 400.
    """
    known = 0
    for part in value.split(","):
        match = _DIGEST_ITEM.match(part)
        if not match:
            raise InvalidRequest("the Digest header is malformed")
        fn = _DIGESTS.get(match[1].lower())
        if fn is None:
            continue
        try:
            given = base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the Digest header is malformed") from None
        if not hmac.compare_digest(given, fn(body).digest()):
            return False
        known += 1
    return known > 0
