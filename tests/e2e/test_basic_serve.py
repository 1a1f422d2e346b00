"""The basic method end to end: real gunicorn workers sharing a real memcached, the users
file changed by ``wsgi-gateway users`` while serving."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml

from tests.support.processes import REPO, GatewayProcess
from wsgi_gateway.authn.users_file import add_user

pytestmark = pytest.mark.e2e
FAST = "scrypt:1024:8:1"

@pytest.fixture
def serve(tmp_path, memcached):
    """serve(attempts) → (gateway, users file): alice and carol, two workers, lockout
    after ``attempts`` failures; the upstream names the worker (X-Worker-Pid)."""
    started = []

    def start(attempts: int = 3):
        users = tmp_path / "users.yaml"
        add_user(users, "alice", "wonderland", claims={"groups": ["ops"]}, method=FAST)
        add_user(users, "carol", "cheshire", method=FAST)
        config = {"app": "tests.support.apps:pid_echo",
                  "store": {"backend": "memcached", "servers": [memcached.address]},
                  "apis": [{"name": "api", "path": "/api", "auth": [
                      {"method": "basic", "users_file": "users.yaml",
                       "lockout": {"attempts": attempts, "window": "60s", "duration": "60s"}}]}]}
        (tmp_path / "gw.yaml").write_text(yaml.safe_dump(config))
        started.append(GatewayProcess(tmp_path / "gw.yaml", workers=2).start())
        return started[-1], users

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def served(serve):
    return serve()


def get(gw, credential: str | None = None, headers: dict | None = None) -> requests.Response:
    headers = dict(headers or {})
    if credential is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credential.encode()).decode()
    return requests.get(gw.url + "/api/x", headers=headers, timeout=5)


def test_sign_in_and_lockout_across_workers(served):
    gw, _ = served
    response = get(gw, "carol:cheshire")
    assert response.status_code == 200 and "Authorization" not in response.json()["headers"]
    challenge = get(gw)
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="api", charset="UTF-8"'
    for _ in range(3):  # sync workers: each request on a new connection, spread over both
        assert get(gw, "alice:wrong").status_code == 401
    # alice never signed in, so no worker holds her credential: every check asks the
    # store, and the lock holds on every worker at once. (A worker that had just served
    # her from its cache may trust "not locked" up to a second longer, by design:
    # tests/authn/test_basic.py covers that bound on a fake clock.)
    for _ in range(6):
        locked = get(gw, "alice:wonderland")
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) <= 60
    assert "wonderland" not in gw.log() and "cheshire" not in gw.log()


def served_by_every_worker(gw, credential: str, workers: int = 2, timeout: float = 10) -> None:
    """Ask with ``credential`` until every worker has answered 200 (each worker re-reads
    the users file at most once a second, on its own clock): no fixed sleep."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        assert time.monotonic() < deadline, f"only workers {seen} took {credential.split(':')[0]}"
        response = get(gw, credential)
        if response.status_code == 200:
            seen.add(response.headers["X-Worker-Pid"])


def test_users_command_while_serving_lands_on_every_worker(serve):
    gw, users = serve(attempts=1000)  # bob's tries before a worker re-reads are failures
    served_by_every_worker(gw, "alice:wonderland")  # every worker has her cached now
    for args, stdin in ((["add", "bob", "--password-stdin"], "builder of bridges\n"), (["remove", "alice"], "")):
        done = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "users", *args, "--file", str(users)],
                              input=stdin, text=True, capture_output=True, cwd=REPO, timeout=30)
        assert done.returncode == 0, done.stderr
    served_by_every_worker(gw, "bob:builder of bridges")  # both changes landed on every worker
    # a removed user fails like any wrong password, cached credential or not
    assert [get(gw, "alice:wonderland").status_code for _ in range(6)] == [401] * 6


BAD_INPUT = [  # (what, Authorization value, status)
    ("not token68", "Basic !!!", 400),
    ("not UTF-8", "Basic " + base64.b64encode(b"alice:\xff").decode(), 400),
    ("no colon", "Basic " + base64.b64encode(b"alice").decode(), 400),
    ("over 4 KiB: the gateway refuses it", "Basic " + "A" * 6000, 400),
    ("over 8190 bytes: gunicorn refuses it", "Basic " + "A" * 9000, 431),
    ("another scheme", "Negotiate abc", 401),
]


def test_bad_input_over_http_is_never_a_500(served):
    gw, _ = served  # one server for the whole table: starting gunicorn is the slow part
    for what, value, status in BAD_INPUT:
        assert get(gw, headers={"Authorization": value}).status_code == status, what
    request = (b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Basic \xc3\xa9\xff==\r\n\r\n")  # raw non-ASCII octets
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(request)
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"400", status_line
