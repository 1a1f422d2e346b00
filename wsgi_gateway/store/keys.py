"""Store keys: namespaced, and hashed whenever memcached could not take them raw.

memcached keys are at most 250 bytes of printable ASCII without spaces. Any key with
other characters, or too long, becomes ``<ns>:h:<sha256>``, so a client-chosen value
(a token, a user name) can never break the protocol or be stored raw.
"""

from __future__ import annotations

import hashlib
import re

MAX_KEY_BYTES = 250
_SAFE = re.compile(r"[!-~]+\Z", re.ASCII)  # printable ASCII, no space, no control


def store_key(namespace: str, key: str) -> str:
    """The key as sent to the backend."""
    full = f"{namespace}:{key}"
    if len(full) <= MAX_KEY_BYTES and _SAFE.match(full):
        return full
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{namespace}:h:{digest}"


def digest_key(prefix: str, secret: bytes | str) -> str:
    """A key naming a credential by digest, never raw: ``<prefix>:<sha256 hex>``."""
    data = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else secret
    return f"{prefix}:{hashlib.sha256(data).hexdigest()}"
