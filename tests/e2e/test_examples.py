"""The runnable examples (issue 16): a Flask app and a Django project, each behind the
gateway both ways an operator would run it (``wsgi-gateway serve`` with the example's
gateway.yaml, and plain gunicorn loading the app wrapped in code), under real gunicorn,
with a token from the test provider; the identity header must arrive in the app's view.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.idp import TestIdP
from tests.support.processes import REPO, GatewayProcess, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "contrib" / "examples"
DEMO_ISSUER = "http://127.0.0.1:9000/realms/demo"  # what the shipped gateway.yaml names


@pytest.fixture
def idp():
    provider = TestIdP(issuer_path="/realms/demo", audience="demo-api", subject="ann").start()
    yield provider
    provider.stop()


def example_config(example: str, idp: TestIdP, tmp_path: Path) -> Path:
    """The shipped gateway.yaml, pointed at the test provider instead of the demo one."""
    text = (EXAMPLES / example / "gateway.yaml").read_text(encoding="utf-8")
    assert DEMO_ISSUER in text and "rules: rules.yaml" in text
    text = text.replace(DEMO_ISSUER, idp.issuer).replace(
        "rules: rules.yaml", f"rules: {EXAMPLES / example / 'rules.yaml'}")
    path = tmp_path / f"{example}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class PlainGunicorn:
    """gunicorn itself loading ``target`` (the app wrapped by the gateway in code)."""

    def __init__(self, target: str, config: Path, log: Path):
        self.target, self.config, self.log_path = target, config, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "PlainGunicorn":
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            # gunicorn's per-user control socket would collide with parallel tests: off
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--no-control-socket", self.target],
            cwd=REPO, env={**os.environ, "GATEWAY_CONFIG": str(self.config)},
            stdout=self._log, stderr=subprocess.STDOUT)
        eventually(self._healthy, timeout=20, what=f"gunicorn serving {self.target}")
        return self

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
        try:
            return requests.get(self.url + "/.gateway/health", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # still booting
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


IN_CODE = {"flask_app": "contrib.examples.flask_app.wsgi:application",
           "django_project": "contrib.examples.django_project.gateway_wsgi:application"}


@pytest.fixture(params=[
    pytest.param(("flask_app", "serve"), id="flask under wsgi-gateway serve"),
    pytest.param(("flask_app", "in code"), id="flask wrapped in code under gunicorn"),
    pytest.param(("django_project", "serve"), id="django under wsgi-gateway serve"),
    pytest.param(("django_project", "in code"), id="django wrapped in code under gunicorn"),
])
def example(request, idp, tmp_path):
    name, mode = request.param
    config = example_config(name, idp, tmp_path)
    if mode == "serve":
        server = GatewayProcess(config, workers=2)
    else:
        server = PlainGunicorn(IN_CODE[name], config, tmp_path / "gunicorn.log")
    server.start()
    yield server
    server.stop()


def test_the_identity_header_arrives_in_the_view(example, idp):
    token = idp.issue({"sub": "ann", "scope": "read write"})
    response = requests.get(example.url + "/api/me", timeout=5,
                            headers={"Authorization": f"Bearer {token}", "X-User-Id": "root"})
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "ann", "scopes": "read, write", "saw_authorization": False}


def test_no_token_never_reaches_the_view(example):
    response = requests.get(example.url + "/api/me", timeout=5, headers={"X-User-Id": "root"})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


def test_an_anonymous_route_cannot_be_handed_an_identity(example):
    response = requests.get(example.url + "/public/hello", timeout=5, headers={"X-User-Id": "root"})
    assert response.status_code == 200
    assert response.json() == {"hello": "world", "user": None}
