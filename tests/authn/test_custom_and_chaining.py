"""Custom authenticators (dotted path, entry point), auth_mode all, anonymous fallback."""

from __future__ import annotations

import hashlib
import logging
import sys
import textwrap

import pytest
import yaml

from tests.support.gateways import gateway_config, mint
from wsgi_gateway.errors import ConfigError

MOODY = {"method": "custom", "class": "tests.support.authenticators:Moody",
         "options": {"subject": "sam"}}


def config(auth, **api):
    return gateway_config(None, policies={"basic": {}}, api={"auth": auth, **api})


def test_custom_by_dotted_path(in_process):
    g = in_process(config([MOODY]))
    assert g.get(headers={"X-Mood": "ok"}).status_code == 200
    assert g.upstream.environ["wsgi_gateway.context"].identity.subject == "sam"
    assert "HTTP_X_MOOD" not in g.upstream.environ  # its credential is stripped
    refused = g.get(headers={"X-Mood": "no"})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Moody")
    missing = g.get()
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Moody realm="test"'


@pytest.mark.parametrize("mood", ["crash", "weird"])
def test_a_fault_inside_a_custom_authenticator_is_503_and_logged(in_process, caplog, mood):
    g = in_process(config([MOODY]))
    with caplog.at_level(logging.ERROR, logger="wsgi_gateway.authn"):
        response = g.get(headers={"X-Mood": mood})
    assert response.status_code == 503 and g.upstream.calls == 0
    assert "hunter2" not in response.get_data(as_text=True)
    assert any("moody" in r.getMessage() for r in caplog.records)
    if mood == "crash":
        assert response.json["request_id"] in caplog.records[0].getMessage()


def test_worked_example_service_token(in_process, tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"billing": hashlib.sha256(b"s3cret-billing").hexdigest()}))
    auth = [{"method": "custom", "class": "contrib.authenticators.service_token:ServiceToken",
             "options": {"tokens_file": str(tokens)}}, "keyless"]
    g = in_process(config(auth))
    assert g.get(headers={"X-Service-Token": "s3cret-billing"}).status_code == 200
    identity = g.upstream.environ["wsgi_gateway.context"].identity
    assert identity.subject == "billing" and identity.method == "service-token"
    assert g.get(headers={"X-Service-Token": "guess"}).status_code == 401
    assert g.get(headers={"X-Service-Token": "x" * 300}).status_code == 400
    assert g.get().status_code == 200  # no token: keyless fallback
    assert g.upstream.environ["wsgi_gateway.context"].identity.anonymous


def test_custom_by_entry_point(in_process, tmp_path, monkeypatch):
    dist = tmp_path / "moody_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moody-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[wsgi_gateway.authenticators]\nmoody = tests.support.authenticators:Moody\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    g = in_process(config([{"method": "custom", "entry_point": "moody"}]))
    assert g.get(headers={"X-Mood": "ok"}).status_code == 200


@pytest.mark.parametrize("entry, message", [
    pytest.param({"method": "custom", "class": "no.such.module:X"}, "cannot import", id="not importable"),
    pytest.param({"method": "custom", "class": "tests.support.authenticators:NotAnAuthenticator"},
                 "lacks id, authenticate, ready", id="not an authenticator"),
    pytest.param({"method": "custom", "entry_point": "nope"}, "no entry point 'nope'", id="unknown entry point"),
])
def test_bad_custom_authenticators_stop_start_up(in_process, entry, message):
    with pytest.raises(ConfigError, match=message):
        in_process(config([entry]))


def test_both_class_and_entry_point_is_a_config_error(in_process):
    with pytest.raises(ConfigError, match="exactly one of class"):
        in_process(config([{"method": "custom", "class": "a:b", "entry_point": "c"}]))


def test_auth_mode_all_needs_every_credential(in_process):
    g = in_process(config(["jwt", MOODY], auth_mode="all", identity_from="custom"))
    token = mint(sub="ann")
    both = g.get(token, headers={"X-Mood": "ok"})
    assert both.status_code == 200
    assert g.upstream.environ["wsgi_gateway.context"].identity.subject == "sam"
    trail = [(t.layer, t.name) for t in g.upstream.environ["wsgi_gateway.context"].trail]
    assert ("authn", "jwt") in trail and ("authn", "moody") in trail
    assert g.get(token).status_code == 401
    assert g.get(headers={"X-Mood": "ok"}).status_code == 401
    assert g.get(token, headers={"X-Mood": "no"}).status_code == 401
    assert g.upstream.calls == 1


def test_all_mode_identity_defaults_to_the_first_method(in_process):
    g = in_process(config(["jwt", MOODY], auth_mode="all"))
    assert g.get(mint(sub="ann"), headers={"X-Mood": "ok"}).status_code == 200
    assert g.upstream.environ["wsgi_gateway.context"].identity.subject == "ann"


@pytest.mark.parametrize("api, message", [
    pytest.param({"auth_mode": "all", "auth": ["jwt", "keyless"]}, "cannot include keyless", id="all with keyless"),
    pytest.param({"identity_from": "basic"}, "identity_from 'basic' is not one of", id="unknown identity_from"),
])
def test_chaining_config_errors(in_process, api, message):
    with pytest.raises(ConfigError, match=message):
        in_process(config(api.pop("auth", ["jwt"]), **api))


def test_anonymous_fallback_is_visible_to_rules_and_limited_by_address(in_process, tmp_path, memcached):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""\
        headers:
          X-Who: "identity.anonymous ? 'anonymous' : identity.id"
    """))
    cfg = gateway_config(memcached.address, policies={"basic": {"rate": "2/60s"}},
                         api={"auth": ["jwt", "keyless"], "rules": "rules.yaml"},
                         limits={"algorithm": "fixed"})
    g = in_process(cfg)
    seen = g.get().get_json()["headers"]
    assert seen["X-Who"] == "anonymous"
    assert g.get(mint(sub="ann")).get_json()["headers"]["X-Who"] == "ann"
    statuses = [g.get(environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
