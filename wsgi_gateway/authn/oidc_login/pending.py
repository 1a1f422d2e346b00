"""Logins in flight: started at the authorization redirect, finished once at the callback.

A pending login is a store record named by a keyed digest of its ``state`` and holding
(sealed) the nonce, the PKCE verifier, the return-to path and a digest of a random
*binding* token. The binding token goes to the browser in one small pre-login cookie
that lists at most ``pending_max`` of them, newest first: starting many logins never
grows the cookie past a few dozen bytes (oauth2-proxy and mod_auth_openidc set one
cookie per login, until the browser's headers are too large for the server).

The callback is accepted only when (a) the state names a record (altered state: no),
(b) the browser's cookie holds that record's binding (another browser: no), (c) the
record is younger than ``pending_ttl`` by the injected clock (too late: no), and
(d) this call is the one that deletes it (replayed: no, since ``delete`` answers True
once). Each refusal is a :class:`LoginRejected` with a fixed, client-safe reason.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ...store import Store
from .sealing import Sealer, Unsealable

PURPOSE = "oidc-login-state"
BINDING = "oidc-login-binding"


class LoginRejected(Exception):
    """A callback that must not become a session; ``str()`` is safe to show."""


@dataclass(frozen=True)
class Pending:
    """One login in flight."""

    state: str
    nonce: str
    verifier: str
    return_to: str
    started: float
    binding: str = ""  # the pre-login cookie's token that matched (kept out of the cookie after)


class PendingLogins:
    """Starts and finishes logins. Every store call may raise StoreError (the caller's 503).

    :param store: where records live (shared by every worker and host).
    :param sealer: seals the record and keys its name.
    :param namespace: the client's key prefix (one per configured login client).
    :param ttl: how long a login may take.
    :param max_pending: bindings kept in the browser's cookie.
    :param clock: wall-clock seconds.
    """

    def __init__(self, store: Store, sealer: Sealer, namespace: str, *, ttl: float,
                 max_pending: int, clock: Callable[[], float]):
        self.store, self.sealer, self.namespace = store, sealer, namespace
        self.ttl, self.max_pending, self.clock = ttl, max_pending, clock

    def start(self, return_to: str, cookie: str | None) -> tuple[Pending, str]:
        """A new pending login and the pre-login cookie value that carries its binding."""
        pending = Pending(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                          verifier=secrets.token_urlsafe(48), return_to=return_to,
                          started=self.clock())
        binding = secrets.token_urlsafe(16)  # 128 bits
        key = self._key(pending.state)
        record = {"nonce": pending.nonce, "verifier": pending.verifier,
                  "return_to": return_to, "started": pending.started,
                  "binding": self.sealer.digests.digest(BINDING, binding)}
        sealed = self.sealer.seal(json.dumps(record).encode(), key)
        self.store.set(key, sealed, self.ttl + 5)  # margin: memcached expiry rounds
        kept = [b for b in bindings(cookie) if b != binding][: self.max_pending - 1]
        return pending, ".".join([binding, *kept])

    def finish(self, state: str | None, cookie: str | None) -> Pending:
        """The pending login ``state`` names, consumed; LoginRejected when not acceptable."""
        if not state or len(state) > 128:
            raise LoginRejected("the sign-in response has no valid state")
        key = self._key(state)
        sealed = self.store.get(key)
        if sealed is None:
            raise LoginRejected("this sign-in is unknown, already used or expired; please start again")
        try:
            record = json.loads(self.sealer.open(sealed, key))
        except (Unsealable, ValueError):
            raise LoginRejected("this sign-in is unknown; please start again") from None
        binding = next((b for b in bindings(cookie)
                        if self.sealer.digests.matches(BINDING, record["binding"], b)), None)
        if binding is None:
            raise LoginRejected("this sign-in was started in another browser; please start again")
        if self.clock() - record["started"] > self.ttl:
            self.store.delete(key)
            raise LoginRejected("this sign-in took too long; please start again")
        if not self.store.delete(key):  # a concurrent or replayed callback got here first
            raise LoginRejected("this sign-in response was already used")
        return Pending(state, record["nonce"], record["verifier"], record["return_to"],
                       record["started"], binding)

    def _key(self, state: str) -> str:
        return f"{self.namespace}:p:{self.sealer.digests.digest(PURPOSE, state)}"


def without(cookie: str | None, binding: str) -> str:
    """The pre-login cookie once ``binding``'s login is finished (other tabs' logins kept)."""
    return ".".join(b for b in bindings(cookie) if b != binding)


def bindings(cookie: str | None) -> list[str]:
    """The binding tokens in a pre-login cookie (malformed entries ignored)."""
    if not cookie:
        return []
    return [b for b in cookie.split(".")[:10] if 16 <= len(b) <= 32 and b.replace("-", "").replace("_", "").isalnum()]
