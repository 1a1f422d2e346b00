"""What a config that loads will not do once several processes serve it.

The memory store lives in one process. Under gunicorn each worker is a process, so
each counts rate limits and quotas alone (``rate: 3/s`` with two workers let 4
through in 1 s, up to 6), and each keeps its own session records, which no command
can reach (``sessions revoke`` runs in a process of its own). Such a config is fine
for a demo; ``check`` and ``serve`` say so instead of refusing it.
"""

from __future__ import annotations

from .model import GatewayConfig

MEMORY_STORE_PROBLEM = (
    "the memory store lives inside one process: the gateway's workers each have their "
    "own, and this command's process is not one of them")


def shared_state_warnings(config: GatewayConfig, workers: int) -> list[str]:
    """Warnings for state the config means to share but ``workers`` processes would split,
    and for credentials named in a shared store by an unkeyed digest."""
    if config.store.backend == "memcached":
        return _unkeyed_digests(config)
    if workers <= 1:
        return []
    where = f"{config.source}: store.backend memory with {workers} workers"
    warnings = []
    rates = [name for name, p in config.policies.items() if p.rate or p.quota]
    if rates:
        warnings.append(
            f"{where}: each worker counts rate limits and quotas alone, so a client may get "
            f"up to {workers} times its limit (policies {', '.join(sorted(rates))}); use "
            "store.backend memcached, or server.workers 1")
    identified = any(m.method != "keyless" for api in config.apis for m in api.auth)
    if config.sessions.enabled and identified:  # keyless requests have no session
        warnings.append(
            f"{where}: each worker keeps its own sessions, and `sessions revoke` cannot reach "
            "them; use store.backend memcached, or sessions.enabled false")
    if any(m.method == "oidc_login" for api in config.apis for m in api.auth):
        warnings.append(  # a sign-in started on one worker comes back to any of them
            f"{where}: browser sign-ins and sessions (oidc_login) live in one worker, so a "
            "callback or a signed-in request that reaches another one is refused or sent to "
            "sign in again; use store.backend memcached, or server.workers 1")
    return warnings


_STORED_CREDENTIALS = ("apikey", "introspection")  # methods naming credentials in the store


def _unkeyed_digests(config: GatewayConfig) -> list[str]:
    used = sorted({m.method for api in config.apis for m in api.auth} & set(_STORED_CREDENTIALS))
    if config.secret_key is not None or not used:
        return []
    return [f"{config.source}: secret_key is not set: {', '.join(used)} credentials are named in "
            "memcached by a plain SHA-256, so whoever can write to memcached can plant a record "
            "for a credential of their own; set secret_key (see docs/operators/configuration.md, Credential digests)"]
