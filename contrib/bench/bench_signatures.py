"""Warm per-request cost of the signature methods, in process, through the whole stack.

    .venv/bin/python contrib/bench/bench_signatures.py [--requests 2000]

Starts its own memcached (the gateway's store), builds the gateway of
tests/authn/test_signatures.py with replay checks off (the same signed request repeats),
then times the whole in-process stack (werkzeug's test client, as the tests drive it) for:
hmac (draft-cavage HMAC-SHA256) and httpsig (RFC 9421) with each key kind (Ed25519,
ECDSA P-256, RSA-PSS-SHA512, HMAC-SHA256). Moved here from the test suite, where it
printed a figure and asserted a bound that no load-sharing CI machine can promise.
A benchmark, not a test: it asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.authn.test_signatures import ENV, Keys, config, rfc9421, signed  # noqa: E402
from tests.middleware.conftest import BufferedClient, Recorder  # noqa: E402
from tests.support.processes import Memcached  # noqa: E402
from wsgi_gateway import build_app, load_config  # noqa: E402


def per_request_us(client, path: str, headers: dict, n: int) -> float:
    for _ in range(20):  # warm: key sets parsed, caches filled
        client.get(path, headers=headers)
    started = time.perf_counter()
    for _ in range(n):
        status = client.get(path, headers=headers).status_code
        if status != 200:
            raise SystemExit(f"{path}: answered {status}; the benchmark needs 200s")
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update(ENV)
    memcached = Memcached().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            keys = Keys(folder)
            path = folder / "gateway.yaml"
            cfg = config(memcached, {"replay": False}, {"replay": False})
            cfg["logging"] = {"access_log": False}
            path.write_text(yaml.safe_dump(cfg))
            client = BufferedClient(build_app(load_config(path), Recorder()))
            cases = [("hmac (cavage, HMAC-SHA256)", "/api/x", signed())]
            cases += [(f"httpsig ({kid})", "/sig/x", rfc9421(keys, key_id=kid))
                      for kid in ("ed", "ec", "rsa", "k1")]
            print(f"{'method':30} {'µs/request':>11}")
            for name, url, headers in cases:
                print(f"{name:30} {per_request_us(client, url, headers, args.requests):11.1f}")
    finally:
        memcached.stop()


if __name__ == "__main__":
    main()
