"""Identity headers: what the gateway strips from every client request, on every route."""

from __future__ import annotations

import json
import textwrap

import pytest

from wsgi_gateway import load_config
from wsgi_gateway.errors import ConfigError
from wsgi_gateway.mutate.identity_headers import DEFAULT_IDENTITY_HEADERS, PROXY_HEADERS

RULES = "headers:\n  X-User-Id: \"'from-gateway'\"\n  X-Org: \"'acme'\"\n"

CONFIG = """
routing: {unmatched: pass}
sessions: {header: X-Session-Id}
apis:
  - {name: a, path: /a, rules: a.rules.yaml}
  - {name: b, path: /b}
  - {name: c, path: /c, drop_headers: [X-Tenant]}
"""


@pytest.fixture
def client(make_client, tmp_path):
    (tmp_path / "a.rules.yaml").write_text(RULES)
    return lambda extra="": make_client(CONFIG + textwrap.dedent(extra))


def seen(response) -> dict:
    assert response.status_code == 200, response.get_data()
    return {k.lower(): v for k, v in json.loads(response.get_data())["headers"].items()}


ROUTES = [pytest.param("/b/x", id="other API"), pytest.param("/c", id="API with drop_headers"),
          pytest.param("/elsewhere", id="unmatched pass")]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("name", [
    pytest.param("X-User-Id", id="canonical"), pytest.param("x-user-id", id="lower"),
    pytest.param("X-USER-ID", id="upper"), pytest.param("X-Org", id="second rule header"),
])
def test_a_header_one_apis_rules_inject_never_comes_from_a_client(client, path, name):
    headers = seen(client().get(path, headers={name: "admin"}))
    assert "x-user-id" not in headers and "x-org" not in headers


@pytest.mark.parametrize("path", ROUTES)
def test_underscore_spelling_lands_on_the_same_key(client, upstream, path):
    client().get(path, environ_overrides={"HTTP_X_USER_ID": "admin"})  # X_User_Id: admin
    assert "HTTP_X_USER_ID" not in upstream.environ


def test_the_api_that_injects_still_sends_its_own_value(client):
    assert seen(client().get("/a", headers={"X-User-Id": "admin"}))["x-user-id"] == "from-gateway"


@pytest.mark.parametrize("path", [*ROUTES, pytest.param("/a", id="the injecting API")])
@pytest.mark.parametrize("name", [pytest.param(n.rstrip("*") + ("Anything" if n.endswith("*") else ""),
                                               id=n) for n in DEFAULT_IDENTITY_HEADERS])
def test_every_default_identity_header_is_dropped(client, path, name):
    # absent, or (X-User-Id on /a) the gateway's own value
    assert seen(client().get(path, headers={name: "root"})).get(name.lower()) != "root"


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("name", ["X-Session-Id", "X-Tenant"])
def test_session_header_and_every_apis_drop_headers_apply_everywhere(client, path, name):
    assert name.lower() not in seen(client().get(path, headers={name: "forged"}))


PROXY_SAMPLES = [n.replace("*", "For") for n in PROXY_HEADERS] + ["X-Forwarded-Proto"]


@pytest.mark.parametrize("name", PROXY_SAMPLES)
def test_proxy_headers_dropped_from_an_untrusted_peer(client, name):
    assert name.lower() not in seen(client().get("/b", headers={name: "1.2.3.4"}))


@pytest.mark.parametrize("name", PROXY_SAMPLES)
def test_proxy_headers_kept_from_a_trusted_proxy(client, name):
    gateway = client("client_headers: {trusted_proxies: [127.0.0.0/8]}\n")
    assert seen(gateway.get("/b", headers={name: "1.2.3.4"}))[name.lower()] == "1.2.3.4"


def test_identity_headers_dropped_even_from_a_trusted_proxy(client):
    gateway = client("client_headers: {trusted_proxies: [127.0.0.1]}\n")
    headers = seen(gateway.get("/b", headers={"X-Forwarded-User": "root", "X-User-Id": "root",
                                              "X-Forwarded-For": "1.2.3.4"}))
    assert "x-forwarded-user" not in headers and "x-user-id" not in headers
    assert headers["x-forwarded-for"] == "1.2.3.4"


def test_a_peer_outside_the_trusted_networks_is_not_trusted(client):
    gateway = client("client_headers: {trusted_proxies: [10.0.0.0/8]}\n")
    headers = seen(gateway.get("/b", headers={"Forwarded": "for=1.2.3.4"},
                               environ_base={"REMOTE_ADDR": "192.0.2.7"}))
    assert "forwarded" not in headers


@pytest.mark.parametrize("extra, name, passes", [
    pytest.param("client_headers: {strip: [X-Corp-Role]}", "X-Corp-Role", False, id="strip adds"),
    pytest.param("client_headers: {strip: [X-Corp-*]}", "X-Corp-Team", False, id="strip prefix"),
    pytest.param("client_headers: {keep: [X-Email]}", "X-Email", True, id="keep one default"),
    pytest.param("client_headers: {keep: [x-email]}", "X-Email", True, id="keep any case"),
    pytest.param("client_headers: {strip_defaults: false}", "X-Remote-User", True,
                 id="defaults off"),
    pytest.param("client_headers: {strip_defaults: false}", "X-User-Id", False,
                 id="defaults off still strips injected"),
    pytest.param("client_headers: {strip_defaults: false}", "X-Tenant", False,
                 id="defaults off still strips drop_headers"),
])
def test_the_list_is_extended_or_disabled_explicitly(client, extra, name, passes):
    assert (name.lower() in seen(client(extra + "\n").get("/b", headers={name: "v"}))) is passes


@pytest.mark.parametrize("extra, fragment", [
    pytest.param("client_headers: {trusted_proxies: [10.0.0.0/33]}", "not an address or CIDR",
                 id="bad CIDR"),
    pytest.param("client_headers: {keep: [X-Not-Default]}", "not in the default list",
                 id="keep outside the list"),
    pytest.param("client_headers: {strip: ['X Bad']}", "not a header name", id="bad name"),
    pytest.param("request_id: {trust_incoming: sometimes}", "trusted_proxies, always or never",
                 id="bad trust"),
])
def test_bad_settings_stop_start_up(tmp_path, extra, fragment):
    path = tmp_path / "gateway.yaml"
    path.write_text(extra + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value) and "gateway.yaml" in str(err.value)


@pytest.mark.parametrize("extra, peer, kept", [
    pytest.param("", "127.0.0.1", False, id="default: no trusted proxy, not kept"),
    pytest.param("client_headers: {trusted_proxies: [127.0.0.1]}", "127.0.0.1", True,
                 id="default: from a trusted proxy"),
    pytest.param("client_headers: {trusted_proxies: [10.0.0.1]}", "127.0.0.1", False,
                 id="default: from another peer"),
    pytest.param("request_id: {trust_incoming: always}", "192.0.2.1", True, id="always"),
    pytest.param("request_id: {trust_incoming: true}", "192.0.2.1", True, id="old true"),
    pytest.param("client_headers: {trusted_proxies: [127.0.0.1]}\n"
                 "request_id: {trust_incoming: never}", "127.0.0.1", False, id="never"),
])
def test_the_clients_request_id_is_kept_only_from_trusted_proxies(client, extra, peer, kept):
    response = client(extra + "\n").get("/b", headers={"X-Request-Id": "client-chosen"},
                                        environ_base={"REMOTE_ADDR": peer})
    assert (response.headers["X-Request-Id"] == "client-chosen") is kept


def _environ(**headers) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.9",
            **{f"HTTP_{k}": v for k, v in headers.items()}}


def test_the_remembered_names_strip_every_request_with_them():
    """The keys to drop are remembered per tuple of environ keys: the second request
    with the same names is stripped like the first; a trusted proxy's keeps its proxy
    headers; a peer of another trust is not answered from the first's memory."""
    from wsgi_gateway.mutate.strip import ClientHeaderStrip, TrustedProxies

    strip = ClientHeaderStrip(trusted=TrustedProxies(["10.0.0.1"])).seal()
    for _ in range(2):
        untrusted = _environ(X_USER="root", X_FORWARDED_FOR="1.2.3.4", ACCEPT="*/*")
        strip.apply(untrusted)
        assert set(untrusted) == {"REQUEST_METHOD", "PATH_INFO", "REMOTE_ADDR", "HTTP_ACCEPT"}
    trusted = {**_environ(X_USER="root", X_FORWARDED_FOR="1.2.3.4", ACCEPT="*/*"),
               "REMOTE_ADDR": "10.0.0.1"}
    strip.apply(trusted)
    assert "HTTP_X_USER" not in trusted and trusted["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_the_memory_of_names_is_bounded():
    from wsgi_gateway.mutate import strip as module

    strip = module.ClientHeaderStrip().seal()
    for i in range(module._REMEMBERED + 5):
        environ = _environ(**{f"X_NAME_{i}": "v", "X_USER": "root"})
        strip.apply(environ)
        assert "HTTP_X_USER" not in environ
    assert len(strip._doomed) <= module._REMEMBERED
    huge = _environ(**{"X_" + "A" * module._REMEMBERED_CHARS: "v", "X_USER": "root"})
    remembered = len(strip._doomed)
    strip.apply(huge)
    assert "HTTP_X_USER" not in huge and len(strip._doomed) == remembered  # stripped, not kept
