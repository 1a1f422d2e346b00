"""No value a rule can produce reaches a conversion that can crash the worker.

cel-expr-python 0.1.3 kills the process (SIGSEGV) on ``plain_value()`` of a map holding
an optional and raises ``SystemError`` for a list of them. Each case runs a real gateway
(build_app + werkzeug Client) in a subprocess, so a crash fails the test instead of
killing pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import json, sys, tempfile, pathlib
    from tests.support.gateways import InProcess, gateway_config, mint
    engine, rules = sys.argv[1], sys.argv[2]
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(rules)
    config = gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"})
    config["cel"] = {"engine": engine}
    try:
        gateway = InProcess(tmp, config)
    except Exception as exc:  # a refusal at load
        print(json.dumps({"load": str(exc)}))
        sys.exit(0)
    response = gateway.get(mint(email="a@example.com"))
    print(json.dumps({"status": response.status_code,
                      "headers": json.loads(response.get_data()).get("headers", {})
                      if response.status_code == 200 else {}}))
""")

CASES = [
    pytest.param("map:\n  profile: \"{'email': claims.?email}\"\n", id="map entry: a map holding an optional"),
    pytest.param("map:\n  profile: \"{'email': dyn(claims.?email)}\"\n", id="map entry: optional hidden by dyn()"),
    pytest.param("headers:\n  X-P: \"[claims.?email]\"\n", id="header: a list of optionals"),
    pytest.param("headers:\n  X-P: \"[[dyn(optional.of(1))]]\"\n", id="header: nested list, optional hidden by dyn()"),
    pytest.param("headers:\n  X-P: \"{'a': dyn(optional.none())}\"\n", id="header: map holding optional.none()"),
    pytest.param("headers:\n  X-P: \"{?'e': claims.?email}.e\"\n", id="header: optional map entry (fine)"),
]


def _run(engine: str, rules: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-c", SCRIPT, engine, rules], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("rules", CASES)
def test_optionals_in_containers_never_crash_the_worker(rules: str) -> None:
    done = _run("cel-cpp", rules)
    assert done.returncode == 0, f"the worker died (rc {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "load" in result:
        assert "optional" in result["load"]
    else:
        assert result["status"] in (200, 403), result
        assert all("optional" not in value for value in result["headers"].values())
