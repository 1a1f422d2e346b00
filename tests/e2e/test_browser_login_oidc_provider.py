"""Browser login against an OpenID Certified provider: npm's ``oidc-provider`` 8 under
Node (its own login and consent pages, PKCE required, refresh-token rotation,
RP-initiated and back-channel logout), with the gateway under gunicorn and memcached."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
import requests
import yaml
from joserfc.jwk import RSAKey

from tests.support.browser_login import CLIENT_ID, CLIENT_SECRET, ENV, NAV, ROUTES, SCRIPT
from tests.support.node_idp import NodeProvider, install
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.e2e
PK_ROUTES = "/.gateway/oidc-pk/"


class _Forms(HTMLParser):
    """The page's first form: its action and fields (hidden ones and named buttons)."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self._in_form = None, {}, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in_form = attrs.get("action"), True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _walk(http: requests.Session, response, gateway: str, fill: dict, limit: int = 6):
    """Submit the provider's pages (login, consent, logout) until back at the gateway."""
    for _ in range(limit):
        if response.url.startswith(gateway):
            return response
        forms = _Forms()
        forms.feed(response.text)
        assert forms.action, f"no form at {response.url}: {response.text[:300]}"
        data = {**forms.fields, **{k: v for k, v in fill.items() if k in forms.fields}}
        if 'name="logout"' in response.text:
            data["logout"] = "yes"
        action = requests.compat.urljoin(response.url, forms.action)
        response = http.post(action, data=data, timeout=10)
    raise AssertionError(f"still at the provider after {limit} pages: {response.url}")


@pytest.fixture
def provider_and_gateway(tmp_path, memcached):
    reason = install()
    if reason:
        print(f"\nSKIP oidc-provider tests: {reason}")
        pytest.skip(reason)
    path = tmp_path / "gw.yaml"
    gw = GatewayProcess(path, workers=2, env=ENV)
    key = RSAKey.generate_key(2048, parameters={"kid": "gw-pk", "use": "sig", "alg": "RS256"})
    (tmp_path / "client-key.pem").write_bytes(key.as_pem(private=True))
    node = NodeProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public=gw.url,
                        routes=ROUTES, access_ttl=70, extra={
                            "pk_client_id": "gw-pkjwt", "pk_redirect_uri": gw.url + PK_ROUTES + "callback",
                            "pk_jwks": {"keys": [key.as_dict(private=False)]}}).start()
    config = {
        "app": "contrib.demo.echo:app",
        "secret_key": {"env": "GW_BROWSER_SECRET_KEY"},
        "store": {"backend": "memcached", "servers": [memcached.address], "timeout": "250ms"},
        "providers": [{"name": "node", "issuer": node.issuer, "discovery": True,
                       "algorithms": ["RS256", "PS256", "ES256", "EdDSA"], "audiences": [CLIENT_ID]}],
        "apis": [{"name": "app", "path": "/app", "auth": [{
            "method": "oidc_login", "provider": "node", "client_id": CLIENT_ID,
            "client_secret": {"env": "GW_BROWSER_CLIENT_SECRET"}, "public_url": gw.url,
            "secure_cookies": False, "scopes": ["openid", "email", "profile"],
            "refresh_lead": "68s", "forward_access_token": True}]},
            {"name": "pk", "path": "/pk", "auth": [{
                "method": "oidc_login", "provider": "node", "client_id": "gw-pkjwt",
                "client_auth": "private_key_jwt", "private_key": {"file": "client-key.pem"},
                "public_url": gw.url, "secure_cookies": False, "routes": PK_ROUTES,
                "cookie_name": "gw-pk-session", "scopes": ["openid", "email"]}]}],
    }
    path.write_text(yaml.safe_dump(config))
    try:
        gw.start()
        yield node, gw
    finally:
        gw.stop()
        node.stop()


def _sign_in(gw, user: str = "alice", path: str = "/app/page?x=1"):
    http = requests.Session()
    http.headers.update(NAV)
    page = _walk(http, http.get(gw.url + path, timeout=10), gw.url,
                 {"login": user, "password": "any"})
    assert page.status_code == 200 and page.url == gw.url + path, page.text[:300]
    return http, page.json()


def test_sign_in_refresh_and_logout_against_oidc_provider(provider_and_gateway):
    node, gw = provider_and_gateway
    http, body = _sign_in(gw)
    assert body["gateway"]["identity"] == f"{CLIENT_ID}:alice"
    first = body["headers"]["Authorization"]
    time.sleep(2.5)  # inside the 68 s refresh lead of a 70 s access token
    again = http.get(gw.url + "/app/page", headers=SCRIPT, timeout=10)
    assert again.status_code == 200 and again.json()["headers"]["Authorization"] != first
    time.sleep(2.5)  # the rotated refresh token works too
    third = http.get(gw.url + "/app/page", headers=SCRIPT, timeout=10)
    assert third.status_code == 200 and third.json()["headers"]["Authorization"] != \
        again.json()["headers"]["Authorization"]
    # RP-initiated logout: the provider's confirmation page, then our logged-out page
    out = _walk(http, http.get(gw.url + ROUTES + "logout", timeout=10), gw.url, {})
    assert out.url == gw.url + ROUTES + "logged-out" and "Signed out" in out.text
    assert http.get(gw.url + "/app/page", headers=SCRIPT, timeout=10).status_code == 401


def test_back_channel_logout_from_oidc_provider(provider_and_gateway):
    node, gw = provider_and_gateway
    http, _ = _sign_in(gw)
    assert http.get(gw.url + "/app/page", headers=SCRIPT, timeout=10).status_code == 200
    # sign out at the provider directly: it posts a logout token to the gateway
    end = requests.get(node.issuer + "/.well-known/openid-configuration", timeout=5).json()["end_session_endpoint"]
    confirm = http.get(end, timeout=10)
    forms = _Forms()
    forms.feed(confirm.text)
    done = http.post(requests.compat.urljoin(confirm.url, forms.action),
                     data={**forms.fields, "logout": "yes"}, timeout=10)
    assert done.status_code == 200
    deadline = time.monotonic() + 5
    while "backchannel.success" not in node.log():
        assert "backchannel.error" not in node.log(), node.log()
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    time.sleep(1.1)  # every worker's copy expired
    assert http.get(gw.url + "/app/page", headers=SCRIPT, timeout=10).status_code == 401
    assert re.search(r"back-channel logout ended [1-9]", gw.log())


def test_private_key_jwt_client_authentication(provider_and_gateway):
    node, gw = provider_and_gateway
    http, body = _sign_in(gw, "carol", path="/pk/home")
    assert body["gateway"]["identity"] == "gw-pkjwt:carol"
    assert http.get(gw.url + "/pk/home", headers=SCRIPT, timeout=10).status_code == 200
