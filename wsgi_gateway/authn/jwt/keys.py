"""Key sets: a provider's verification keys, indexed by ``kid``.

Published sets (JWKS) only ever yield public keys: a symmetric (``oct``) or
encryption-only key in a published set is ignored, so an HMAC secret can never come
from the network. Keys that do not import are skipped (and reported), not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from joserfc.errors import JoseError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

from ...config.providers import StaticKeyConfig

_KTY = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_PEM_TYPES = ((rsa.RSAPublicKey, RSAKey), (ec.EllipticCurvePublicKey, ECKey),
              (ed25519.Ed25519PublicKey, OKPKey), (ed448.Ed448PublicKey, OKPKey))


@dataclass(frozen=True)
class KeyIndex:
    """Keys by ``kid``; ``unnamed`` holds keys without one."""

    by_kid: dict[str, Key] = field(default_factory=dict)
    unnamed: tuple[Key, ...] = ()
    skipped: tuple[str, ...] = ()  # why some entries were not used, for the log

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.unnamed)

    def find(self, kid: str | None, kty: str) -> Key | None:
        """The key for a token header: by kid, or, without one, the only key of ``kty``."""
        if kid is not None:
            return self.by_kid.get(kid)
        candidates = [k for k in (*self.by_kid.values(), *self.unnamed) if k.key_type == kty]
        return candidates[0] if len(candidates) == 1 else None

    def publishes(self, kid: str | None) -> bool:
        """Whether a key named ``kid`` is still in this set (None: any unnamed key is)."""
        return kid in self.by_kid if kid is not None else bool(self.unnamed or self.by_kid)


def index_keys(entries: Iterable[tuple[str | None, Key]], skipped: Iterable[str] = ()) -> KeyIndex:
    """A KeyIndex from (kid, key) pairs; a repeated kid keeps the first key."""
    by_kid: dict[str, Key] = {}
    unnamed: list[Key] = []
    notes = list(skipped)
    for kid, key in entries:
        if kid is None:
            unnamed.append(key)
        elif kid in by_kid:
            notes.append(f"duplicate kid {kid[:64]!r} ignored")
        else:
            by_kid[kid] = key
    return KeyIndex(by_kid, tuple(unnamed), tuple(notes))


def parse_jwks(document: object) -> KeyIndex:
    """The public signing keys of a JWK set document (already parsed JSON)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set: expected an object with a 'keys' list")
    entries, skipped = [], []
    for i, jwk in enumerate(document["keys"]):
        try:
            entries.append(_public_jwk(jwk))
        except ValueError as exc:
            skipped.append(f"keys[{i}]: {exc}")
    return index_keys(entries, skipped)


def _public_jwk(jwk: object) -> tuple[str | None, Key]:
    if not isinstance(jwk, dict):
        raise ValueError("not an object")
    kty, use = jwk.get("kty"), jwk.get("use")
    if kty not in _KTY:
        raise ValueError(f"kty {str(kty)[:16]!r} is not a public signing key type")
    if use not in (None, "sig"):
        raise ValueError(f"use {str(use)[:16]!r} is not 'sig'")
    if any(p in jwk for p in ("d", "p", "q", "k")):
        raise ValueError("contains private or symmetric key material")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    try:
        return kid, _KTY[kty].import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"does not import: {type(exc).__name__}") from None


def load_static_keys(keys: Iterable[StaticKeyConfig], base_dir: Path) -> KeyIndex:
    """The keys written in a provider's ``keys:``; raises ValueError naming the entry."""
    entries: list[tuple[str | None, Key]] = []
    for i, config in enumerate(keys):
        try:
            entries.extend(_static_key(config, base_dir))
        except (OSError, ValueError, JoseError, TypeError) as exc:
            raise ValueError(f"keys[{i}]: {_reason(exc)}") from None
    return index_keys(entries)


def _static_key(config: StaticKeyConfig, base_dir: Path) -> list[tuple[str | None, Key]]:
    if config.secret is not None:
        return [(config.kid, OctKey.import_key(_secret_bytes(config)))]
    if config.jwks_file is not None:
        index = parse_jwks(json.loads((base_dir / config.jwks_file).read_text()))
        if not len(index):
            raise ValueError(f"no usable key in {config.jwks_file}: {'; '.join(index.skipped)}")
        return [*index.by_kid.items(), *((None, k) for k in index.unnamed)]
    if config.jwk is not None:
        kid, key = _public_jwk(dict(config.jwk))
        return [(config.kid or kid, key)]
    pem = config.pem if config.pem is not None else (base_dir / config.pem_file).read_text()
    return [(config.kid, _public_pem(pem.encode()))]


def _public_pem(pem: bytes) -> Key:
    """A public key from PEM; its type read from the PEM, never guessed by joserfc."""
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ValueError("not a PEM public key (a private key or certificate is not accepted)") from None
    for kind, cls in _PEM_TYPES:
        if isinstance(public, kind):
            return cls.import_key(pem)
    raise ValueError(f"unsupported public key type {type(public).__name__}")


def _secret_bytes(config: StaticKeyConfig) -> bytes:
    return config.secret_bytes()  # decoded and checked when the config loaded


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return "the secret is not base64 text"
    return str(exc) or type(exc).__name__
