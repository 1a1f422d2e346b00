#!/usr/bin/env python3
"""Benchmark the gateway's overhead: bare gunicorn vs. the gateway, same app, same workers.

Starts a bare gunicorn serving the config's ``app`` and ``wsgi-gateway serve -c CONFIG``
wrapping the same app, with the same worker count and worker class, on free loopback
ports. Drives load at them alternately (bare, gateway, bare, gateway ...) with wrk when
it is installed, else with a built-in Python load generator, and prints requests/s,
latency p50/p99, the status mix and the gateway's added latency, per round and as
medians. Both servers are stopped on exit, Ctrl-C and SIGTERM included.

Not a test: it asserts nothing and is not run in CI. See contrib/bench/README.md.

Later benchmarks (tokens, limits) reuse the pieces, e.g.::

    from contrib.bench.bench_stack import LoadSpec, running, start_gateway, run_load
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
GATEWAY_HEALTH = "/.gateway/health"
# gunicorn settings of the gateway's ``server:`` section that the bare server copies
# (by gunicorn's command-line flag), so that only the gateway's layers differ.
SHARED_SETTINGS = {"worker_class": "--worker-class", "threads": "--threads",
                   "worker_connections": "--worker-connections", "keepalive": "--keep-alive"}


# --------------------------------------------------------------------------- servers

@dataclass
class Server:
    """A server process this script started: name, loopback port, process, log file."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def gateway_settings(config: str | Path) -> tuple[str, dict[str, object]]:
    """The app (module:callable) and worker settings (class, threads ...) of a config.

    The bare server gets the same ones; ``worker_class`` is always present.
    """
    from wsgi_gateway.config import load_config

    loaded = load_config(config)
    if not loaded.app:
        raise SystemExit(f"{config}: no 'app' to benchmark")
    shared = {key: value for key, value in loaded.server.items() if key in SHARED_SETTINGS}
    shared.setdefault("worker_class", "sync")
    return loaded.app, shared


def spawn(name: str, args: list[str], port: int, log_dir: Path) -> Server:
    """Start ``args`` from the repo root, output to ``log_dir/NAME.log``.

    In its own session, so a Ctrl-C reaches only this script, which then stops the
    server itself (and the server's stderr never blocks on a full pipe).
    """
    log_path = Path(log_dir) / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return Server(name, port, proc, log_path)


def start_bare(app: str, *, workers: int, settings: dict[str, object], log_dir: Path) -> Server:
    """A bare gunicorn serving ``app`` with ``settings`` (see :func:`gateway_settings`)."""
    port = free_port()
    flags = [arg for key, value in settings.items() for arg in (SHARED_SETTINGS[key], str(value))]
    args = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(workers),
            "--bind", f"{LOOPBACK}:{port}", *flags, app]
    return spawn("bare", args, port, log_dir)


def start_gateway(config: str | Path, *, workers: int, log_dir: Path,
                  name: str = "gateway") -> Server:
    """``wsgi-gateway serve -c CONFIG`` on a free loopback port with ``workers`` workers."""
    port = free_port()
    args = [sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", str(config),
            "--bind", f"{LOOPBACK}:{port}", "--workers", str(workers)]
    return spawn(name, args, port, log_dir)


def wait_ready(server: Server, path: str, timeout: float = 20.0) -> None:
    """Block until ``server`` answers HTTP on ``path`` (any status); raise if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {server.proc.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            fetch(server.port, path, timeout=1.0)
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise TimeoutError(f"{server.name} not answering on {path} after {timeout}s:\n"
                       f"{server.log_tail()}")


def stop_server(server: Server, timeout: float = 15.0) -> None:
    """SIGTERM the gunicorn master (it stops its workers); SIGKILL its session if it lingers."""
    if server.proc.poll() is not None:
        return
    server.proc.terminate()
    try:
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        # the master is not reaped yet, so its process group is still the one we started
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)


@contextlib.contextmanager
def running(*starters: Callable[[], Server]) -> Iterator[list[Server]]:
    """Start servers (each from a no-argument starter); stop all of them on exit."""
    with contextlib.ExitStack() as stack:
        servers = []
        for start in starters:
            server = start()
            stack.callback(stop_server, server)
            servers.append(server)
        yield servers


def fetch(port: int, path: str, headers: dict[str, str] | None = None,
          timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:port on a fresh connection: the status and body."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_answers(servers: list[Server], path: str, headers: dict[str, str]) -> None:
    """Exit unless every server answers 200 on ``path`` with ``headers``.

    A wrong path or a missing token would otherwise benchmark error pages.
    """
    for server in servers:
        status, body = fetch(server.port, path, headers)
        print(f"check: {server.name:<8} GET {path} -> {status}")
        if status != 200:
            raise SystemExit(f"{server.name} answers {status} on {path}, not 200; body:\n"
                             f"{body[:600].decode(errors='replace')}")


# ---------------------------------------------------------------------- load drivers

@dataclass(frozen=True)
class LoadSpec:
    """What every load run sends: the same for every target, so results compare."""

    path: str = "/echo/bench"
    headers: tuple[tuple[str, str], ...] = ()
    connections: int = 16
    duration: int = 10             # seconds
    threads: int = 2               # wrk -t (the Python generator uses one per connection)
    max_requests: int = 1_000_000  # Python generator: bound per run
    timeout: float = 5.0           # per request, seconds


@dataclass
class LoadResult:
    """One load run against one server."""

    tool: str
    requests: int                  # completed responses
    seconds: float
    p50_us: float
    p99_us: float
    non_2xx: int                   # wrk: only responses with status >= 400 (its counter)
    errors: dict[str, int]         # socket errors by kind (connect, read, timeout ...)
    statuses: dict[int, int] | None = None  # full status mix, when the tool knows it
    other_cores: float = math.nan  # CPU others used meanwhile (see measured_load), in cores

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def pick_tool(requested: str) -> str:
    """``wrk`` or ``python``: ``auto`` is wrk when it is on PATH."""
    have_wrk = shutil.which("wrk") is not None
    if requested == "auto":
        return "wrk" if have_wrk else "python"
    if requested == "wrk" and not have_wrk:
        raise SystemExit("wrk is not installed: use --tool python (or auto)")
    return requested


def run_load(tool: str, port: int, spec: LoadSpec, workdir: Path) -> LoadResult:
    """Drive one run of ``spec`` at 127.0.0.1:port with ``tool`` (see :func:`pick_tool`)."""
    if tool == "wrk":
        return run_wrk(port, spec, workdir)
    return run_python(port, spec)


# wrk's ``done`` hook prints the summary as one JSON line: exact µs percentiles and
# counters, rather than parsing wrk's human-formatted text.
WRK_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def run_wrk(port: int, spec: LoadSpec, workdir: Path) -> LoadResult:
    """One wrk run; the result comes from the Lua ``done`` hook above."""
    script = Path(workdir) / "bench_done.lua"
    script.write_text(WRK_DONE_LUA)
    args = ["wrk", "-t", str(max(1, min(spec.threads, spec.connections))),
            "-c", str(spec.connections), "-d", f"{spec.duration}s",
            "--timeout", f"{math.ceil(spec.timeout)}s", "-s", str(script)]
    for name, value in spec.headers:
        args += ["-H", f"{name}: {value}"]
    args.append(f"http://{LOOPBACK}:{port}{spec.path}")
    done = subprocess.run(args, capture_output=True, text=True, timeout=spec.duration + 60)
    return parse_wrk(done.stdout + done.stderr, done.returncode)


def parse_wrk(output: str, returncode: int = 0) -> LoadResult:
    """The :class:`LoadResult` in wrk's output; raises if the summary line is missing."""
    match = re.search(r"^BENCH_JSON (\{.*\})\s*$", output, re.M)
    if returncode or not match:
        raise RuntimeError(f"wrk failed (exit {returncode}):\n{output[-2000:]}")
    summary = json.loads(match[1])
    errors = {kind: summary[kind] for kind in ("connect", "read", "write", "timeout")}
    return LoadResult("wrk", summary["requests"], summary["duration_us"] / 1e6,
                      summary["p50_us"], summary["p99_us"], summary["status"], errors)


@dataclass
class _Tally:
    """What one Python client thread saw."""

    latencies_us: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)


def run_python(port: int, spec: LoadSpec) -> LoadResult:
    """Drive load from ``spec.connections`` threads, one http.client connection each.

    Bounded by ``spec.duration`` and ``spec.max_requests``; loopback only. Slower than
    wrk, and it shares the CPU (and the GIL) with itself: on a small machine it may
    measure its own limit rather than the server's.
    """
    deadline = time.monotonic() + spec.duration
    budget = max(1, spec.max_requests // spec.connections)
    stop, tallies = threading.Event(), [_Tally() for _ in range(spec.connections)]
    threads = [threading.Thread(target=_python_client, daemon=True,
                                args=(port, spec, deadline, budget, stop, tally))
               for tally in tallies]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:  # a hung server costs at most one request timeout more
            thread.join(max(0.0, deadline + spec.timeout + 1 - time.monotonic()))
    finally:
        stop.set()
    return _python_result(tallies, time.perf_counter() - started)


def _python_client(port: int, spec: LoadSpec, deadline: float, budget: int,
                   stop: threading.Event, tally: _Tally) -> None:
    """One client thread: GET until the deadline, budget or stop, reconnecting as needed.

    gunicorn's sync workers close the connection after every response; keep-alive
    workers close idle ones; either way the next request opens a new connection.
    """
    conn, headers, attempts = None, dict(spec.headers), 0
    while attempts < budget and not stop.is_set() and time.monotonic() < deadline:
        attempts += 1
        try:
            conn = conn or _connect(port, spec.timeout)
            conn = _one_request(conn, spec.path, headers, tally)
        except (OSError, http.client.HTTPException) as exc:
            tally.errors[type(exc).__name__] += 1
            if conn:
                conn.close()
            conn = None
            time.sleep(0.01)  # no busy loop against a dead server
    if conn:
        conn.close()


def _connect(port: int, timeout: float) -> http.client.HTTPConnection:
    """A connected client (connecting is outside the timed request, as with wrk)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    conn.connect()
    return conn


def _one_request(conn: http.client.HTTPConnection, path: str, headers: dict[str, str],
                 tally: _Tally) -> http.client.HTTPConnection | None:
    """Time one GET on ``conn``; the connection to reuse, or None when the server closes."""
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    tally.latencies_us.append((time.perf_counter() - started) * 1e6)
    tally.statuses[response.status] += 1
    if response.will_close:
        conn.close()
        return None
    return conn


def _python_result(tallies: list[_Tally], seconds: float) -> LoadResult:
    """Merge the threads' tallies into one :class:`LoadResult`."""
    latencies = sorted(lat for tally in tallies for lat in tally.latencies_us)
    statuses, errors = Counter(), Counter()
    for tally in tallies:
        statuses.update(tally.statuses)
        errors.update(tally.errors)
    non_2xx = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return LoadResult("python", len(latencies), seconds, percentile(latencies, 50),
                      percentile(latencies, 99), non_2xx, dict(errors), dict(statuses))


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of an already sorted list (nan when empty)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ------------------------------------------------------------- noise (Linux /proc)

NOISY_CORES = 0.2  # others using more than this (in cores) during a run: say so


def busy_cpu_seconds() -> float:
    """CPU seconds all cores have spent on processes (and stolen by the hypervisor) since
    boot, from /proc/stat; nan where there is none. Interrupt time is left out: our own
    loopback traffic is accounted there."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, fields)
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(servers: tuple[Server, ...]) -> float:
    """CPU seconds used by this script, its finished children (wrk) and the servers'
    sessions (master and workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    sessions, ticks = {server.proc.pid for server in servers}, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # fields[0] is field 3
            if int(fields[3]) in sessions:
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measured_load(tool: str, target: Server, servers: tuple[Server, ...], spec: LoadSpec,
                  workdir: Path) -> LoadResult:
    """:func:`run_load` at ``target``, noting how many cores *other* processes kept busy
    meanwhile (``other_cores``): on a shared machine that is what skews a round."""
    def others() -> float:
        return busy_cpu_seconds() - own_cpu_seconds(servers)
    before, started = others(), time.monotonic()
    result = run_load(tool, target.port, spec, workdir)
    result.other_cores = max(0.0, (others() - before) / (time.monotonic() - started))
    return result


# ---------------------------------------------------------------------------- report

@dataclass
class Comparison:
    """One round: the bare server and the gateway under the same load."""

    bare: LoadResult
    gateway: LoadResult
    workers: int

    @property
    def ratio(self) -> float:
        """gateway req/s ÷ bare req/s."""
        return self.gateway.rps / self.bare.rps if self.bare.rps else math.nan

    @property
    def added_p50_us(self) -> float:
        """The gateway's added latency at the median."""
        return self.gateway.p50_us - self.bare.p50_us

    @property
    def added_cost_us(self) -> float:
        """Per-request worker time the gateway adds: (1/rps_gw − 1/rps_bare) × workers."""
        if not (self.gateway.rps and self.bare.rps):
            return math.nan
        return (1 / self.gateway.rps - 1 / self.bare.rps) * self.workers * 1e6


ROW = "{:<6} {:<8} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7}   {}"


def print_header() -> None:
    """The column titles of :func:`print_round`."""
    print(ROW.format("round", "target", "requests", "req/s", "p50 ms", "p99 ms",
                     "non-2xx", "errors", "others", "gateway vs bare"))


def _result_row(label: str, name: str, result: LoadResult, extra: str = "") -> str:
    errors = sum(result.errors.values())
    return ROW.format(label, name, result.requests, f"{result.rps:.1f}",
                      f"{result.p50_us / 1000:.2f}", f"{result.p99_us / 1000:.2f}",
                      result.non_2xx, errors, f"{result.other_cores:.2f}", extra).rstrip()


def _mix(result: LoadResult) -> str:
    """The status mix and error kinds, when something is not a plain 200."""
    parts = [f"{status}×{n}" for status, n in sorted((result.statuses or {}).items())
             if status != 200]
    parts += [f"{kind}×{n}" for kind, n in result.errors.items() if n]
    return ("statuses/errors: " + ", ".join(parts)) if parts else ""


def print_round(number: int, comparison: Comparison) -> None:
    """Two rows: bare, then the gateway with its ratio and added latency / cost."""
    derived = (f"ratio {comparison.ratio:.3f}  +p50 {comparison.added_p50_us:,.0f} µs  "
               f"+cost {comparison.added_cost_us:,.0f} µs/req")
    for name, result, extra in (("bare", comparison.bare, ""),
                                ("gateway", comparison.gateway, derived)):
        print(_result_row(str(number), name, result, extra))
        if _mix(result):
            print(f"{'':16}{_mix(result)}")
    sys.stdout.flush()


def summarize(rounds: list[Comparison]) -> dict[str, float]:
    """Medians over the rounds (each figure its own median), plus the ratio's spread."""
    def median(get: Callable[[Comparison], float]) -> float:
        return statistics.median(get(c) for c in rounds)
    out = {"rounds": len(rounds), "workers": rounds[0].workers}
    for name in ("bare", "gateway"):
        out[f"{name}_rps"] = median(lambda c: getattr(c, name).rps)
        out[f"{name}_p50_us"] = median(lambda c: getattr(c, name).p50_us)
        out[f"{name}_p99_us"] = median(lambda c: getattr(c, name).p99_us)
    ratios = [c.ratio for c in rounds]
    out.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
               added_p50_us=median(lambda c: c.added_p50_us),
               added_cost_us=median(lambda c: c.added_cost_us))
    runs = [result for c in rounds for result in (c.bare, c.gateway)]
    out["others_max"] = max((r.other_cores for r in runs if not math.isnan(r.other_cores)),
                            default=math.nan)
    out["non_2xx_and_errors"] = sum(r.non_2xx + sum(r.errors.values()) for r in runs)
    return out


def print_summary(rounds: list[Comparison]) -> None:
    """The medians of :func:`summarize`, for people."""
    if not rounds:
        return
    m = summarize(rounds)
    print(f"\nmedians over {m['rounds']} round(s):")
    for name in ("bare", "gateway"):
        rps, p50, p99 = (m[f"{name}_{key}"] for key in ("rps", "p50_us", "p99_us"))
        print(f"  {name:<8} {rps:>9.1f} req/s   p50 {p50 / 1000:6.2f} ms"
              f"   p99 {p99 / 1000:6.2f} ms")
    print(f"  gateway/bare req/s   {m['ratio']:.3f}  "
          f"(rounds {m['ratio_min']:.3f} .. {m['ratio_max']:.3f})")
    print(f"  added latency p50    {m['added_p50_us']:,.0f} µs")
    print(f"  added cost/request   {m['added_cost_us']:,.0f} µs  "
          f"((1/rps_gw - 1/rps_bare) x {m['workers']} workers)")
    bad = m["non_2xx_and_errors"]
    print(f"  non-2xx + errors     {bad}" + ("   <- check the setup" if bad else ""))
    if m["others_max"] > NOISY_CORES:
        print(f"  others               up to {m['others_max']:.2f} cores busy with other "
              "processes during a run: those numbers are skewed")


def write_json(path: str, rounds: list[Comparison]) -> None:
    """Every run and the medians as JSON, for scripts that compare benchmarks."""
    runs = [{"bare": dataclasses.asdict(c.bare), "gateway": dataclasses.asdict(c.gateway),
             "ratio": c.ratio, "added_p50_us": c.added_p50_us, "added_cost_us": c.added_cost_us}
            for c in rounds]
    Path(path).write_text(json.dumps({"rounds": runs, "medians": summarize(rounds)}, indent=2))


# ------------------------------------------------------------------------------ main

def measure(servers: tuple[Server, Server], tool: str, spec: LoadSpec, *, rounds: int,
            warmup: int, workers: int, workdir: Path) -> list[Comparison]:
    """Warm both servers up, then load bare, gateway, bare, gateway ...; print each round."""
    bare, gateway = servers
    if warmup:
        for server in servers:
            run_load(tool, server.port, dataclasses.replace(spec, duration=warmup), workdir)
    print_header()
    results = []
    for number in range(1, rounds + 1):
        bare_result = measured_load(tool, bare, servers, spec, workdir)
        gateway_result = measured_load(tool, gateway, servers, spec, workdir)
        results.append(Comparison(bare_result, gateway_result, workers))
        print_round(number, results[-1])
    return results


def parse_header(text: str) -> tuple[str, str]:
    """``--header 'Name: value'`` → (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--config", "-c", default="conf/demo.yaml", help="gateway config")
    add("--workers", type=int, default=2, help="gunicorn workers, both servers")
    add("--duration", type=int, default=10, help="seconds per run")
    add("--rounds", type=int, default=3, help="bare+gateway rounds")
    add("--connections", type=int, default=16, help="concurrent connections")
    add("--path", default="/echo/bench", help="request path")
    add("--header", type=parse_header, action="append", default=[], metavar="K:V",
        help="request header (repeatable), e.g. 'Authorization: Bearer ...'")
    add("--tool", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    add("--threads", type=int, default=2, help="wrk threads")
    add("--warmup", type=int, default=1, help="seconds of unmeasured load per server first")
    add("--max-requests", type=int, default=1_000_000, help="python tool: bound per run")
    add("--log-dir", help="keep the servers' logs here (default: a temporary directory)")
    add("--json", metavar="FILE", help="also write every run and the medians to FILE")
    return parser.parse_args(argv)


@contextlib.contextmanager
def log_directory(path: str | None) -> Iterator[Path]:
    """``path`` (created, kept), or a temporary directory removed afterwards."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench_stack.") as tmp:
        yield Path(tmp)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup, like Ctrl-C


def config_path(name: str) -> Path:
    """``name`` relative to the current directory if it exists there, else to the repo."""
    path = Path(name)
    return (path if path.exists() else REPO / path).resolve()


def print_setup(tool: str, args: argparse.Namespace, settings: dict[str, object],
                servers: list[Server], config: Path) -> None:
    """One paragraph saying what is measured, so pasted output is self-describing."""
    workers = ", ".join(f"{key}={value}" for key, value in settings.items())
    print(f"bench: {tool}, {args.workers} workers ({workers}), {args.connections} connections, "
          f"{args.duration}s x {args.rounds} rounds (+{args.warmup}s warm-up), GET {args.path}")
    print(f"  bare {servers[0].url}   gateway {servers[1].url} ({config.name})")
    print(f"  {versions()}")


def versions() -> str:
    """Python, gunicorn and the checked-out commit (the working tree may differ from it)."""
    import gunicorn

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return (f"python {sys.version.split()[0]}, gunicorn {gunicorn.__version__}, "
            f"{os.cpu_count()} CPUs, commit {commit or '?'} (+ any uncommitted changes)")


def bench(args: argparse.Namespace) -> list[Comparison]:
    """Start both servers, check them, measure; the servers are stopped on any exit."""
    tool = pick_tool(args.tool)
    config = config_path(args.config)
    app, settings = gateway_settings(config)
    spec = LoadSpec(args.path, tuple(args.header), args.connections, args.duration,
                    args.threads, args.max_requests)
    with log_directory(args.log_dir) as log_dir, running(
            lambda: start_bare(app, workers=args.workers, settings=settings, log_dir=log_dir),
            lambda: start_gateway(config, workers=args.workers, log_dir=log_dir)) as servers:
        wait_ready(servers[0], spec.path)
        wait_ready(servers[1], GATEWAY_HEALTH)
        check_answers(servers, spec.path, dict(spec.headers))
        print_setup(tool, args, settings, servers, config)
        return measure(tuple(servers), tool, spec, rounds=args.rounds, warmup=args.warmup,
                       workers=args.workers, workdir=log_dir)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 130 when interrupted (the servers are stopped either way)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if str(REPO) not in sys.path:  # read the config with the code the servers run
        sys.path.insert(0, str(REPO))
    try:
        rounds = bench(args)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as err:  # a server or wrk failed: say so plainly
        print(f"bench_stack: {err}", file=sys.stderr)
        return 1
    print_summary(rounds)
    if args.json and rounds:
        write_json(args.json, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
