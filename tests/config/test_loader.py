"""Config loading: typed results, and every fault named by file, line and key path."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from wsgi_gateway.config import load_config
from wsgi_gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [p.replace(str(path), "FILE") for p in info.value.problems]


def test_minimal_config_has_defaults(tmp_path):
    config = load_config(write(tmp_path, "apis: [{name: a, path: /a}]\n"))
    assert config.store.backend == "memory"
    assert config.apis[0].auth[0].method == "keyless"
    assert config.apis[0].strip_auth is True
    assert config.ops.prefix == "/.gateway/"
    assert config.source == tmp_path / "gateway.yaml"


def test_durations_parse_into_seconds(tmp_path):
    config = load_config(write(tmp_path, """
        store: {backend: memcached, servers: ["127.0.0.1:11211", "[::1]:11212"],
                timeout: 250ms, retry_after: 2s}
    """))
    assert config.store.timeout == 0.25 and config.store.retry_after == 2.0
    assert config.store.servers == (("127.0.0.1", 11211), ("::1", 11212))


def test_config_objects_are_frozen(tmp_path):
    config = load_config(write(tmp_path, "apis: [{name: a, path: /a}]\n"))
    with pytest.raises(AttributeError):
        config.apis[0].path = "/b"  # type: ignore[misc]


@pytest.mark.parametrize("text, expected", [
    pytest.param("stroe: {}\n", "FILE:1: stroe: unknown key (did you mean 'store'?)", id="typo top level"),
    pytest.param("store:\n  backend: memcached\n  servers: [a:1]\n  timout: 1s\n",
                 "FILE:4: store.timout: unknown key (did you mean 'timeout'?)", id="typo nested"),
    pytest.param("store:\n  timeout: 5 parsecs\n",
                 "FILE:2: store.timeout: expected a duration such as 30s, 5m or 1d, got '5 parsecs'",
                 id="bad duration"),
    pytest.param("store:\n  backend: redis\n",
                 "FILE:2: store.backend: expected one of 'memory', 'memcached', got 'redis'", id="bad choice"),
    pytest.param("store: {backend: memcached}\n",
                 "FILE:1: store: backend memcached needs servers: [host:port, ...]", id="memcached without servers"),
    pytest.param("store: {backend: memcached, servers: [localhost]}\n",
                 "FILE:1: store.servers: expected host:port, got 'localhost'", id="server without port"),
    pytest.param("apis:\n  - name: a\n    path: /a\n    auth: [keyless, jwtt]\n",
                 "FILE:4: apis[0].auth[1]: unknown authentication method 'jwtt' (did you mean 'jwt'?); known: ",
                 id="unknown auth method"),
    pytest.param("apis:\n  - name: a\n    path: /a\n    auth: [jtw]\n",
                 "FILE:4: apis[0].auth[0]: unknown authentication method 'jtw' (did you mean 'jwt'?)",
                 id="transposed auth method"),
    pytest.param("store:\n  backend: memcache\n",
                 "FILE:2: store.backend: expected one of 'memory', 'memcached', got 'memcache' "
                 "(did you mean 'memcached'?)", id="near choice"),
    pytest.param("apis:\n  - name: a\n    path: /a\n    auth: []\n",
                 "FILE:4: apis[0].auth: expected a non-empty list of methods, e.g. [keyless]", id="empty auth"),
    pytest.param("apis:\n  - name: a\n    path: /a\n    auth:\n      - {method: keyless, realm: x}\n",
                 "FILE:5: apis[0].auth[0].realm: unknown key; allowed: ", id="unknown method option"),
    pytest.param("apis:\n  - path: /a\n", "FILE:2: apis[0]: missing required key 'name'", id="missing key"),
    pytest.param("apis:\n  - name: a\n    path: a\n",
                 "FILE:2: apis[0]: path 'a' must start with / and be normalised", id="relative path"),
    pytest.param("apis:\n  - name: a\n    path: /a/../b\n",
                 "FILE:2: apis[0]: path '/a/../b' must start with / and be normalised", id="dot segments"),
    pytest.param("apis:\n  - {name: a, path: /a}\n  - {name: a, path: /b}\n",
                 "FILE:3: apis[1].name: duplicate API name 'a' (also apis[0])", id="duplicate name"),
    pytest.param("apis:\n  - {name: a, path: /a}\n  - {name: b, path: /a/}\n",
                 "FILE:3: apis[1].path: duplicate path '/a/' (also apis[0])", id="duplicate path"),
    pytest.param("apis:\n  - {name: a, path: /.gateway}\n",
                 "FILE:2: apis[0].path: overlaps the reserved ops prefix '/.gateway/'", id="ops overlap"),
    pytest.param("apis:\n  - {name: a, path: /a, upstream: 'ftp://x'}\n",
                 "FILE:2: apis[0].upstream: 'ftp://x': expected an http:// or https:// URL with a host",
                 id="url upstream of another scheme"),
    pytest.param("apis:\n  - {name: a, path: /a, rules: rules/x.yaml}\n",
                 "FILE:2: apis[0].rules: rule file 'rules/x.yaml' not found", id="missing rule file"),
    pytest.param("apis:\n  - {name: a, path: /a, strip_auth: 'yes please'}\n",
                 "FILE:2: apis[0].strip_auth: expected true or false, got str 'yes please'", id="wrong type"),
    pytest.param("server:\n  workerz: 2\n",
                 "FILE:2: server.workerz: not a gunicorn setting the gateway accepts (did you mean 'workers'?)",
                 id="unknown gunicorn setting"),
    pytest.param("server:\n  workers: two\n",
                 "FILE:2: server.workers: expected a whole number (0 or more), got 'two'",
                 id="bad gunicorn number"),
    pytest.param("server:\n  bind: 5\n",
                 "FILE:2: server.bind: expected a string or a list of strings, got int 5",
                 id="bad gunicorn address"),
    pytest.param("server:\n  preload_app: maybe\n",
                 "FILE:2: server.preload_app: expected true or false, got 'maybe'",
                 id="bad gunicorn boolean"),
    pytest.param("server:\n  wsgi_app: x:y\n", "FILE:2: server.wsgi_app: not a gunicorn setting the gateway "
                 "accepts (give the app as the top-level 'app' key or --app)", id="app in server"),
    pytest.param("app: not a reference\n", "FILE:1: app: expected module:callable", id="bad app ref"),
    pytest.param("secret_key: hunter2\n",
                 "FILE:1: secret_key: a secret is given as {env: VARIABLE} or {file: PATH}, never inline",
                 id="inline secret"),
    pytest.param("secret_key: {env: WSGI_GATEWAY_TEST_UNSET}\n",
                 "FILE:1: secret_key: environment variable WSGI_GATEWAY_TEST_UNSET is not set or empty",
                 id="missing secret env"),
    pytest.param("secret_key: {file: nowhere.key}\n", "FILE:1: secret_key: secret file ", id="missing secret file"),
    pytest.param("secret_key: {env: WSGI_GATEWAY_TEST_SHORT}\n",
                 "FILE:1: secret_key: env:WSGI_GATEWAY_TEST_SHORT has 9 bytes; a secret key needs at least 32",
                 id="short secret key"),
    pytest.param("previous_secret_keys: [{env: WSGI_GATEWAY_TEST_SHORT}]\n",
                 "FILE:1: previous_secret_keys[0]: env:WSGI_GATEWAY_TEST_SHORT has 9 bytes", id="short previous key"),
    pytest.param("store: {}\nstore: {}\n", "FILE:2:1: invalid YAML: duplicate key 'store'", id="duplicate yaml key"),
    pytest.param("apis: [\n", "FILE:2:1: invalid YAML:", id="yaml syntax"),
    pytest.param("- just\n- a list\n", "FILE:1: (top level): expected a mapping, got a list", id="not a mapping"),
])
def test_problems_name_file_line_and_key(tmp_path, monkeypatch, text, expected):
    monkeypatch.delenv("WSGI_GATEWAY_TEST_UNSET", raising=False)
    monkeypatch.setenv("WSGI_GATEWAY_TEST_SHORT", "test-only")
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    found = problems(tmp_path, """
        store:
          timeout: soon
        apis:
          - {name: a, path: /a, strip_auth: 3}
        logging: {format: xml}
    """)
    assert [p.split(": ")[1] for p in found] == ["store.timeout", "apis[0].strip_auth", "logging.format"]


def test_secret_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WSGI_GATEWAY_TEST_SECRET", "s3cret-env" * 4)
    config = load_config(write(tmp_path, "secret_key: {env: WSGI_GATEWAY_TEST_SECRET}\n"))
    assert config.secret_key.reveal() == b"s3cret-env" * 4
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.secret_key)
    (tmp_path / "gw.key").write_text("s3cret-file" * 3 + "\n")
    config = load_config(write(tmp_path, "secret_key: {file: gw.key}\n"))
    assert config.secret_key.reveal() == b"s3cret-file" * 3


def test_a_secret_never_appears_in_a_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("WSGI_GATEWAY_TEST_SECRET", "s3cret-env")
    found = problems(tmp_path, "secret_key: {env: WSGI_GATEWAY_TEST_SECRET}\nstore: {timeout: x}\n")
    assert found and not any("s3cret" in p for p in found)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "conf").glob("*.yaml")))
def test_shipped_configs_load(name, monkeypatch):
    monkeypatch.setenv("WSGI_GATEWAY_SECRET_KEY", "test-only-" * 4)
    load_config(REPO / "conf" / name)


# -- HMAC secrets are decoded when the config loads (issue 10) ---------------------------

_HMAC_PROVIDER = """\
providers:
  - name: local
    issuer: https://idp.example
    algorithms: [HS256]
    audiences: [api]
    keys:
      - kid: k
        secret: {env: WSGI_GATEWAY_TEST_HMAC}
"""
_SECRET_32 = bytes(range(200, 232))  # 32 bytes whose base64 forms hold + / - _


@pytest.mark.parametrize("value, encoding, expected", [
    pytest.param(base64.b64encode(_SECRET_32).decode(), None,
                 "is not valid base64url (secret_encoding: base64url); set secret_encoding: base64",
                 id="standard base64 read as base64url"),
    pytest.param(base64.urlsafe_b64encode(_SECRET_32).decode(), "base64",
                 "is not valid base64 (secret_encoding: base64); set secret_encoding: base64url",
                 id="base64url read as base64"),
    pytest.param("not base64 at all!", None, "is not valid base64url", id="not base64"),
    pytest.param("abcde", None, "is not valid base64url", id="truncated"),
    pytest.param(base64.urlsafe_b64encode(b"short").decode(), None,
                 "at least 32 bytes (RFC 7518 §3.2), env:WSGI_GATEWAY_TEST_HMAC has 5 after "
                 "secret_encoding base64url", id="too short"),
])
def test_a_bad_hmac_secret_names_line_and_secret_encoding(tmp_path, monkeypatch, value, encoding,
                                                          expected):
    monkeypatch.setenv("WSGI_GATEWAY_TEST_HMAC", value)
    text = _HMAC_PROVIDER + (f"        secret_encoding: {encoding}\n" if encoding else "")
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith("FILE:7: providers[0].keys[0]: secret: "), found
    assert expected in found[0] and value not in found[0]


@pytest.mark.parametrize("value, encoding", [
    pytest.param(base64.urlsafe_b64encode(_SECRET_32).decode(), None, id="base64url"),
    pytest.param(base64.urlsafe_b64encode(_SECRET_32).decode().rstrip("="), None, id="base64url unpadded"),
    pytest.param(base64.b64encode(_SECRET_32).decode(), "base64", id="base64"),
])
def test_good_hmac_secrets_decode(tmp_path, monkeypatch, value, encoding):
    monkeypatch.setenv("WSGI_GATEWAY_TEST_HMAC", value)
    text = _HMAC_PROVIDER + (f"        secret_encoding: {encoding}\n" if encoding else "")
    config = load_config(write(tmp_path, text))
    assert config.providers[0].keys[0].secret_bytes() == _SECRET_32
