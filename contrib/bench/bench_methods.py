"""Warm per-request cost of each authentication method, in process, against keyless.

    .venv/bin/python contrib/bench/bench_methods.py [--requests 5000]

Starts its own memcached (the shared store) and a loopback OpenID provider (for
introspection), builds one gateway with an API per method, warms each credential once,
then times the whole in-process stack for the same credential again and again:
keyless (the baseline), jwt (HS256, cache hit), introspection (worker copy hit, then
store hit with local_ttl 0), apikey, basic (cache hit), hmac (replay check off, since the
same signed request repeats; a real client's replay check adds one memcached add).
mTLS is measured in tests/authn/test_mtls.py terms only. A benchmark, not a test: it
asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.authn.test_signatures import cavage, http_date  # noqa: E402
from tests.support.gateways import SECRET_ENV, mint, provider  # noqa: E402
from tests.support.idp import TestIdP  # noqa: E402
from tests.support.processes import Memcached  # noqa: E402
from wsgi_gateway import build_app, load_config  # noqa: E402
from wsgi_gateway.authn.apikeys_store import ApiKeys  # noqa: E402
from wsgi_gateway.authn.users_file import add_user  # noqa: E402
from wsgi_gateway.store.memcached import MemcachedStore  # noqa: E402


HMAC_SECRET = "bench-hmac-secret-0123456789abcdef"


def hmac_headers(target: str) -> dict:
    """A Tyk-style signed request; reused as is, so the API must not check replays."""
    headers = {"Date": http_date()}
    headers["Authorization"] = cavage("GET", target, headers, key_id="k1", secret=HMAC_SECRET)
    return headers


def noop_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def config(memcached: Memcached, idp: TestIdP, users: Path, signing: Path) -> dict:
    introspection = {"method": "introspection", "issuer": idp.issuer, "discovery": True,
                     "client_id": "bench", "client_secret": {"env": "BENCH_INTROSPECTION"}}
    return {
        "store": {"backend": "memcached", "servers": [memcached.address]},
        "providers": [provider()],
        "logging": {"access_log": False},
        "apis": [
            {"name": "keyless", "path": "/keyless", "auth": ["keyless"]},
            {"name": "jwt", "path": "/jwt", "auth": ["jwt"]},
            {"name": "introspection", "path": "/introspection", "auth": [introspection]},
            {"name": "introspection-store", "path": "/introspection-store",
             "auth": [{**introspection, "local_ttl": "0s"}]},
            {"name": "apikey", "path": "/apikey", "auth": ["apikey"]},
            {"name": "basic", "path": "/basic", "auth": [{"method": "basic", "users_file": str(users)}]},
            {"name": "hmac", "path": "/hmac", "auth": [{"method": "hmac", "secrets_file": str(signing),
                                                        "replay": False}]},
        ],
    }


def per_request_us(gateway, path: str, headers: dict, n: int) -> float:
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    statuses = []

    def start_response(status, response_headers, exc_info=None):
        statuses.append(status)

    for _ in gateway(dict(environ), start_response):  # warm: the credential is cached after this
        pass
    started = time.perf_counter()
    for _ in range(n):
        for _ in gateway(dict(environ), start_response):
            pass
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{path}: {len(bad)} non-200 answers, e.g. {bad[0]}")
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    os.environ.update(SECRET_ENV)
    os.environ["BENCH_INTROSPECTION"] = "bench-secret"
    os.environ["BENCH_HMAC"] = HMAC_SECRET
    memcached = Memcached().start()
    idp = TestIdP().start()
    idp.add_client("bench", "bench-secret")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            users = Path(tmp) / "users.yaml"
            add_user(users, "alice", "wonderland")
            signing = Path(tmp) / "signing.yaml"
            signing.write_text(yaml.safe_dump({"keys": {"k1": {"env": "BENCH_HMAC"}}}))
            path = Path(tmp) / "gateway.yaml"
            path.write_text(yaml.safe_dump(config(memcached, idp, users, signing)))
            gateway = build_app(load_config(path), noop_app)
            gateway.warm()
            key, _ = ApiKeys(MemcachedStore([("127.0.0.1", memcached.port)])).create("apikey")
            basic = base64.b64encode(b"alice:wonderland").decode()
            opaque = idp.issue_opaque({"sub": "ann"}, ttl=3600)
            cases = [
                ("keyless", "/keyless/x", {}),
                ("jwt (HS256, cache hit)", "/jwt/x", {"Authorization": f"Bearer {mint()}"}),
                ("introspection (worker copy)", "/introspection/x", {"Authorization": f"Bearer {opaque}"}),
                ("introspection (store hit)", "/introspection-store/x", {"Authorization": f"Bearer {opaque}"}),
                ("apikey", "/apikey/x", {"X-API-Key": key}),
                ("basic (cache hit)", "/basic/x", {"Authorization": f"Basic {basic}"}),
                ("hmac (no replay check)", "/hmac/x", hmac_headers("/hmac/x")),
            ]
            base = None
            print(f"{'method':30} {'µs/request':>11} {'over keyless':>13}")
            for name, url, headers in cases:
                us = per_request_us(gateway, url, headers, args.requests)
                base = us if base is None else base
                print(f"{name:30} {us:11.1f} {us - base:13.1f}")
    finally:
        idp.stop()
        memcached.stop()


if __name__ == "__main__":
    main()
