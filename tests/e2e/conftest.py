"""End-to-end fixtures: gateways under real gunicorn, from config files."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.processes import GatewayProcess


@pytest.fixture
def gateway(tmp_path):
    """gateway(yaml, **kw) → a started GatewayProcess; all are stopped after the test."""
    started = []

    def start(text: str, *, name: str = "gateway", wait: bool = True, **kw) -> GatewayProcess:
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        process = GatewayProcess(path, **kw)
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in started:
        process.stop()
