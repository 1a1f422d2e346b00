"""Browser login: per-request cost of a session cookie against a bearer JWT, and the
login round trip in a real browser.

    .venv/bin/python contrib/bench/bench_browser_login.py [--repeat 5000] [--logins 5]

In process, through the whole stack (werkzeug test environ → RequestContext → Router →
Authenticate → … → a no-op app), with a real memcached as the store:
- bare: a keyless API;
- jwt: a warm bearer JWT (a SHA-256 and an LRU hit);
- session: the session cookie, the worker's copy of the session fresh (cache_ttl 1 s:
  what nearly every request costs);
- session, store read: the same with every request reading the session from memcached
  (what the first request after each second costs), next to one memcached get.
Then, unless --logins 0, the login round trip (protected path → provider's form →
sign-in → back at the path) in Debian's chromium, against the gateway under werkzeug's
threaded server. A benchmark, not a test: it asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.browser_login import ENV, http_sign_in, make_idp  # noqa: E402
from tests.support.browser_login import gateway_config  # noqa: E402
from tests.support.idp import _QuietHandler  # noqa: E402
from tests.support.processes import Memcached, free_port  # noqa: E402
from wsgi_gateway import build_app, load_config  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _NeverKept(dict):
    """A worker cache that keeps nothing (the bench's "store read" case)."""

    def __setitem__(self, key, value):
        pass


def noop_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def build(idp, public: str, memcached: str, workdir: Path, cache_ttl: str = "1s"):
    config = gateway_config(idp, public=public, auth_extra=[],
                            store={"backend": "memcached", "servers": [memcached]},
                            options={"secure_cookies": False, "cache_ttl": cache_ttl})
    config["apis"] += [{"name": "jwt", "path": "/jwt", "auth": ["jwt"]},
                       {"name": "open", "path": "/open", "auth": ["keyless"]}]
    config["logging"] = {"access_log": False}
    path = workdir / f"bench-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = build_app(load_config(path), noop_app)
    gateway.warm()
    return gateway


def per_request_us(gateway, environ: dict, repeat: int) -> float:
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)
    started = time.perf_counter()
    for _ in range(repeat):
        for _ in gateway(dict(environ), start_response):
            pass
    elapsed = time.perf_counter() - started
    if any(not s.startswith("200") for s in statuses):
        raise SystemExit(f"benchmark misconfigured: {statuses[-1]}")
    return elapsed / repeat * 1e6


def serve(gateway, port: int):
    server = make_server("127.0.0.1", port, gateway, threaded=True, request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def per_request(idp, memcached, workdir, repeat: int) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    idp.add_login_client("gw-browser", ENV["GW_BROWSER_CLIENT_SECRET"],
                         redirect_uris=[public + "/.gateway/oidc/callback"])
    rows = {}
    for label in ("session (worker copy)", "session (store read)"):
        gateway = build(idp, public, memcached.address, workdir, "1s")
        if label.endswith("(store read)"):  # every request reads the record from memcached
            flow = next(iter(gateway.resources["oidc_login_flows"].values()))
            flow.sessions._cache = _NeverKept()
        server = serve(gateway, port)
        handle = http_sign_in(public).cookies["gw-session"]
        server.shutdown()
        token = idp.issue(ttl=3600)
        envs = {"bare": EnvironBuilder(path="/open/x").get_environ(),
                "jwt": EnvironBuilder(path="/jwt/x", headers={"Authorization": f"Bearer {token}"}).get_environ(),
                label: EnvironBuilder(path="/app/x", headers={"Cookie": f"gw-session={handle}",
                                                              "Accept": "application/json"}).get_environ()}
        for name, env in envs.items():
            per_request_us(gateway, env, 200)  # warm up
            rows[name] = min(per_request_us(gateway, env, repeat) for _ in range(3))
        gateway.close()
    store = gateway.store
    started = time.perf_counter()
    for _ in range(repeat):
        store.get("bench-missing")
    rows["one memcached get"] = (time.perf_counter() - started) / repeat * 1e6
    print(f"{'request':28} {'µs':>8} {'over bare':>10}")
    for name, value in rows.items():
        over = f"{value - rows['bare']:10.1f}" if name != "one memcached get" else ""
        print(f"{name:28} {value:8.1f} {over}")


def browser_round_trips(idp, memcached, workdir, logins: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("login round trip: skipped (playwright is not installed)")
        return
    if not os.path.exists("/usr/bin/chromium"):
        print("login round trip: skipped (/usr/bin/chromium is missing)")
        return
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    idp.add_login_client("gw-browser", ENV["GW_BROWSER_CLIENT_SECRET"],
                         redirect_uris=[public + "/.gateway/oidc/callback"])
    server = serve(build(idp, public, memcached.address, workdir, "1s"), port)
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=CHROMIUM_ARGS)
        for _ in range(logins + 1):
            context = browser.new_context()
            page = context.new_page()
            started = time.perf_counter()
            page.goto(public + "/app/page")
            if not page.url.startswith(idp.issuer):
                raise SystemExit(f"not at the provider: {page.url}: {page.content()[:300]}")
            page.fill("#username", "alice")
            page.fill("#password", "alice-password")
            page.click("#signin")
            page.wait_for_url(public + "/app/page")
            times.append((time.perf_counter() - started) * 1000)
            context.close()
        browser.close()
    server.shutdown()
    times = times[1:]  # the first warms chromium and the provider
    print(f"login round trip in chromium over {logins} logins: median {statistics.median(times):.0f} ms, "
          f"min {min(times):.0f} ms, max {max(times):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5000)
    parser.add_argument("--logins", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(ENV)
    memcached = Memcached().start()
    idp = make_idp()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            per_request(idp, memcached, Path(tmp), args.repeat)
            if args.logins:
                browser_round_trips(idp, memcached, Path(tmp), args.logins)
    finally:
        idp.stop()
        memcached.stop()


if __name__ == "__main__":
    main()
