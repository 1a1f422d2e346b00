#!/usr/bin/env python3
"""Where a full-stack request's time goes, in process (cProfile), steady or new identity.

    .venv/bin/python contrib/bench/profile_stack.py [--new-identity] [--requests 3000]

Builds the gateway of bench_compare.py's ``full-default-py`` contender (JWT RS256, the
10-rule file, rate + quota in a memcached this script starts) and calls it as WSGI,
without gunicorn. Prints the top functions by cumulative and by own time, and the
generation-2 collections (count, longest pause) seen meanwhile. A benchmark tool.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contrib.bench.bench_compare import PATH, Signer, gateway_config, memcached  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-identity", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--engine", default="cel-python")
    parser.add_argument("--mode", default=None)
    parser.add_argument("--no-gc-tuning", action="store_true")
    parser.add_argument("--no-profile", action="store_true", help="time only")
    args = parser.parse_args(argv)
    from wsgi_gateway import build_app, load_config

    tmp = Path(tempfile.mkdtemp(prefix="profile-stack-"))
    signer = Signer()
    (tmp / "jwks.json").write_text(json.dumps(signer.jwks))
    mc = memcached(tmp)
    try:
        config = gateway_config(tmp, "full", jwks_file=tmp / "jwks.json", store_port=mc.port,
                                rules=True, mode=args.mode, engine=args.engine,
                                worker_class="sync", keepalive=None)
        app = build_app(load_config(config), lambda env, sr: (sr("200 OK", [("Content-Length", "2")]), [b"ok"])[1])
        tokens = [signer.mint(f"u{i}") for i in range(args.requests)] if args.new_identity \
            else [signer.mint("steady")] * args.requests
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": PATH, "SERVER_NAME": "x", "SERVER_PORT": "80",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
                   "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}

        def call(token):
            env = dict(environ, HTTP_AUTHORIZATION=f"Bearer {token}", **{"wsgi.input": io.BytesIO(b"")})
            status = []
            body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
            assert status[0].startswith("200"), (status, body[:300])

        for t in [signer.mint("warm")] * 50:
            call(t)
        if not args.no_gc_tuning:
            from wsgi_gateway.runtime import tune_gc
            tune_gc()
        pauses, started = [], [0.0]

        def watch(phase, info):
            if info["generation"] == 2:
                if phase == "start":
                    started[0] = time.perf_counter()
                else:
                    pauses.append((time.perf_counter() - started[0]) * 1000)
        gc.callbacks.append(watch)
        profile = cProfile.Profile()
        began = time.perf_counter()
        if not args.no_profile:
            profile.enable()
        from wsgi_gateway.runtime import after_request
        for token in tokens:
            call(token)
            after_request()  # gunicorn's post_request hook (a no-op without tune_gc)
        profile.disable()
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        gc.collect()  # only what is not frozen, with tune_gc
        forced = (time.perf_counter() - began) * 1000
        print(f"a full collection after the run (caches filled by it; not frozen only, with tuning): {forced:.1f} ms; "
              f"objects the collector walks: {sum(len(gc.get_objects(g)) for g in range(3))}, "
              f"frozen: {gc.get_freeze_count()}")
        print(f"{args.requests} requests, {elapsed / args.requests * 1e6:.0f} µs each "
              f"{'' if args.no_profile else 'under cProfile'}; p99 pause "
              f"{sorted(pauses)[int(len(pauses) * 0.99)] if pauses else 0:.1f} ms; "
              f"gen-2 collections: {len(pauses)}, longest {max(pauses, default=0):.1f} ms")
        for order in () if args.no_profile else ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(22)
            print(out.getvalue()[out.getvalue().index("ncalls") - 2:])
        if os.environ.get("PROFILE_CALLERS") and not args.no_profile:
            pstats.Stats(profile).print_callers(os.environ["PROFILE_CALLERS"])
    finally:
        mc.proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
