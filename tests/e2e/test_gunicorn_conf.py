"""The gunicorn.conf.py sample the README promises: every setting valid, and gunicorn
run with it serves the gateway (issue 10, "README paths exist")."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import requests
from gunicorn.config import Config

from tests.support.processes import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "conf" / "gunicorn.conf.py"


def test_every_setting_of_the_sample_is_a_valid_gunicorn_setting():
    settings = {k: v for k, v in runpy.run_path(str(SAMPLE)).items()
                if not k.startswith("_") and k != "os"}
    probe = Config()
    assert set(settings) <= set(probe.settings), set(settings) - set(probe.settings)
    for key, value in settings.items():
        probe.set(key, value)  # gunicorn's own validators; raises on a bad value
    assert probe.control_socket_disable is True and probe.workers >= 1


def test_gunicorn_serves_the_gateway_with_the_sample(tmp_path):
    port = free_port()
    env = {**os.environ, "GATEWAY_BIND": f"127.0.0.1:{port}", "GATEWAY_WORKERS": "1"}
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(SAMPLE),
         'wsgi_gateway:from_config("conf/demo.yaml")'],
        cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        wait_for_port(port)
        assert requests.get(f"http://127.0.0.1:{port}/echo", timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/.gateway/ready", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
