"""The systemd unit shipped for operators (issue 16): systemd's own verifier accepts it
where systemd-analyze is installed, and its commands are ones the CLI accepts."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wsgi_gateway import cli

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "contrib" / "systemd" / "wsgi-gateway.service"
INSTALLED = "/opt/wsgi-gateway/venv/bin/wsgi-gateway"  # where the unit expects the venv


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; "
                    "test_the_unit_parses_and_its_commands_are_the_cli's checks the unit instead")
    # verify insists every command exists: point the unit at this environment's script
    script = Path(sys.executable).with_name("wsgi-gateway")
    assert script.is_file(), f"{script}: install the package (bash contrib/run.sh setup)"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED, str(script)), encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # messages about other units on this host (not ours) are not this unit's faults
    ours = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_the_unit_parses_and_its_commands_are_the_cli_s():
    unit = _unit()
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        argv = shlex.split(service[key])
        assert argv[0] == INSTALLED, key
        args = cli._parser().parse_args(argv[1:])  # SystemExit (exit 2) when the CLI refuses it
        assert args.config == "/etc/wsgi-gateway/gateway.yaml"
    assert shlex.split(service["ExecStart"])[1] == "serve"
    assert shlex.split(service["ExecStartPre"])[1] == "check"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # gunicorn's reload signal
    assert unit["Install"]["WantedBy"] == "multi-user.target"
