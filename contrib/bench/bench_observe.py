"""Per-request cost of metrics and the audit log, in process, against both off.

    .venv/bin/python contrib/bench/bench_observe.py [--requests 3000] [--rounds 5]
    .venv/bin/python contrib/bench/bench_observe.py --served [--duration 4] [--rounds 2]

Builds the same gateway five times (JWT HS256 with a warm token, a rule file with
validate/assign/deny/allow, a rate-limited policy in the memory store, a no-op app):
``off``, ``metrics`` (prometheus_client multiprocess files in a temporary directory),
``audit`` (every allowed request written to a file, sample 1.0), ``both``, and
``both-0.1`` (allowed requests sampled at 0.1, as a busy deployment would), and
``otel`` (``tracing.otel`` spans with ``exporter: none``, when the extra is installed);
then times the whole stack through werkzeug test environs, rounds alternating the
variants, best round kept. The time is the thread's CPU time (``time.thread_time``):
on a shared host it moves less than wall time. Prints µs per request and each
variant's share over ``off``.

``--served``: the same configs under real gunicorn (2 sync workers each), driven by wrk
(16 connections, same token) in alternating rounds: requests per second, and the
workers' CPU per request (from /proc), which a busy machine disturbs less than
throughput; ``off-again`` repeats ``off`` to show the run's own noise.
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
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.observe.support import observed_config  # noqa: E402
from tests.support.gateways import SECRET_ENV, mint  # noqa: E402
from wsgi_gateway import build_app, load_config  # noqa: E402


def noop_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def build(workdir: Path, name: str, metrics: bool, audit: bool, sample: float = 1.0,
          otel: bool = False):
    config = observed_config(workdir, None)
    config["policies"]["basic"] = {"rate": "1000000/60s"}
    config["app"] = "contrib.bench.bench_observe:noop_app"
    config["metrics"]["enabled"] = metrics
    config["audit"] = {"enabled": audit, "file": str(workdir / f"{name}-audit.jsonl"),
                       "claims": ["sub", "iss"], "sample_allowed": sample}
    if otel:  # spans built and dropped: their cost without an exporter's
        config["tracing"] = {"otel": {"enabled": True, "exporter": "none"}}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_app(load_config(path), noop_app)


def run(gateway, environ: dict, n: int) -> float:
    def start_response(status, headers, exc_info=None):
        return None

    begin = time.thread_time()  # CPU, not wall: the neighbours of a shared host disturb it less
    for _ in range(n):
        body = gateway(dict(environ), start_response)
        for _chunk in body:
            pass
        body.close()
    return (time.thread_time() - begin) / n


def _cpu_seconds(process) -> float:
    """User + system CPU seconds of the gateway's workers (children of the master)."""
    import subprocess

    pids = subprocess.run(["pgrep", "-P", str(process.proc.pid)], capture_output=True,
                          text=True).stdout.split()
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def served(args, workdir: Path, variants: dict) -> None:
    """req/s under wrk, and the workers' CPU per request (robust to a busy machine:
    throughput swings with the neighbours' load, CPU per request much less)."""
    import re
    import subprocess

    from tests.support.processes import GatewayProcess

    token = mint(sub="bench")
    processes = {}
    for name, flags in variants.items():
        build(workdir, name, *flags).close()  # writes the config
        processes[name] = GatewayProcess(workdir / f"{name}.yaml", workers=2,
                                         env=SECRET_ENV).start()
    best = {name: 0.0 for name in variants}
    cpu = {name: float("inf") for name in variants}
    try:
        for _ in range(args.rounds):
            for name, process in processes.items():
                before = _cpu_seconds(process)
                out = subprocess.run(["wrk", "-t2", "-c16", f"-d{args.duration}s",
                                      "-H", f"Authorization: Bearer {token}",
                                      process.url + "/api/orders"], capture_output=True, text=True).stdout
                used = _cpu_seconds(process) - before
                done = int(re.search(r"(\d+) requests in", out)[1])
                best[name] = max(best[name], float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]))
                cpu[name] = min(cpu[name], used / max(done, 1))
    finally:
        for process in processes.values():
            process.stop()
    base = cpu["off"]
    for name in variants:
        extra = "" if name == "off" else f"  +{(cpu[name] - base) * 1e6:.1f} µs ({(cpu[name] - base) / base:+.1%})"
        print(f"{name:8s} {best[name]:8.0f} req/s  worker CPU {cpu[name] * 1e6:7.1f} µs/request{extra}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--served", action="store_true", help="under gunicorn, with wrk")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    args = parser.parse_args()
    os.environ.update(SECRET_ENV)
    if args.served:
        variants = {"off": (False, False), "metrics": (True, False), "audit": (False, True),
                    "both": (True, True), "both-0.1": (True, True, 0.1),
                    "off-again": (False, False)}  # a control: the run's own noise
        return served(args, Path(tempfile.mkdtemp(prefix="bench-observe-")), variants)
    workdir = Path(tempfile.mkdtemp(prefix="bench-observe-"))
    variants = {"off": (False, False), "metrics": (True, False), "audit": (False, True),
                "both": (True, True), "both-0.1": (True, True, 0.1)}
    try:
        import opentelemetry.sdk  # noqa: F401 - the [otel] extra
        variants["otel"] = (False, False, 1.0, True)
    except ImportError:
        print("otel: skipped, the [otel] extra is not installed")
    gateways = {name: build(workdir, name, *flags) for name, flags in variants.items()}
    token = mint(sub="bench")
    environ = EnvironBuilder(path="/api/orders", headers={"Authorization": f"Bearer {token}"},
                             environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()
    import logging
    logging.getLogger("wsgi_gateway.access").disabled = True  # the request line is not measured here
    best = {name: float("inf") for name in gateways}
    for name, gateway in gateways.items():
        run(gateway, environ, 200)  # warm: token cache, rule memo, metric children
    for _ in range(args.rounds):
        for name, gateway in gateways.items():
            best[name] = min(best[name], run(gateway, environ, args.requests))
    base = best["off"]
    for name, seconds in best.items():
        extra = "" if name == "off" else f"  +{(seconds - base) * 1e6:.1f} µs ({(seconds - base) / base:+.1%})"
        print(f"{name:8s} {seconds * 1e6:8.1f} µs/request{extra}")


if __name__ == "__main__":
    main()
