"""The shipped rule examples pass their own tests, on both engines, via the CLI too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.testing import find_test_files, report, run_test_file

REPO = Path(__file__).resolve().parents[2]
FILES = find_test_files([REPO / "rules"])


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_shipped_rule_tests_pass(path, engine):
    results = run_test_file(path, get_engine(engine))
    assert results, f"{path} has no cases"
    assert all(r.passed for r in results), report(results)


def test_every_example_the_issue_asks_for_is_shipped():
    names = {p.name for p in FILES}
    assert {"orders.test.yaml", "scopes.test.yaml", "clients.test.yaml", "keycloak.test.yaml"} <= names


def test_cli_passes_on_the_shipped_rules():
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "rules", "test", "rules"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_cli_fails_with_a_readable_diff(tmp_path):
    (tmp_path / "r.yaml").write_text("assign: [{policy: gold, when: \"'admin' in token.scopes\"}]\n"
                                     "default_policy: free\n")
    (tmp_path / "r.test.yaml").write_text(
        "policies: [gold, free]\ncases:\n"
        "  - name: wrong on purpose\n    claims: {sub: a, scope: admin}\n"
        "    expect: {policies: [free], decision: deny}\n")
    result = subprocess.run([sys.executable, "-m", "wsgi_gateway.cli", "rules", "test", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    out = result.stdout
    assert f"FAIL {tmp_path / 'r.test.yaml'}:3: wrong on purpose" in out
    assert "decision: expected deny, got allow" in out
    assert "policies: expected ['free'], got ['gold']" in out
    assert out.strip().splitlines()[-1] == "0 passed, 1 failed"
