"""Tokens encrypted at rest, and the handles that name sessions, both keyed by secret_key.

Why: the store (memcached) has no authentication of its own. A session record is
kept under an HMAC of the browser's handle (whoever reads the store cannot turn a
record name back into a working cookie), and the provider's tokens inside it are
sealed with AES-256-GCM (whoever reads the store cannot use them). The AES key is
derived from ``secret_key`` per purpose (HMAC-SHA256 of a label), so it is never the
same key as the digests'. The record's name is the additional authenticated data: a
sealed blob copied under another session's name does not open.

Rotation: new seals use ``secret_key``; ``previous_secret_keys`` still open old ones
(and still find records named under them).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..digests import CredentialDigests

_LABEL = b"wsgi-gateway oidc_login token sealing v1"
_NONCE = 12


class Unsealable(Exception):
    """A sealed blob that no configured key opens (tampered, moved, or a retired key)."""


class Sealer:
    """AES-GCM under keys derived from ``secret_key`` (first) and its predecessors.

    :param secret_keys: ``secret_key`` then ``previous_secret_keys`` (raw bytes).
    """

    def __init__(self, secret_keys: Sequence[bytes]):
        if not secret_keys:
            raise ValueError("sealing needs a secret_key")
        self._aeads = [AESGCM(hmac.new(k, _LABEL, hashlib.sha256).digest()) for k in secret_keys]
        self.digests = CredentialDigests(secret_keys)

    def seal(self, plaintext: bytes, bound_to: str) -> bytes:
        """Nonce ‖ ciphertext ‖ tag under the current key; ``bound_to`` is the AAD."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aeads[0].encrypt(nonce, plaintext, bound_to.encode())

    def open(self, sealed: bytes, bound_to: str) -> bytes:
        """The plaintext, trying each key in turn; Unsealable when none opens it."""
        nonce, body = sealed[:_NONCE], sealed[_NONCE:]
        for aead in self._aeads:
            try:
                return aead.decrypt(nonce, body, bound_to.encode())
            except (InvalidTag, ValueError):
                continue
        raise Unsealable("no configured key opens this record")
