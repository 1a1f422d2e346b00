"""The gateway under real gunicorn, started as an operator starts it."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time

import pytest
import requests

from tests.support.processes import REPO, GatewayProcess, free_port, wait_for_port

pytestmark = pytest.mark.e2e

DEMO = REPO / "conf" / "demo.yaml"


@pytest.fixture(scope="module")
def demo():
    process = GatewayProcess(DEMO, workers=2)
    process.start()
    yield process
    process.stop()


def test_demo_echo_shows_the_request_as_forwarded(demo):
    response = requests.get(demo.url + "/echo/items?x=1", headers={
        "Authorization": "Bearer abc.def.ghi", "X-Forwarded-User": "root",
        "X-Request-Id": "trace-42", "X-Custom": "kept"}, timeout=5)
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "GET" and echo["path"] == "/echo/items" and echo["query"] == "x=1"
    assert "Authorization" not in echo["headers"] and "X-Forwarded-User" not in echo["headers"]
    assert echo["headers"]["X-Custom"] == "kept"
    # the client is no trusted proxy: its request ID is replaced, upstream and in the answer
    assert echo["headers"]["X-Request-Id"] == response.headers["X-Request-Id"] != "trace-42"


def test_two_workers_serve(demo):
    deadline = time.monotonic() + 10
    while True:  # health answers as soon as the first worker is up
        out = subprocess.run(["pgrep", "-P", str(demo.proc.pid)], capture_output=True, text=True)
        if len(out.stdout.split()) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(out.stdout.split()) == 2


def test_underscore_spelling_of_a_dropped_header_does_not_pass(demo):
    # gunicorn drops header names with underscores by default; X_Forwarded_User never
    # reaches the app under any spelling.
    echo = requests.get(demo.url + "/echo", headers={"X_Forwarded_User": "root"}, timeout=5).json()
    assert not any(k.lower().replace("_", "-") == "x-forwarded-user" for k in echo["headers"])


def test_unknown_path_problem_json(demo):
    response = requests.get(demo.url + "/nope", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["X-Request-Id"]


def test_head_keeps_status_and_sends_no_body(demo):
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=5)
    conn.request("HEAD", "/nope")
    response = conn.getresponse()
    assert response.status == 404 and response.read() == b""
    conn.close()


def test_ready(demo):
    assert requests.get(demo.url + "/.gateway/ready", timeout=5).json() == {"status": "ready"}


def test_request_log_lines_reach_the_log(demo):
    requests.get(demo.url + "/echo/logged?token=query-secret", timeout=5)
    deadline = time.monotonic() + 5
    while "path=/echo/logged" not in demo.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "path=/echo/logged" in demo.log() and "query-secret" not in demo.log()


@pytest.mark.parametrize("path, status", [
    pytest.param("/api/crash-late", 500, id="error after start_response"),
    pytest.param("/api/oserror", 500, id="OSError from the app is answered, not dropped"),
])
def test_upstream_faults_get_an_answer(gateway, path, status):
    gw = gateway("app: tests.support.apps:faulty\napis: [{name: api, path: /api}]\n")
    response = requests.get(gw.url + path, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "Traceback" not in response.text
    deadline = time.monotonic() + 5  # the request line is written once the body is sent
    while response.json()["request_id"] not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Traceback" in gw.log()  # logged once, on the request line with the request ID
    assert response.json()["request_id"] in gw.log()


def test_bad_config_stops_serve_before_listening(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: contrib.demo.echo:app\nstore:\n  timeout: soon\n")
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", str(bad), "--bind", f"127.0.0.1:{port}"],
        cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{bad}:3: store.timeout: expected a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_unimportable_app_stops_serve(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: no_such_module:app\n")
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", str(bad)],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "cannot import 'no_such_module:app'" in result.stderr


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "conf").glob("*.yaml")))
def test_check_accepts_every_shipped_config(config):
    result = subprocess.run(
        [sys.executable, "-m", "wsgi_gateway.cli", "check", "-c", f"conf/{config}"], cwd=REPO,
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "WSGI_GATEWAY_SECRET_KEY": "test-only-" * 4})
    assert result.returncode == 0, result.stderr


def test_check_rejects_typo_bad_duration_and_missing_secret(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: contrib.demo.echo:app\nstroe: {}\nstore:\n  timeout: 5 parsecs\n"
                   "secret_key: {env: WSGI_GATEWAY_NOT_SET}\n")
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "check", "-c", str(bad)],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"error: {bad}:2: stroe: unknown key (did you mean 'store'?); allowed: ")
    assert lines[1] == f"error: {bad}:4: store.timeout: expected a duration such as 30s, 5m or 1d, got '5 parsecs'"
    assert lines[2] == f"error: {bad}:5: secret_key: environment variable WSGI_GATEWAY_NOT_SET is not set or empty"


def test_gunicorn_loads_the_gateway_directly(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
         "--no-control-socket", f'wsgi_gateway:from_config("{DEMO}")'],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        response = requests.get(f"http://127.0.0.1:{port}/echo", timeout=5)
        assert response.status_code == 200 and response.json()["path"] == "/echo"
    finally:
        proc.terminate()
        proc.wait(10)


def test_memcached_backed_gateway_ready_follows_the_store(gateway):
    from tests.support.processes import Memcached

    server = Memcached().start()
    try:
        gw = gateway(f"""
            app: contrib.demo.echo:app
            store: {{backend: memcached, servers: ["{server.address}"], retry_after: 200ms}}
            apis: [{{name: a, path: /a}}]
        """)
        assert requests.get(gw.url + "/.gateway/ready", timeout=5).status_code == 200
        server.freeze()
        started = time.monotonic()
        response = requests.get(gw.url + "/.gateway/ready", timeout=5)
        assert response.status_code == 503 and time.monotonic() - started < 1.0
        assert str(server.port) not in response.text
        assert requests.get(gw.url + "/a", timeout=5).status_code == 200  # keyless needs no store
        server.resume()
        deadline = time.monotonic() + 5
        while requests.get(gw.url + "/.gateway/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "ready did not recover"
            time.sleep(0.1)
    finally:
        server.stop()
