"""The audit log: one line per decision, every decision type, never a secret."""

from __future__ import annotations

import json
import math
import random
import time

import pytest
import yaml
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from tests.observe.support import observed_config, write
from tests.support.gateways import mint
from wsgi_gateway import build_app, load_config
from wsgi_gateway.observe.audit import _json, _ms

COOKIE = "sessionid=cookie-secret-4f1d9a"


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    """A gateway with the audit log on; yields (client, lines())."""
    from tests.support.gateways import SECRET_ENV

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)

    def make(clock=None, **audit):
        config = observed_config(tmp_path, None, audit=audit)
        config["metrics"]["enabled"] = False
        kw = {"clock": clock} if clock else {}
        gateway = build_app(load_config(write(tmp_path, config)), Recorder(), **kw)
        client = BufferedClient(LintMiddleware(gateway))
        path = tmp_path / "audit.jsonl"

        def lines() -> list[dict]:
            gateway.observer.flush()  # what waits in the batch (audit.flush_interval)
            text = path.read_text() if path.exists() else ""
            return [json.loads(line) for line in text.splitlines()]
        return client, lines, path

    return make


CASES = [
    pytest.param("GET", {"sub": "ann"}, 200, "allow", None, "readers", id="allowed"),
    pytest.param("DELETE", {"sub": "ann"}, 403, "deny", "forbidden", "no-delete", id="deny rule"),
    pytest.param("POST", {"sub": "ann"}, 403, "deny", "forbidden", None, id="no allow rule"),
    pytest.param("GET", {"sub": "ann", "stale": True}, 401, "invalid", "invalid_token", "fresh",
                 id="validate fails"),
    pytest.param("GET", None, 401, "unauthenticated", "unauthorized", None, id="no credential"),
    pytest.param("GET", "bad", 401, "unauthenticated", "invalid_token", None, id="bad token"),
]


@pytest.mark.parametrize("method, claims, status, decision, reason, decided_by", CASES)
def test_one_line_per_decision(gateway, method, claims, status, decision, reason, decided_by):
    client, lines, _ = gateway()
    headers = {"Cookie": COOKIE}
    token = None
    if claims == "bad":
        token = mint(sub="eve") + "x"
    elif claims is not None:
        token = mint(**claims)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = client.open("/api/orders?secret=q1", method=method, headers=headers)
    assert response.status_code == status
    [line] = lines()
    assert (line["v"], line["decision"], line["status"], line["reason"]) == (1, decision, status, reason)
    assert line["decided_by"] == decided_by
    assert line["path"] == "/api/orders" and line["api"] == "api" and line["method"] == method
    assert line["request_id"] == response.headers["X-Request-Id"]
    text = json.dumps(line)
    for secret in filter(None, [token, token and token.split(".")[2], "cookie-secret-4f1d9a", "q1"]):
        assert secret not in text
    if isinstance(claims, dict):
        assert line["identity"]["method"] == "jwt" and line["claims"]["sub"] == "ann"
        assert "stale" not in line["claims"]  # not listed in audit.claims


def test_limited_requests_and_remaining(gateway):
    client, lines, _ = gateway()
    token = mint(sub="counted")
    statuses = [client.get("/api/x", headers={"Authorization": f"Bearer {token}"}).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    found = lines()
    assert [l["decision"] for l in found] == ["allow", "allow", "allow", "limited"]
    assert [l["limits"][0]["remaining"] for l in found] == [2, 1, 0, 0]
    assert found[-1]["reason"] == "rate_limited" and found[-1]["policies"] == ["basic"]


def test_allowed_requests_are_sampled_denials_never(gateway):
    client, lines, _ = gateway(sample_allowed=0.0)
    token = mint(sub="sampled")
    client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
    client.delete("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert [l["decision"] for l in lines()] == ["deny"]


def test_ops_paths_are_not_audited(gateway):
    client, lines, _ = gateway()
    assert client.get("/.gateway/health").status_code == 200
    assert lines() == []


def test_logrotate_moves_the_file(gateway, tmp_path):
    now = [time.time()]
    client, lines, path = gateway(clock=lambda: now[0])
    token = mint(sub="rotated")
    client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert len(lines()) == 1  # written (a line still waiting goes to the new file)
    path.rename(tmp_path / "audit.jsonl.1")
    now[0] += 1.5  # the file is checked for rotation once a second
    client.get("/api/x", headers={"Authorization": f"Bearer {token}"})
    assert len(lines()) == 1 and len((tmp_path / "audit.jsonl.1").read_text().splitlines()) == 1


def test_claims_are_recorded_only_when_listed(gateway):
    client, lines, _ = gateway(claims=[])
    client.get("/api/x", headers={"Authorization": f"Bearer {mint(sub='ann')}"})
    assert lines()[0]["claims"] is None


@pytest.mark.parametrize("audit, problem", [
    pytest.param({"sample_allowed": 2}, "between 0 and 1", id="sample over 1"),
    pytest.param({"claims": ["a b"]}, "not claim names", id="bad claim name"),
    pytest.param({"file": "nowhere/audit.jsonl"}, "does not exist", id="missing directory"),
])
def test_bad_audit_config_names_the_file(tmp_path, audit, problem):
    from wsgi_gateway.errors import ConfigError

    config = observed_config(tmp_path, None, audit=audit)
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_revoked_and_unavailable_are_written(tmp_path, monkeypatch):
    """The decisions a store gives: a revoked session (401), then the store down with
    revocation checks closed (503). A real memcached, killed for the second."""
    from tests.support.gateways import SECRET_ENV
    from tests.support.processes import Memcached

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    server = Memcached().start()
    try:
        config = observed_config(tmp_path, server.address)
        config["metrics"]["enabled"] = False
        config["store"]["on_failure"] = {"revocation_checks": "closed"}
        now = [time.time()]
        gateway = build_app(load_config(write(tmp_path, config)), Recorder(), clock=lambda: now[0])
        client = BufferedClient(LintMiddleware(gateway))
        token = mint(sub="revoked", iat=now[0] - 10)
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/x", headers=headers).status_code == 200
        gateway.observer.flush()
        [first] = (tmp_path / "audit.jsonl").read_text().splitlines()
        gateway.resources["sessions"].revoke(json.loads(first)["identity"]["session_id"])
        now[0] += 2  # past the workers' session cache
        assert client.get("/api/x", headers=headers).status_code == 401
        server.stop()
        now[0] += 2
        assert client.get("/api/x", headers=headers).status_code == 503
        gateway.observer.flush()
        lines = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(l["decision"], l["status"]) for l in lines] == [
            ("allow", 200), ("revoked", 401), ("unavailable", 503)]
        assert lines[1]["reason"] == "invalid_token" and lines[2]["reason"] == "unavailable"
        assert all(token not in json.dumps(l) for l in lines)
    finally:
        server.stop()


def test_lines_wait_at_most_the_flush_interval(gateway):
    """Batched writes: nothing until a line has waited 100 ms (the injected clock), then
    the whole batch in one write; close writes the rest."""
    now = [1_800_000_000.0]
    client, _lines, path = gateway(clock=lambda: now[0])
    headers = {"Authorization": f"Bearer {mint(sub='batched')}"}

    def written() -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0

    client.get("/api/x", headers=headers)
    now[0] += 0.05
    client.get("/api/x", headers=headers)
    assert written() == 0
    now[0] += 0.06  # the first line has waited 110 ms
    client.get("/api/x", headers=headers)
    assert written() == 3
    client.get("/api/x", headers=headers)
    assert written() == 3
    client.application.app.close()  # the Gateway under LintMiddleware
    assert written() == 4


def test_an_idle_worker_writes_its_batch(gateway):
    """No further request: the flusher thread writes the waiting line (real time)."""
    client, _lines, path = gateway()
    client.get("/api/x", headers={"Authorization": f"Bearer {mint(sub='idle')}"})
    deadline = time.monotonic() + 5
    while not (path.exists() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(path.read_text().splitlines()) == 1


def test_flush_interval_zero_writes_every_line_at_once(gateway):
    client, _lines, path = gateway(flush_interval=0)
    client.get("/api/x", headers={"Authorization": f"Bearer {mint(sub='direct')}"})
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize("path", [
    pytest.param('/api/a"b\\c', id="quote and backslash"),
    pytest.param("/api/\u00e9t\u00e9/\U0001f600", id="non-ascii"),
    pytest.param("/api/a\x01b", id="control character"),
])
def test_the_line_is_json_for_any_path(gateway, path):
    client, lines, _ = gateway()
    client.delete(path, headers={"Authorization": f"Bearer {mint(sub='ann')}"})
    [line] = lines()
    assert line["path"] == path.encode().decode("latin-1")  # PATH_INFO, as WSGI gives it
    assert line["decision"] == "deny"


@pytest.mark.e2e
def test_a_stopping_worker_writes_its_batch(tmp_path, memcached):
    """Real gunicorn: lines waiting in a batch (a 60 s interval here, so only the exit
    can write them) reach the file when the workers stop."""
    import requests

    from tests.support.gateways import SECRET_ENV
    from tests.support.processes import GatewayProcess

    config = observed_config(tmp_path, memcached.address, audit={"flush_interval": "60s"})
    config["metrics"]["enabled"] = False
    process = GatewayProcess(write(tmp_path, config), workers=2, env=SECRET_ENV).start()
    try:
        token = mint(sub="exiting")
        for _ in range(3):
            response = requests.delete(process.url + "/api/x", timeout=10,
                                       headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 403
        path = tmp_path / "audit.jsonl"
        assert not (path.exists() and path.read_text())  # still waiting
    finally:
        process.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["decision"] for line in lines] == ["deny"] * 3


@pytest.mark.parametrize("seconds", [
    pytest.param(s, id=repr(s)) for s in
    [0.0, 1e-9, 0.000005, 0.0000049999, 0.000125, 0.0049999, 0.005, 0.0123456, 1.0, 1.005,
     2.675, 12.345, 999.999995, 1e9, 1e10, -0.001, -0.0, math.inf, math.nan]
])
def test_milliseconds_are_written_as_round_then_repr_wrote_them(seconds):
    assert _ms(seconds) == _json(round(seconds * 1000, 2))


def test_milliseconds_match_on_many_random_durations():
    rng = random.Random(14)
    durations = [rng.choice([rng.random() * scale, rng.randint(0, 10**7) / 10**5 + 5e-6])
                 for scale in (0.001, 0.1, 10.0, 1e4) for _ in range(5000)]
    assert [_ms(s) for s in durations] == [_json(round(s * 1000, 2)) for s in durations]


def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path):
    from wsgi_gateway.config.observe import AuditConfig
    from wsgi_gateway.context import RequestContext
    from wsgi_gateway.observe.audit import _BATCH_LINES, AuditLog

    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(enabled=True, file=str(path), flush_interval=3600.0),
                   clock=lambda: 1764876543.25)  # the interval never runs out
    try:
        def lines() -> list[str]:
            return path.read_text().splitlines() if path.exists() else []

        for number in range(_BATCH_LINES + 3):
            ctx = RequestContext(request_id=f"r{number}", api="api", decision="deny", problem="forbidden")
            log.write(ctx, "GET", "/api/orders", 403, 0.001)
            if number == _BATCH_LINES - 2:
                assert lines() == []  # still waiting, formatted at the flush
        written = lines()
        assert len(written) == _BATCH_LINES  # the full batch, in order, the rest waits
        assert [json.loads(line)["request_id"] for line in written[:2]] == ["r0", "r1"]
        assert json.loads(written[0])["time"] == "2025-12-04T19:29:03.250Z"  # when it ended
    finally:
        log.close()
    assert len(lines()) == _BATCH_LINES + 3  # close writes what waited
