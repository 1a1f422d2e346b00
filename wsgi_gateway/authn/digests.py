"""How credentials are named in the shared store: HMAC-SHA256 under ``secret_key``.

Why keyed: the store (memcached) has no authentication of its own. With a plain
SHA-256, whoever can write to it could plant a record under the digest of a credential
they made up (an API key record, an introspection result) and then present that
credential; whoever can read it could test guesses offline. With ``secret_key`` nobody
can compute a digest without the key. Each purpose gets its own digest (the purpose
is part of the MAC), so a value stored for one can never answer for another.

Rotation: new digests use ``secret_key``; lookups also accept ``previous_secret_keys``,
so API keys issued before a rotation keep working while they are re-issued. Without a
``secret_key`` (the demo, the memory store) digests are plain SHA-256, as before;
``check`` warns when a shared store runs that way.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class CredentialDigests:
    """Digests of credentials for the store, under the current and previous keys.

    :param keys: ``secret_key`` first, then ``previous_secret_keys``; empty: plain SHA-256.
    """

    def __init__(self, keys: Sequence[bytes] = ()):
        self._keys = tuple(keys)

    @classmethod
    def from_config(cls, config) -> "CredentialDigests":
        """The digests the config's ``secret_key`` and ``previous_secret_keys`` give."""
        if config.secret_key is None:
            return cls()
        return cls([config.secret_key.reveal(), *(s.reveal() for s in config.previous_secret_keys)])

    @property
    def keyed(self) -> bool:
        return bool(self._keys)

    def digest(self, purpose: str, credential: str | bytes) -> str:
        """The hex digest new records are written under."""
        return self._all(purpose, _bytes(credential), self._keys[:1])[0]

    def matches(self, purpose: str, stored: str, credential: str | bytes) -> bool:
        """Whether ``stored`` is the digest of ``credential`` under any key (constant time
        per key)."""
        found = False
        for candidate in self._all(purpose, _bytes(credential), self._keys):
            found |= hmac.compare_digest(stored, candidate)
        return found

    def lookups(self, purpose: str, credential: str | bytes) -> list[str]:
        """Every digest a record of ``credential`` may be stored under, current key first."""
        return self._all(purpose, _bytes(credential), self._keys)

    @staticmethod
    def _all(purpose: str, data: bytes, keys: tuple[bytes, ...]) -> list[str]:
        if not keys:
            return [hashlib.sha256(data).hexdigest()]
        message = purpose.encode() + b"\0" + data
        return [hmac.new(key, message, hashlib.sha256).hexdigest() for key in keys]


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


PLAIN = CredentialDigests()  # keys_file entries and configs without secret_key
