"""Real processes for tests: memcached and the gateway under gunicorn, on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Memcached:
    """A real memcached process on a free loopback port, with fault controls."""

    def __init__(self, port: int | None = None):
        binary = shutil.which("memcached") or "/usr/bin/memcached"
        if not os.path.exists(binary):
            raise RuntimeError("memcached is not installed: run the README's test command, "
                               "which installs it (apt-get install memcached)")
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Memcached":
        args = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """Kill it: connections are refused at once."""
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections hang, as with a network partition.

        Returns once the kernel reports the process stopped: the signal is delivered
        asynchronously, and a request sent in between could still be answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while _state(self.proc.pid) not in ("T", "t"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"memcached {self.proc.pid} did not stop")
            time.sleep(0.001)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"flush_all\r\n")
            sock.recv(64)


def _state(pid: int) -> str:
    """The one-letter state of process ``pid`` (R, S, T ...) from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


class GatewayProcess:
    """``wsgi-gateway serve`` under real gunicorn, as an operator would start it."""

    def __init__(self, config: Path, *, workers: int = 2, extra_args: tuple[str, ...] = (),
                 env: dict | None = None):
        self.config = config
        self.port = free_port()
        self.workers = workers
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="gw-log-")) / (config.stem + ".log")
        self.health_options: dict = {}  # extra requests options for the health check (TLS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "GatewayProcess":
        args = [sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", str(self.config),
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/.gateway/health", timeout=0.5,
                                **self.health_options).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The gunicorn workers alive now (the master's children), for tests that wait
        for new workers after SIGHUP instead of sleeping."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self._log.close()
        self.proc = None


@contextmanager
def running(process):
    """Start a process object for the duration of a ``with`` block."""
    process.start()
    try:
        yield process
    finally:
        process.stop()
