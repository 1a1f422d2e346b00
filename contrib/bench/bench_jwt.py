"""Per-request cost of JWT authentication, in process: cold token vs warm (cache hit).

    .venv/bin/python contrib/bench/bench_jwt.py [--tokens 2000] [--repeat 20000]

For RS256 and ES256 it measures, through the whole in-process stack (werkzeug test
environ → RequestContext → Router → Authenticate → … → a no-op app):
- cold: every request carries a token never seen before (parse, signature, claims);
- warm: the same token again (a SHA-256 and an LRU hit);
and the bare stack with a keyless API, so the JWT share can be read off. A benchmark,
not a test: it asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.idp import TestIdP  # noqa: E402
from wsgi_gateway import build_app, load_config  # noqa: E402


def noop_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def build(idp: TestIdP, alg: str, workdir: Path):
    config = {
        "providers": [{"name": "bench", "issuer": idp.issuer, "discovery": True,
                       "algorithms": [alg], "audiences": ["test-api"]}],
        "apis": [{"name": "jwt", "path": "/jwt", "auth": ["jwt"]},
                 {"name": "open", "path": "/open", "auth": ["keyless"]}],
        "logging": {"access_log": False},
    }
    path = workdir / f"{alg}.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = build_app(load_config(path), noop_app)
    gateway.warm()
    return gateway


def environ_for(path: str, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return EnvironBuilder(path=path, headers=headers).get_environ()


def per_request_us(gateway, environs: list[dict]) -> float:
    """Mean µs per request over ``environs`` (each copied, as a server makes a fresh one)."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    started = time.perf_counter()
    for environ in environs:
        for _ in gateway(dict(environ), start_response):
            pass
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"benchmark misconfigured: {len(bad)} non-200 answers, e.g. {bad[0]}")
    return elapsed / len(environs) * 1e6


def run(alg: str, tokens: int, repeat: int, workdir: Path) -> dict[str, float]:
    with TestIdP(default_alg=alg) as idp:
        gateway = build(idp, alg, workdir)
        cold = [environ_for("/jwt/x", idp.issue()) for _ in range(tokens)]
        warm = [environ_for("/jwt/x", idp.issue())] * repeat
        bare = [environ_for("/open/x", None)] * repeat
        per_request_us(gateway, warm[:100])  # first sight, imports, caches
        return {"bare": min(per_request_us(gateway, bare) for _ in range(3)),
                "cold": per_request_us(gateway, cold),
                "warm": min(per_request_us(gateway, warm) for _ in range(3))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="distinct tokens for the cold run")
    parser.add_argument("--repeat", type=int, default=20000, help="requests for warm and bare runs")
    parser.add_argument("--algs", nargs="+", default=["RS256", "ES256"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'alg':6} {'bare µs':>9} {'warm µs':>9} {'cold µs':>9} {'warm-bare':>10} {'cold-bare':>10}")
        for alg in args.algs:
            r = run(alg, args.tokens, args.repeat, Path(tmp))
            print(f"{alg:6} {r['bare']:9.1f} {r['warm']:9.1f} {r['cold']:9.1f} "
                  f"{r['warm'] - r['bare']:10.1f} {r['cold'] - r['bare']:10.1f}")


if __name__ == "__main__":
    main()
