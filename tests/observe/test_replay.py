"""replay: a recorded log, a candidate with one changed rule, exactly the changed lines."""

from __future__ import annotations

import json

import pytest
import yaml
from werkzeug.test import Client

from tests.middleware.conftest import Recorder
from tests.observe.support import RULES, observed_config, write
from tests.support.gateways import SECRET_ENV, mint
from wsgi_gateway import build_app, load_config
from wsgi_gateway.cli import main

CLAIMS = ["sub", "scope", "iss", "aud", "azp", "stale"]
# (method, claims or None) in the order recorded
MIX = [("GET", {"sub": "ann"}), ("DELETE", {"sub": "ann"}), ("POST", {"sub": "ann"}),
       ("POST", {"sub": "writer"}), ("GET", None), ("GET", {"sub": "old", "stale": True}),
       ("GET", {"sub": "boss", "scope": "vip"})]


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """The audit log of MIX under RULES, and a function writing a candidate config."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config = observed_config(tmp_path, None, audit={"claims": CLAIMS})
    config["metrics"]["enabled"] = False
    gateway = build_app(load_config(write(tmp_path, config)), Recorder())
    client = Client(gateway)
    for method, claims in MIX:
        headers = {"Authorization": f"Bearer {mint(**claims)}"} if claims else {}
        client.open("/api/orders", method=method, headers=headers,
                    environ_base={"REMOTE_ADDR": "127.0.0.1"}).close()
    gateway.close()

    def candidate(rules: str) -> str:
        (tmp_path / "candidate-rules.yaml").write_text(rules)
        changed = dict(config, apis=[dict(config["apis"][0], rules="candidate-rules.yaml")])
        return str(write(tmp_path, changed, "candidate"))

    return str(tmp_path / "audit.jsonl"), candidate


def test_the_same_rules_change_nothing(recorded, capsys):
    log, candidate = recorded
    assert main(["replay", "--log", log, "-c", candidate(RULES), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts == {"changed": 0, "unchanged": 6, "unknown": 0, "skipped": 1}


def test_a_changed_rule_finds_exactly_the_changed_decisions(recorded, capsys):
    log, candidate = recorded
    rules = RULES.replace("request.method in ['GET', 'HEAD']", "request.method in ['GET', 'HEAD', 'POST']")
    rules = rules.replace("'vip' in token.scopes", "'vip' in token.scopes && claims.sub != 'boss'")
    assert main(["replay", "--log", log, "-c", candidate(rules), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    changed = {r["request"]: r["changes"] for r in report["results"] if r["status"] == "changed"}
    assert changed == {
        "POST /api/orders": ["deny → allow", "decided by - → readers"],
        "GET /api/orders": ["policies gold → basic"],
    }
    assert report["counts"]["changed"] == 2
    assert main(["replay", "--log", log, "-c", candidate(rules)]) == 1
    table = capsys.readouterr().out
    assert "deny → allow" in table and "2 changed, 4 unchanged, 0 unknown, 1 skipped" in table


def test_unrecorded_claims_are_reported_not_guessed(recorded, capsys):
    log, candidate = recorded
    rules = RULES.replace("'vip' in token.scopes", "'vip' in token.scopes || claims.department == 'x'")
    assert main(["replay", "--log", log, "-c", candidate(rules), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["unknown"] == 6
    assert all("claims.department" in r["why"] for r in report["results"] if r["status"] == "unknown")
    assert main(["replay", "--log", log, "-c", candidate(rules), "--strict"]) == 1


@pytest.mark.parametrize("content, problem", [
    pytest.param("not json\n", "not a JSON audit line", id="not json"),
    pytest.param('{"v": 9}\n', "schema version 1", id="other version"),
])
def test_a_bad_log_names_its_line(recorded, tmp_path, capsys, content, problem):
    _, candidate = recorded
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    assert main(["replay", "--log", str(bad), "-c", candidate(RULES)]) == 2
    assert f"{bad}:1: " in capsys.readouterr().err


def test_identities_not_made_of_claims_are_unknown(recorded, tmp_path, capsys):
    """An API key or password identity cannot be rebuilt from the log: said, not guessed."""
    log, candidate = recorded
    line = json.loads(open(log).readline())
    line["identity"]["method"] = "basic"
    other = tmp_path / "basic.jsonl"
    other.write_text(json.dumps(line) + "\n")
    assert main(["replay", "--log", str(other), "-c", candidate(RULES), "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert result["status"] == "unknown" and "basic identity" in result["why"]
