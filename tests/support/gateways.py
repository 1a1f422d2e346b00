"""In-process gateways from config dicts, and identities from HMAC-signed tokens."""

from __future__ import annotations

import base64
import time

import yaml
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from tests.support.idp import TestIdP
from wsgi_gateway import build_app, load_config

SECRET = b"limits-test-secret-" * 3
ISSUER = "https://limits.test"


def provider() -> dict:
    return {"name": "t", "issuer": ISSUER, "algorithms": ["HS256"], "audiences": ["api"],
            "keys": [{"kid": "k", "secret": {"env": "LIMITS_TEST_SECRET"}}]}


def mint(sub: str = "ann", client: str = "app", iat: float | None = None, **claims) -> str:
    now = int(time.time()) if iat is None else int(iat)
    payload = {"iss": ISSUER, "sub": sub, "aud": "api", "azp": client, "iat": now,
               "exp": now + 600, **claims}
    return TestIdP.sign_hmac({"alg": "HS256", "kid": "k", "typ": "at+jwt"}, payload, SECRET)


SECRET_ENV = {"LIMITS_TEST_SECRET": base64.urlsafe_b64encode(SECRET).decode()}


def gateway_config(memcached_address: str | None, *, policies: dict, api: dict | None = None,
                   limits: dict | None = None, sessions: dict | None = None) -> dict:
    store = ({"backend": "memcached", "servers": [memcached_address], "timeout": "250ms",
              "retry_after": "300ms"} if memcached_address else {"backend": "memory"})
    config = {"store": store, "providers": [provider()], "policies": policies,
              "apis": [{"name": "api", "path": "/api", "auth": ["jwt"], "default_policy": "basic",
                        **(api or {})}]}
    if limits:
        config["limits"] = limits
    if sessions:
        config["sessions"] = sessions
    return config


class InProcess:
    """A gateway built in process from a config dict, on ``clock`` (a FakeClock from
    tests.support.clock lets the test move time instead of sleeping)."""

    def __init__(self, tmp_path, config: dict, name: str = "gw", clock=time.time):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.upstream, self.clock = Recorder(), clock
        self.gateway = build_app(load_config(path), self.upstream, clock=clock)
        self.client = BufferedClient(LintMiddleware(self.gateway))

    def get(self, token: str | None = None, path: str = "/api/x", **kw):
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, headers=headers, **kw)


def wait_for_fresh_window(period: float, need: float) -> None:
    """Sleep until at least ``need`` seconds remain in the current ``period`` window."""
    left = period - time.time() % period
    if left < need:
        time.sleep(left + 0.05)
