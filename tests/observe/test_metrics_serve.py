"""Metrics under real gunicorn with 2 workers: exact sums across workers, a killed
worker's counts kept, the path refused to other addresses, promtool's verdict."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.observe.support import observed_config, samples, value, write
from tests.support.gateways import SECRET_ENV, mint
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.e2e

# (method, token subject, scopes) -> expected status; the mix hits every decision
MIX = [
    pytest.param("GET", "ann", "", 200, id="allowed"),
    pytest.param("DELETE", "ann", "", 403, id="denied by no-delete"),
    pytest.param("POST", "ann", "", 403, id="no allow rule"),
    pytest.param("GET", None, "", 401, id="no credential"),
]


def _request(url: str, method: str, sub: str | None, scope: str = "", bad: bool = False):
    headers = {}
    if sub is not None:
        headers["Authorization"] = "Bearer " + (mint(sub=sub, scope=scope) + ("x" if bad else ""))
    return requests.request(method, url + "/api/x", headers=headers, timeout=10)


@pytest.fixture
def served(tmp_path, memcached):
    process = GatewayProcess(write(tmp_path, observed_config(tmp_path, memcached.address)),
                             workers=2, env=SECRET_ENV).start()
    yield process
    process.stop()


def scrape(process: GatewayProcess, total: int | None = None) -> dict:
    """The metrics; with ``total``, once gateway_requests_total{api="api"} reaches it
    (each worker writes its counts every flush_interval, 100 ms here)."""
    deadline = time.monotonic() + 5
    while True:
        response = requests.get(process.url + "/.gateway/metrics", timeout=10)
        assert response.status_code == 200, response.text
        found = samples(response.text)
        if total is None or value(found, "gateway_requests_total", api="api") >= total \
                or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _audit_lines(process: GatewayProcess, total: int) -> list[dict]:
    """The audit lines once ``total`` are written: each worker writes its batch within
    ``audit.flush_interval`` (100 ms), the idle one from its flusher thread."""
    path = process.config.parent / "audit.jsonl"
    deadline = time.monotonic() + 5
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= total or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def _workers(process: GatewayProcess) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(process.proc.pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_counts_match_exactly_summed_over_two_workers(served):
    def one(i):
        method, sub, scope, status = MIX[i % len(MIX)].values
        return status, _request(served.url, method, f"{sub}{i // len(MIX)}" if sub else None, scope)

    # whole rounds of the mix, concurrently, until both workers have served (a sync
    # worker may take every connection of a short burst): at most 50 rounds
    rounds = 0
    while rounds < 50:
        with ThreadPoolExecutor(8) as pool:
            batch = range(rounds * len(MIX), (rounds + 10) * len(MIX))
            for status, response in pool.map(one, batch):
                assert response.status_code == status, response.text
        rounds += 10
        found = scrape(served, total=4 * rounds)
        if len(set(_pids_seen(served))) == 2:
            break
    assert len(set(_pids_seen(served))) == 2, "the mix did not reach both workers"
    n = rounds
    assert value(found, "gateway_requests_total", api="api") == 4 * n
    assert value(found, "gateway_requests_total", api="api", status="200", method="read") == n
    assert value(found, "gateway_requests_total", api="api", status="403", decision="deny") == 2 * n
    assert value(found, "gateway_requests_total", api="api", status="401",
                 decision="unauthenticated") == n
    assert value(found, "gateway_rule_outcomes_total", rule="no-delete", outcome="true") == n
    assert value(found, "gateway_rule_outcomes_total", rule="readers", outcome="false") == 2 * n
    assert value(found, "gateway_authn_total", outcome="no_credential") == n
    assert value(found, "gateway_authn_total", method="jwt", outcome="identified") == 3 * n
    assert value(found, "gateway_request_duration_seconds_count", api="api") == 4 * n
    assert value(found, "gateway_stage_duration_seconds_count", api="api", stage="authn") == 4 * n
    assert value(found, "gateway_stage_duration_seconds_count", api="api", stage="rules") == 3 * n
    assert value(found, "gateway_stage_duration_seconds_count", api="api", stage="upstream") == n
    audit = _audit_lines(served, 4 * n)  # every line whole: batches of two workers never mix
    assert len(audit) == 4 * n and len({a["request_id"] for a in audit}) == 4 * n  # both workers
    assert sorted({a["decision"] for a in audit}) == ["allow", "deny", "unauthenticated"]


def _pids_seen(process: GatewayProcess) -> list[int]:
    """The worker pids that wrote a counter file: each worker has its own."""
    directory = process.config.parent / "prom"
    return [int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")]


def test_bad_token_and_rate_limit_reasons(served):
    assert _request(served.url, "GET", "eve", bad=True).status_code == 401
    statuses = [_request(served.url, "GET", "limited").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    found = scrape(served, total=6)
    assert value(found, "gateway_authn_total", method="jwt", outcome="failed",
                 reason="invalid_token") == 1
    assert value(found, "gateway_limit_rejections_total", policy="basic", kind="rate") == 2


def test_a_killed_workers_counts_survive(served):
    for i in range(6):
        assert _request(served.url, "GET", f"k{i}").status_code == 200
    before = value(scrape(served, total=6), "gateway_requests_total", api="api")
    assert before == 6  # written to the workers' files: SIGKILL cannot lose them now
    for pid in _workers(served):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20  # the arbiter starts two new workers
    while time.monotonic() < deadline:
        try:
            if requests.get(served.url + "/.gateway/health", timeout=1).status_code == 200 \
                    and len(_workers(served)) == 2:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    assert _request(served.url, "GET", "after").status_code == 200
    assert value(scrape(served, total=7), "gateway_requests_total", api="api") == 7


def test_the_metrics_path_is_refused_to_other_addresses(tmp_path, memcached):
    config = observed_config(tmp_path, memcached.address, metrics={"allow": ["10.9.9.9/32"]})
    process = GatewayProcess(write(tmp_path, config), workers=2, env=SECRET_ENV).start()
    try:
        response = requests.get(process.url + "/.gateway/metrics", timeout=10)
        assert response.status_code == 404
        assert b"gateway_requests" not in response.content
    finally:
        process.stop()


def test_metrics_are_off_by_default(tmp_path, memcached):
    config = observed_config(tmp_path, memcached.address)
    del config["metrics"]
    process = GatewayProcess(write(tmp_path, config), workers=2, env=SECRET_ENV).start()
    try:
        assert requests.get(process.url + "/.gateway/metrics", timeout=10).status_code == 404
    finally:
        process.stop()


def test_promtool_accepts_the_exposition(served):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus (contrib/run.sh test does)")
    for param in MIX:
        method, sub, scope, _ = param.values
        _request(served.url, method, sub, scope)
    text = requests.get(served.url + "/.gateway/metrics", timeout=10).content
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert not result.stdout.strip() and not result.stderr.strip(), result.stderr.decode()


def test_key_set_fetches_and_age(gateway, tmp_path):
    """A real provider over HTTP: each worker's key set fetch is counted, and its age shown."""
    from tests.support.idp import TestIdP

    idp = TestIdP(issuer_path="/realms/observe").start()
    try:
        gw = gateway(f"""
            app: contrib.demo.echo:app
            logging: {{access_log: false}}
            metrics: {{enabled: true, multiproc_dir: {tmp_path / 'prom'}, flush_interval: 100ms}}
            providers:
              - name: corp
                issuer: {idp.issuer}
                discovery: true
                algorithms: [RS256]
                audiences: [test-api]
            apis:
              - {{name: orders, path: /orders, auth: [jwt]}}
        """)
        token = idp.issue({"sub": "ann"})
        assert requests.get(gw.url + "/orders", headers={"Authorization": f"Bearer {token}"},
                            timeout=5).status_code == 200
        found = samples(requests.get(gw.url + "/.gateway/metrics", timeout=5).text)
        assert value(found, "gateway_fetches_total", source="keyset", provider="corp", outcome="ok") >= 1
        assert value(found, "gateway_fetches_total", outcome="failed") == 0
        ages = [v for (n, ls), v in found.items() if n == "gateway_keyset_age_seconds"]
        assert ages and all(0 <= age < 60 for age in ages)
    finally:
        idp.stop()
