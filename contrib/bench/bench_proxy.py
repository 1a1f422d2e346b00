#!/usr/bin/env python3
"""The reverse proxy's cost, in one run: bare upstream, nginx, the gateway (URL and app).

    .venv/bin/python contrib/bench/bench_proxy.py [--duration 4] [--rounds 2]

Starts, on free loopback ports:

- ``bare``: the upstream alone, gunicorn (gthread, 2 workers x 4 threads) serving a
  small hello app (and the 1 GiB endpoints below);
- ``nginx``: Debian's nginx (2 workers, keep-alive pool of 16 to the upstream)
  proxying to it;
- ``gw-url``: the gateway (2 sync workers, JWT + a CEL rule file injecting two
  headers) proxying to it as a URL upstream;
- ``gw-app``: the same gateway config wrapping the same hello app in process
  (``upstream: app``), for the proxy's overhead over app mode;
- ``gw-url-gthread``: ``gw-url`` with gthread workers (4 threads), which overlap the
  wait for the upstream;

then drives each with wrk (same path, token and connections; rounds alternate the
targets) and prints req/s, p50/p99 and the latency each adds over the bare upstream.
Last, it streams a 1 GiB body through ``gw-url`` both ways (upload to a sink, download
from the upstream) while sampling the resident memory of every gateway worker.

A benchmark, not a test: it asserts nothing and CI never runs it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contrib.bench.bench_stack import (  # noqa: E402
    LOOPBACK, LoadSpec, Server, free_port, pick_tool, run_load, running, spawn, start_gateway,
    wait_ready,
)
from tests.support.gateways import SECRET_ENV, mint, provider  # noqa: E402

GIB = 1 << 30
PIECE = 1 << 16
RULES = """\
allow:
  - {when: "claims.sub != ''"}
headers:
  X-User-Id: "claims.sub"
  X-Client: "claims.azp"
"""


# ------------------------------------------------------------------- the upstream app

def upstream_app(environ, start_response):
    """hello for the load runs; ``/api/large?size=N`` sends N bytes; a body is drained."""
    stream, drained = environ["wsgi.input"], 0
    while data := stream.read(PIECE):
        drained += len(data)
    if environ.get("PATH_INFO", "").endswith("/large"):
        size = int(environ.get("QUERY_STRING", "size=0").split("=")[1])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return _pieces(size)
    body = b"hello" if not drained else str(drained).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _pieces(size: int):
    block = b"x" * PIECE
    while size > 0:
        yield block[:size]
        size -= PIECE


# ------------------------------------------------------------------------- the servers

def start_upstream(log_dir: Path) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "2",
            "--worker-class", "gthread", "--threads", "4", "--bind", f"{LOOPBACK}:{port}",
            "--timeout", "120", "contrib.bench.bench_proxy:upstream_app"]
    return spawn("bare", args, port, log_dir)


def write_gateway(folder: Path, name: str, upstream, **server) -> Path:
    (folder / "rules.yaml").write_text(RULES)
    config = {"providers": [provider()], "policies": {"basic": {}},
              "logging": {"access_log": False},
              "server": {"timeout": 120, **server},
              "app": "contrib.bench.bench_proxy:upstream_app",
              "apis": [{"name": "api", "path": "/api", "auth": ["jwt"], "default_policy": "basic",
                        "rules": "rules.yaml", "upstream": upstream}]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


NGINX_CONF = """\
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream app {{ server {upstream}; keepalive 16; }}
    server {{
        listen {listen};
        client_max_body_size 2g;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(upstream: Server, log_dir: Path) -> Server:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = log_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=log_dir, upstream=f"{LOOPBACK}:{upstream.port}",
                                      listen=f"{LOOPBACK}:{port}"))
    return spawn("nginx", [binary, "-p", str(log_dir), "-c", str(conf)], port, log_dir)


# ------------------------------------------------------------------------------ memory

def worker_pids(master: int) -> list[int]:
    """The gunicorn workers of ``master`` (its children)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """Samples every worker's RSS every 100 ms until stopped: (min, max) per worker."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master, self.samples, self.stopped = master, {}, threading.Event()

    def run(self):
        while not self.stopped.wait(0.1):
            for pid in worker_pids(self.master):
                try:
                    self.samples.setdefault(pid, []).append(rss_mib(pid))
                except OSError:
                    pass

    def report(self) -> str:
        return ", ".join(f"worker {pid}: {min(s):.1f}..{max(s):.1f} MiB ({len(s)} samples)"
                         for pid, s in sorted(self.samples.items()))


def stream_1gib(gateway: Server, token: str) -> None:
    for label, transfer in (("upload", _upload), ("download", _download)):
        sampler = RssSampler(gateway.proc.pid)
        sampler.start()
        started = time.monotonic()
        moved = transfer(gateway.port, token)
        seconds = time.monotonic() - started
        sampler.stopped.set()
        sampler.join()
        print(f"1 GiB {label}: {moved / GIB:.2f} GiB in {seconds:.1f} s "
              f"({moved / seconds / 2**20:.0f} MiB/s); RSS {sampler.report()}")


def _upload(port: int, token: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    block = b"u" * PIECE
    conn.request("POST", "/api/sink", body=(block for _ in range(GIB // PIECE)),
                 headers={"Authorization": token, "Content-Length": str(GIB)})
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"upload answered {response.status}: {answer[:300]!r}")
    return int(answer)


def _download(port: int, token: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    conn.request("GET", f"/api/large?size={GIB}", headers={"Authorization": token})
    response, moved = conn.getresponse(), 0
    while data := response.read(1 << 20):
        moved += len(data)
    conn.close()
    return moved


# ---------------------------------------------------------------------------- the run

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-memory", action="store_true", help="skip the 1 GiB streams")
    args = parser.parse_args()
    os.environ.update(SECRET_ENV)
    tool = pick_tool("auto")
    token = "Bearer " + mint(sub="bench")
    spec = LoadSpec(path="/api/hello", headers=(("Authorization", token),),
                    connections=args.connections, duration=args.duration)
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    with running(lambda: start_upstream(work)) as (upstream,):
        wait_ready(upstream, "/api/hello")
        url_conf = write_gateway(work, "gw-url", {"targets": [upstream.url], "max_body": "2GiB",
                                                  "read_timeout": "60s"})
        app_conf = write_gateway(work, "gw-app", "app")
        threaded_conf = write_gateway(work, "gw-url-gthread", {"targets": [upstream.url]},
                                      worker_class="gthread", threads=4)
        with running(lambda: start_nginx(upstream, work),
                     lambda: start_gateway(url_conf, workers=2, log_dir=work, name="gw-url"),
                     lambda: start_gateway(app_conf, workers=2, log_dir=work, name="gw-app"),
                     lambda: start_gateway(threaded_conf, workers=2, log_dir=work,
                                           name="gw-url-gthread")) as others:
            for server in others:
                wait_ready(server, "/api/hello")
            servers = [upstream, *others]
            results: dict[str, list] = {s.name: [] for s in servers}
            for number in range(1, args.rounds + 1):
                for server in servers:
                    result = run_load(tool, server.port, spec, work)
                    results[server.name].append(result)
                    print(f"round {number} {server.name:<14} {result.rps:8.0f} req/s  "
                          f"p50 {result.p50_us / 1000:6.2f} ms  p99 {result.p99_us / 1000:6.2f} ms  "
                          f"non-2xx {result.non_2xx}  errors {sum(result.errors.values())}")
            summary(results)
            if not args.no_memory:
                stream_1gib(next(s for s in servers if s.name == "gw-url"), token)


def summary(results: dict[str, list]) -> None:
    """Medians per target, and what each adds over the bare upstream."""
    rps = {name: statistics.median(r.rps for r in runs) for name, runs in results.items()}
    p50 = {name: statistics.median(r.p50_us for r in runs) for name, runs in results.items()}
    print("\nmedians            req/s  vs bare   p50 ms  added p50 ms")
    for name in results:
        print(f"{name:<14} {rps[name]:9.0f} {rps[name] / rps['bare']:8.2f} "
              f"{p50[name] / 1000:8.2f} {(p50[name] - p50['bare']) / 1000:12.2f}")
    print(f"proxy overhead over app mode: gw-url / gw-app = {rps['gw-url'] / rps['gw-app']:.2f} "
          f"of the req/s, +{(p50['gw-url'] - p50['gw-app']) / 1000:.2f} ms at p50")


if __name__ == "__main__":
    main()
