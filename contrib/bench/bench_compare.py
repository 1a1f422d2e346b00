#!/usr/bin/env python3
"""The same-run comparison of issue 15: bare gunicorn, the gateway in several set-ups,
and Apache httpd + mod_auth_openidc validating the same RS256 tokens.

    .venv/bin/python contrib/bench/bench_compare.py [--duration 4] [--rounds 3]

Every contender runs at once on free loopback ports (idle ones cost nothing), and wrk
loads them in turn, round after round, so each ratio to bare gunicorn compares runs
minutes apart on the same machine state. Store operations per request are the change
in memcached's ``stats`` counters (gets, sets/adds, incr/decr incl. meta arithmetic,
touches, deletes) over the run, divided by its requests.

Contenders (2 workers each, the gunicorn worker class of ``--worker-class``):
- ``bare``: gunicorn serving contrib.demo.echo:app (the ceiling, ratio 1.00);
- ``jwt``: the gateway, JWT only, memory store;
- ``full-*``: JWT + a 10-rule file (3 injected headers) + a sliding rate limit and a
  quota in memcached; ``exact`` sets ``limits.mode: exact``, ``default`` leaves the
  config's default; ``py`` / ``cpp`` is the CEL engine;
- ``newid`` / ``newid-cpp``: ``full-default-py`` / ``full-default-cpp`` loaded with a new
  identity on every request (pre-minted tokens with distinct subjects, rotated by a wrk
  Lua script; each load its own half of them, a slice per round);
- ``apache``: Debian's apache2 + libapache2-mod-auth-openidc (``AuthType oauth20``,
  the public key from a file: it accepts a JWKS URL over https only) proxying to the bare gunicorn; ``apache-newid``
  the same with the rotated tokens.

A benchmark, never a test: it asserts nothing. On a shared 2-core machine, compare
ratios within one run only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contrib.bench.bench_stack import (  # noqa: E402
    WRK_DONE_LUA, LoadResult, Server, free_port, parse_wrk, spawn, stop_server, wait_ready)

LOOPBACK = "127.0.0.1"
ISSUER = "https://bench.idp"
AUDIENCE = "api"
PATH = "/echo/bench"
STORE_STATS = ("cmd_get", "cmd_set", "cmd_touch", "incr_hits", "incr_misses", "decr_hits",
               "decr_misses", "delete_hits", "delete_misses", "cas_hits", "cas_misses",
               "cas_badval")

RULES = """\
validate:
  - {expr: "token.aud.exists(a, a == 'api')", message: "not for this API"}
  - {expr: "has(claims.tenant)", message: "no tenant"}
map:
  id: "token.iss + '|' + claims.sub"
  groups: "has(claims.groups) ? claims.groups : []"
  tenant: "claims.tenant"
assign:
  - {policy: gold, when: "'admin' in token.scopes"}
  - {policy: bronze, when: "token.client_id == 'mobile-app'"}
default_policy: silver
deny:
  - {when: "request.method == 'DELETE' && !('ops' in identity.groups)", reason: "ops only"}
  - {when: "request.path.startsWith('/admin') && !('admins' in identity.groups)", reason: "admins only"}
allow:
  - {when: "request.method in ['GET', 'HEAD']"}
headers:
  X-User-Id: "identity.id"
  X-Tenant: "identity.tenant"
  X-Groups: "identity.groups.join(',')"
"""

# new identity on every request: (label, the contender it loads)
NEWID_LOADS = (("newid", "full-default-py"), ("newid-cpp", "full-default-cpp"))

# The limits are realistic but never reached by the load: what counting costs.
POLICIES = {name: {"rate": "1000000/1s", "quota": "100000000/30d"}
            for name in ("gold", "silver", "bronze")}

APACHE_CONF = """\
ServerRoot "{root}"
PidFile "{root}/httpd.pid"
Listen {loopback}:{port}
ServerName {loopback}
ErrorLog "{root}/error.log"
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
{unixd}
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
KeepAlive On
OIDCCryptoPassphrase bench-only-passphrase
OIDCOAuthVerifyCertFiles bench#{pem}
OIDCOAuthRemoteUserClaim sub
<Location /echo>
  AuthType oauth20
  Require valid-user
  ProxyPass http://{loopback}:{backend}/echo
</Location>
"""


# ------------------------------------------------------------------------ tokens

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """An RS256 key, its JWKS, and tokens minted with it."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.hazmat.primitives import hashes

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pad, self._hash = padding.PKCS1v15(), hashes.SHA256()
        numbers = self.key.public_key().public_numbers()
        self.jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                               "n": b64(numbers.n.to_bytes(256, "big")),
                               "e": b64(numbers.e.to_bytes(3, "big"))}]}
        self._header = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def mint(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "azp": "web", "iat": now,
                  "exp": now + 3 * 3600, "scope": "read write", "tenant": "acme",
                  "groups": ["sales", "emea"], "email": f"{sub}@example.com"}
        signing = f"{self._header}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), self._pad, self._hash)
        return f"{signing}.{b64(signature)}"


@contextlib.contextmanager
def jwks_server(jwks: dict):
    """The key set on a loopback URL (for mod_auth_openidc)."""
    body = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


# ---------------------------------------------------------------------- servers

def memcached(log_dir: Path) -> Server:
    port = free_port()
    proc = subprocess.Popen(["memcached", "-l", LOOPBACK, "-p", str(port), "-U", "0", "-m", "256",
                             "-u", "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    for _ in range(50):
        with contextlib.suppress(OSError):
            socket.create_connection((LOOPBACK, port), 0.2).close()
            break
        time.sleep(0.05)
    return Server("memcached", port, proc, log_dir / "memcached.log")


def store_stats(port: int) -> dict[str, int]:
    with socket.create_connection((LOOPBACK, port), 2) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            stats[parts[1]] = int(parts[2])
    return stats


def store_ops(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in STORE_STATS)


def gateway_config(tmp: Path, name: str, *, jwks_file: Path, store_port: int | None,
                   rules: bool, mode: str | None, engine: str, worker_class: str,
                   keepalive: int | None, access_log: bool = True, threads: int = 4) -> Path:
    import yaml

    server: dict = {"worker_class": worker_class}
    if worker_class == "gthread":
        server["threads"] = threads
    if keepalive is not None:
        server["keepalive"] = keepalive
    config: dict = {
        "app": "contrib.demo.echo:app", "server": server,
        "cel": {"engine": engine},
        "providers": [{"name": "bench", "issuer": ISSUER, "algorithms": ["RS256"],
                       "audiences": [AUDIENCE], "keys": [{"jwks_file": str(jwks_file)}]}],
        "logging": {"access_log": access_log},
        "apis": [{"name": "echo", "path": "/echo", "auth": ["jwt"]}],
    }
    if store_port is None:
        config["store"] = {"backend": "memory"}
    else:
        config["store"] = {"backend": "memcached", "servers": [f"{LOOPBACK}:{store_port}"]}
        config["policies"] = POLICIES
        config["apis"][0]["default_policy"] = "silver"
        if mode is not None:
            config["limits"] = {"mode": mode}
    if rules:
        (tmp / "rules.yaml").write_text(RULES)
        config["apis"][0]["rules"] = str(tmp / "rules.yaml")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_gateway(config: Path, name: str, log_dir: Path) -> Server:
    port = free_port()
    return spawn(name, [sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", str(config),
                        "--bind", f"{LOOPBACK}:{port}", "--workers", "2"], port, log_dir)


def start_bare(log_dir: Path, worker_class: str, keepalive: int | None, threads: int = 4) -> Server:
    port = free_port()
    extra = ["--threads", str(threads)] if worker_class == "gthread" else []
    if keepalive is not None:
        extra += ["--keep-alive", str(keepalive)]
    return spawn("bare", [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "2",
                          "--worker-class", worker_class, *extra, "--bind", f"{LOOPBACK}:{port}",
                          "contrib.demo.echo:app"], port, log_dir)


def start_apache(tmp: Path, pem: Path, backend: int, log_dir: Path) -> Server | None:
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    if not Path(binary).exists() or not Path("/usr/lib/apache2/modules/mod_auth_openidc.so").exists():
        print("apache: apache2 or libapache2-mod-auth-openidc not installed: skipped")
        return None
    root = tmp / "apache"
    root.mkdir()
    port = free_port()
    unixd = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
    conf = root / "httpd.conf"
    conf.write_text(APACHE_CONF.format(root=root, loopback=LOOPBACK, port=port, unixd=unixd,
                                       pem=pem, backend=backend))
    return spawn("apache", [binary, "-f", str(conf), "-DFOREGROUND"], port, log_dir)


# ------------------------------------------------------------------------- load

ROTATE_LUA = r"""
local tokens, counter, id, nthreads, base = {}, 0, 0, 1, 0
local path = "%(path)s"
setup = function(thread)
  thread:set("id", %(id_counter)s)
  %(id_counter)s = %(id_counter)s + 1
end
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  base = tonumber(args[2])
  nthreads = tonumber(args[3])
  id = wrk.thread:get("id")
end
request = function()
  local i = (base + counter * nthreads + id) %% #tokens
  counter = counter + 1
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. tokens[i + 1]})
end
"""


def run_wrk(port: int, *, duration: int, connections: int, threads: int, workdir: Path,
            token: str | None = None, tokens_file: Path | None = None, base: int = 0,
            keepalive: bool = True) -> LoadResult:
    script = workdir / ("rotate.lua" if tokens_file else "done.lua")
    text = WRK_DONE_LUA
    if tokens_file:
        text = "thread_ids = 0\n" + ROTATE_LUA % {"path": PATH, "id_counter": "thread_ids"} + text
    script.write_text(text)
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "5s", "-s", str(script)]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if not keepalive:
        args += ["-H", "Connection: close"]
    args.append(f"http://{LOOPBACK}:{port}{PATH}")
    if tokens_file:
        args += ["--", str(tokens_file), str(base), str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    return parse_wrk(done.stdout + done.stderr, done.returncode)


def _gc_lines(tmp: Path, name: str) -> list[str]:
    path = tmp / f"gc-{name}.log"
    return path.read_text().splitlines() if path.exists() else []


def session_cpu(*servers: Server) -> float:
    """CPU seconds used so far by the servers' process sessions (master and workers)."""
    sessions, ticks, total = {s.proc.pid for s in servers}, os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) in sessions:
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Row:
    name: str
    ratios: list[float]
    p50: list[float]
    p99: list[float]
    ops: list[float]
    errors: int = 0
    cpu_us: list[float] = dataclasses.field(default_factory=list)  # server CPU per request


def check(port: int, token: str, name: str) -> None:
    import http.client

    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request("GET", PATH, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    print(f"check: {name:<16} -> {response.status}")
    if response.status != 200:
        raise SystemExit(f"{name} answers {response.status}: {body[:500]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=12000, help="distinct identities minted")
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads-per-worker", type=int, default=4, help="gthread threads")
    parser.add_argument("--keepalive", type=int, default=None,
                        help="gunicorn keep-alive seconds for every gunicorn (default: gunicorn's)")
    parser.add_argument("--no-client-keepalive", action="store_true",
                        help="wrk sends Connection: close")
    parser.add_argument("--no-access-log", action="store_true",
                        help="gateways without their access log line (logging.access_log: false)")
    parser.add_argument("--only", default="", help="comma-separated contenders (default: all)")
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    log_dir = Path(args.log_dir) if args.log_dir else tmp
    log_dir.mkdir(parents=True, exist_ok=True)
    signer = Signer()
    jwks_file = tmp / "jwks.json"
    jwks_file.write_text(json.dumps(signer.jwks))
    started = time.monotonic()
    steady = signer.mint("steady-user")
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text("\n".join(signer.mint(f"user-{i:06d}") for i in range(args.tokens)) + "\n")
    print(f"minted {args.tokens} RS256 tokens in {time.monotonic() - started:.1f}s; files in {tmp}")

    only = {name for name in args.only.split(",") if name}
    wanted = lambda name: not only or name in only or name == "bare"  # noqa: E731
    gc_pauses: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        mc = memcached(log_dir)
        stack.callback(mc.proc.kill)
        servers: dict[str, Server] = {}
        bare = servers["bare"] = start_bare(log_dir, args.worker_class, args.keepalive,
                                            args.threads_per_worker)
        stack.callback(stop_server, bare)
        setups = {
            "jwt": dict(store_port=None, rules=False, mode=None, engine="cel-python"),
            "full-exact-py": dict(store_port=mc.port, rules=True, mode="exact", engine="cel-python"),
            "full-default-py": dict(store_port=mc.port, rules=True, mode=None, engine="cel-python"),
            "full-exact-cpp": dict(store_port=mc.port, rules=True, mode="exact", engine="cel-cpp"),
            "full-default-cpp": dict(store_port=mc.port, rules=True, mode=None, engine="cel-cpp"),
        }
        for name, setup in setups.items():
            if not wanted(name) and not any(n == name and wanted(l) for l, n in NEWID_LOADS):
                continue
            config = gateway_config(tmp, name, jwks_file=jwks_file, worker_class=args.worker_class,
                                    keepalive=args.keepalive, access_log=not args.no_access_log,
                                    threads=args.threads_per_worker, **setup)
            os.environ["GATEWAY_GC_LOG"] = str(tmp / f"gc-{name}.log")  # wsgi_gateway/runtime.py
            servers[name] = start_gateway(config, name, log_dir)
            os.environ.pop("GATEWAY_GC_LOG")
            stack.callback(stop_server, servers[name])
        if wanted("apache") or wanted("apache-newid"):
            pem = tmp / "public.pem"
            pem.write_bytes(signer.public_pem())
            apache = start_apache(tmp, pem, bare.port, log_dir)
            if apache is not None:
                servers["apache"] = apache
                stack.callback(stop_server, apache)
        for name, server in servers.items():
            wait_ready(server, "/", timeout=60)
            check(server.port, steady, name)

        loads: list[tuple[str, str, bool]] = [("bare", "bare", False)]
        loads += [(name, name, False) for name in setups if name in servers and wanted(name)]
        loads += [(label, name, True) for label, name in NEWID_LOADS
                  if name in servers and wanted(label)]
        if "apache" in servers:
            if wanted("apache"):
                loads.append(("apache", "apache", False))
            if wanted("apache-newid"):
                loads.append(("apache-newid", "apache", True))
        rows = {label: Row(label, [], [], [], []) for label, _, _ in loads}
        # warm-up: keys fetched, imports done, caches primed (a second each)
        for label, target, rotate in loads:
            run_wrk(servers[target].port, duration=1, connections=4, threads=1, workdir=tmp,
                    token=steady, keepalive=not args.no_client_keepalive)
        # each new-identity load has its own tokens (a shared store would otherwise find
        # the other's sessions): halves of the file, a slice per round
        slice_ = args.tokens // (len(NEWID_LOADS) * (args.rounds + 1))
        halves = [label for label, _ in NEWID_LOADS]

        def token_base(label: str, number: int) -> int:  # apache-newid shares the first half
            half = halves.index(label) if label in halves else 0
            return half * (args.tokens // len(NEWID_LOADS)) + (number + 1) * slice_
        loads.append(("bare", "bare", False))  # bare again at the end of each round
        for number in range(args.rounds):
            bare_rps = None
            gc_marks = {name: _gc_lines(tmp, name) for name in servers}
            for position, (label, target, rotate) in enumerate(loads):
                before = store_stats(mc.port)
                charged = [servers[target]] + ([bare] if target == "apache" else [])
                cpu_before = session_cpu(*charged)
                result = run_wrk(servers[target].port, duration=args.duration,
                                 connections=args.connections, threads=args.threads, workdir=tmp,
                                 token=None if rotate else steady,
                                 tokens_file=tokens_file if rotate else None,
                                 base=token_base(label, number) if rotate else 0,
                                 keepalive=not args.no_client_keepalive)
                ops = store_ops(before, store_stats(mc.port))
                cpu_us = (session_cpu(*charged) - cpu_before) / max(1, result.requests) * 1e6
                if label == "bare":
                    if position:  # the round's ratios are to the mean of its two bare runs
                        row = rows["bare"]
                        row.ratios.append(1.0)
                        row.p50[-1] = (row.p50[-1] + result.p50_us / 1000) / 2
                        row.p99[-1] = max(row.p99[-1], result.p99_us / 1000)
                        mean = (bare_rps + result.rps) / 2
                        for other in rows.values():
                            if other is not row and len(other.ratios) > number:
                                other.ratios[number] *= bare_rps / mean
                        print(f"round {number + 1} bare (again)        {result.rps:8.0f} req/s; "
                              f"ratios of the round rescaled to the mean bare {mean:.0f}", flush=True)
                        continue
                    bare_rps = result.rps
                row = rows[label]
                row.cpu_us.append(cpu_us)
                row.ratios.append(result.rps / bare_rps)
                row.p50.append(result.p50_us / 1000)
                row.p99.append(result.p99_us / 1000)
                row.ops.append(max(0, ops) / max(1, result.requests))
                row.errors += result.non_2xx + sum(result.errors.values())
                if rotate and label.startswith("newid") and result.requests > slice_:
                    print(f"  note: {label} used {result.requests} tokens > slice {slice_}: some reused")
                print(f"round {number + 1} {label:<17} {result.rps:8.0f} req/s  ratio "
                      f"{row.ratios[-1]:.2f}  p50 {row.p50[-1]:6.2f} ms  p99 {row.p99[-1]:6.2f} ms  "
                      f"ops/req {row.ops[-1]:.2f}  cpu {cpu_us:5.0f} µs/req  errors {result.non_2xx + sum(result.errors.values())}",
                      flush=True)

            for name in servers:
                lines = _gc_lines(tmp, name)[len(gc_marks[name]):]
                if lines:
                    gc_pauses.setdefault(name, []).extend(
                        (float(line.split()[1]), float(line.split()[2])) for line in lines)
    for name, pauses in gc_pauses.items():
        walls, cpus = sorted(p[0] for p in pauses), sorted(p[1] for p in pauses)
        print(f"gen-2 collections in {name}: {len(pauses)}, longest {walls[-1]:.1f} ms "
              f"(CPU of the longest {max(pauses)[1]:.1f} ms; most CPU {cpus[-1]:.1f} ms), "
              f"median {statistics.median(walls):.1f} ms")
    print(f"\nworker class {args.worker_class} ({args.threads_per_worker} threads if gthread), keep-alive {args.keepalive}, client keep-alive "
          f"{not args.no_client_keepalive}; medians of {args.rounds} rounds of {args.duration}s")
    print("cpu ratio: the bare server's CPU per request over the contender's (the servers' own "
          "CPU, so less moved by other load than req/s; apache includes its gunicorn backend)")
    print("| contender | ratio to bare (rounds) | cpu ratio | server CPU µs/req | p50 ms | p99 ms (rounds) "
          "| store ops/req | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    bare_cpu = statistics.median(rows["bare"].cpu_us)
    for row in rows.values():
        p99s = ", ".join(f"{v:.1f}" for v in row.p99)
        ratios = ", ".join(f"{v:.2f}" for v in (row.ratios if row.name != "bare" else []))
        cpu = statistics.median(row.cpu_us)
        print(f"| {row.name} | {statistics.median(row.ratios):.2f} ({ratios}) | {bare_cpu / cpu:.2f} "
              f"| {cpu:.0f} | {statistics.median(row.p50):.2f} "
              f"| {statistics.median(row.p99):.1f} ({p99s}) | {statistics.median(row.ops):.2f} "
              f"| {row.errors} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
