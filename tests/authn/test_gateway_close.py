"""Gateway.close() stops what the gateway started: a provider's key set refresh thread
(RemoteKeys.close was never called; issue 10, item 9). Real IdP over loopback HTTP."""

from __future__ import annotations

import threading

import yaml

from tests.support.idp import TestIdP
from wsgi_gateway import build_app, load_config


def test_close_stops_the_key_set_refresh_thread(tmp_path):
    idp = TestIdP(issuer_path="/realms/close").start()
    try:
        path = tmp_path / "gw.yaml"
        path.write_text(yaml.safe_dump({
            "app": "contrib.demo.echo:app",
            "providers": [{"name": "closing", "issuer": idp.issuer, "discovery": True,
                           "algorithms": ["ES256", "RS256"], "audiences": ["test-api"],
                           "jwks": {"timeout": "1s", "warmup": "3s"}}],
            "apis": [{"name": "api", "path": "/api", "auth": ["jwt"]}]}))
        gateway = build_app(load_config(path))
        gateway.warm()  # starts the refresh thread and waits for the first fetch
        (thread,) = [t for t in threading.enumerate() if t.name == "jwks-closing"]
        assert thread.is_alive() and gateway.ready_reasons() == []
        gateway.close()
        thread.join(timeout=2)
        assert not thread.is_alive()
    finally:
        idp.stop()
