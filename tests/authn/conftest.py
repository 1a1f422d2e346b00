"""JWT fixtures: a real OpenID Connect provider on loopback and gateways trusting it."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from tests.middleware.conftest import BufferedClient, Recorder
from tests.support.idp import TestIdP
from wsgi_gateway import build_app, load_config
from werkzeug.middleware.lint import LintMiddleware

ALL_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                  "ES256", "ES384", "ES512", "EdDSA"]


@pytest.fixture(scope="module")
def idp():
    """A provider for the module, signing with RS256 by default."""
    provider = TestIdP(issuer_path="/realms/test").start()
    yield provider
    provider.stop()


def provider_block(idp: TestIdP, name: str = "test", **overrides) -> dict:
    block = {"name": name, "issuer": idp.issuer, "discovery": True,
             "algorithms": ALL_ASYMMETRIC, "audiences": ["test-api"],
             "jwks": {"timeout": "1s", "warmup": "3s"}}
    block.update(overrides)
    return {k: v for k, v in block.items() if v is not None}


class JwtGateway:
    """A gateway built in process from a config, with a real upstream that counts calls."""

    def __init__(self, tmp_path, providers: list[dict], api: dict | None = None,
                 extra: dict | None = None, warm: bool = True):
        self.upstream = Recorder()
        config = {"providers": providers,
                  "apis": [{"name": "api", "path": "/api", "auth": [{"method": "jwt"}], **(api or {})}],
                  **(extra or {})}
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        self.gateway = build_app(load_config(path), self.upstream)
        if warm:
            self.gateway.warm()
        self.client = BufferedClient(LintMiddleware(self.gateway))

    def get(self, token: str | None = None, path: str = "/api/x", **kw):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, headers=headers, **kw)

    @property
    def identity(self):
        return self.upstream.environ["wsgi_gateway.context"].identity

    @property
    def context(self):
        return self.upstream.environ["wsgi_gateway.context"]


@pytest.fixture
def make_gateway(tmp_path):
    def make(providers, api=None, extra=None, warm=True) -> JwtGateway:
        return JwtGateway(tmp_path, providers, api, extra, warm)
    return make


def problem(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json"
    return json.loads(response.get_data())
