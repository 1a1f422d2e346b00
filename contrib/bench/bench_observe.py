"""Per-request cost of metrics and the audit log, in process, against both off.

    .venv/bin/python contrib/bench/bench_observe.py [--requests 300] [--rounds 40] [--otel]
    .venv/bin/python contrib/bench/bench_observe.py --served [--duration 4] [--rounds 3]

Builds the same gateway five times (JWT HS256 with a warm token, a rule file with
validate/assign/deny/allow, a rate-limited policy in the memory store, a no-op app):
``off``, ``metrics`` (prometheus_client multiprocess files in a temporary directory),
``audit`` (every allowed request written to a file, sample 1.0), ``both``, and
``both-0.1`` (allowed requests sampled at 0.1, as a busy deployment would), and with
``--otel`` ``otel`` (``tracing.otel`` spans with ``exporter: none``; needs the extra);
then times the whole stack through werkzeug test environs, each round running every
variant once, in an order that reverses every other round (drift cancels out). The
time is the process's CPU time (``time.process_time``: the request thread *and* the
flush threads, so work moved off the request thread is still counted), and each
variant's batch ends with the observer's flush inside the timed span (nothing it
recorded is left unpaid). As under ``serve``, the collector is tuned (``tune_gc``) and a
bounded full collection runs every 100 requests (``after_request``): what a request
keeps alive is paid where gunicorn pays it. Prints, per variant, µs per request (best
round), its share over ``off`` from the best rounds, and the median of the per-round
shares (each round's variant against the same round's ``off``), a check on the first;
``off-again``, a second gateway built from ``off``'s config, shows the run's own noise.

``--served``: the same configs under real gunicorn (2 sync workers each), driven by wrk
(16 connections, same token) in alternating rounds: requests per second, and the
workers' CPU per request (from /proc, all their threads), which a busy machine
disturbs less than throughput; ``off-again`` repeats ``off`` to show the run's own
noise. Shares as in process: from the best rounds, and the median per-round share.
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
    """CPU seconds per request over ``n`` requests, the observer's last flush included."""
    from wsgi_gateway.runtime import after_request

    def start_response(status, headers, exc_info=None):
        return None

    observer = gateway.observer
    begin = time.process_time()  # every thread of the process: the flush threads too
    for _ in range(n):
        body = gateway(dict(environ), start_response)
        for _chunk in body:
            pass
        body.close()
        after_request()  # gunicorn's post_request under serve: the bounded collections
    if observer is not None:
        observer.flush()  # what the variant recorded is paid inside its own span
    return (time.process_time() - begin) / n


def rounds(variants, rounds: int, measure) -> dict[str, list[float]]:
    """``measure(name)`` for every variant, ``rounds`` times; the order reverses every
    other round so that a drift of the machine's speed does not favour one variant."""
    names = list(variants)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        for name in (names if number % 2 == 0 else names[::-1]):
            seen[name].append(measure(name))
    return seen


def report(seen: dict[str, list[float]], unit: str, rates: dict | None = None) -> None:
    """Per variant: best round, share over ``off`` from the best rounds, and the median
    of the per-round shares (round r's variant against round r's ``off``)."""
    from statistics import median

    base = min(seen["off"])
    for name, values in seen.items():
        best = min(values)
        rate = f"{rates[name]:8.0f} req/s  " if rates else ""
        line = f"{name:9s} {rate}{best * 1e6:7.1f} µs/request {unit}"
        if name != "off":
            paired = median((v - o) / o for v, o in zip(values, seen["off"]))
            line += (f"  +{(best - base) * 1e6:5.1f} µs ({(best - base) / base:+6.1%} best,"
                     f" {paired:+6.1%} median of rounds)")
        print(line)


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
    rates = {name: 0.0 for name in variants}

    def measure(name: str) -> float:
        process = processes[name]
        before = _cpu_seconds(process)
        out = subprocess.run(["wrk", "-t2", "-c16", f"-d{args.duration}s",
                              "-H", f"Authorization: Bearer {token}",
                              process.url + "/api/orders"], capture_output=True, text=True).stdout
        used = _cpu_seconds(process) - before
        done = int(re.search(r"(\d+) requests in", out)[1])
        rates[name] = max(rates[name], float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]))
        return used / max(done, 1)

    try:
        seen = rounds(variants, args.rounds, measure)
    finally:
        for process in processes.values():
            process.stop()
    report(seen, "worker CPU", rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, help="default 40 in process, 3 --served")
    parser.add_argument("--served", action="store_true", help="under gunicorn, with wrk")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--otel", action="store_true", help="in process: add the otel variant")
    args = parser.parse_args()
    os.environ.update(SECRET_ENV)
    args.rounds = args.rounds or (3 if args.served else 40)
    if args.served:
        variants = {"off": (False, False), "metrics": (True, False), "audit": (False, True),
                    "both": (True, True), "both-0.1": (True, True, 0.1),
                    "off-again": (False, False)}  # a control: the run's own noise
        return served(args, Path(tempfile.mkdtemp(prefix="bench-observe-")), variants)
    workdir = Path(tempfile.mkdtemp(prefix="bench-observe-"))
    variants = {"off": (False, False), "metrics": (True, False), "audit": (False, True),
                "both": (True, True), "both-0.1": (True, True, 0.1),
                "off-again": (False, False)}  # a control: a second gateway, the same config
    if args.otel:  # spans cost more than the gateway: only when asked, runs stay short
        import opentelemetry.sdk  # noqa: F401 - the [otel] extra
        variants["otel"] = (False, False, 1.0, True)
    gateways = {name: build(workdir, name, *flags) for name, flags in variants.items()}
    token = mint(sub="bench")
    environ = EnvironBuilder(path="/api/orders", headers={"Authorization": f"Bearer {token}"},
                             environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()
    import logging

    from wsgi_gateway.runtime import tune_gc
    logging.getLogger("wsgi_gateway.access").disabled = True  # the request line is not measured here
    for name, gateway in gateways.items():
        run(gateway, environ, 200)  # warm: token cache, rule memo, metric children
    tune_gc()  # as a gunicorn worker does once the gateway is built
    seen = rounds(gateways, args.rounds, lambda name: run(gateways[name], environ, args.requests))
    report(seen, "CPU")

if __name__ == "__main__":
    main()
