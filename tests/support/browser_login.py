"""Browser-login test harness: the test provider with a login client and user, a gateway
built in process on a fake clock, and a scripted "browser" (werkzeug's Client keeps the
gateway's cookies; the provider's login form is submitted over real HTTP)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from tests.support.idp import TestIdP
from wsgi_gateway import build_app, load_config

PUBLIC = "https://gw.test"
ROUTES = "/.gateway/oidc/"
CALLBACK = PUBLIC + ROUTES + "callback"
CLIENT_ID = "gw-browser"
CLIENT_SECRET = "browser-client-secret-0123456789"
SECRET_KEY = "a-test-secret-key-of-at-least-32-bytes!!"
OLD_SECRET_KEY = "an-older-secret-key-of-at-least-32-bytes"
NAV = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate",
       "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "none"}
SCRIPT = {"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
ENV = {"GW_BROWSER_CLIENT_SECRET": CLIENT_SECRET, "GW_BROWSER_SECRET_KEY": SECRET_KEY,
       "GW_BROWSER_OLD_SECRET_KEY": OLD_SECRET_KEY}


@dataclass
class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_idp(*, public: str = PUBLIC, clock=None) -> TestIdP:
    idp = TestIdP(issuer_path="/realms/login").start()
    idp.add_login_client(CLIENT_ID, CLIENT_SECRET, redirect_uris=[public + ROUTES + "callback"],
                         post_logout_redirect_uris=[public + ROUTES + "logged-out"],
                         backchannel_logout_uri=public + ROUTES + "backchannel-logout")
    idp.add_user("alice", "alice-password", name="Alice", email="alice@example.com",
                 groups=["admins"])
    idp.add_user("bob", "bob-password", name="Bob", email="bob@example.com", groups=[])
    if clock is not None:
        idp.clock = clock
    return idp


def gateway_config(idp: TestIdP, *, public: str = PUBLIC, store: dict | None = None,
                   options: dict | None = None, auth_extra: list | None = None,
                   previous_keys: bool = False, secret_key_env: str = "GW_BROWSER_SECRET_KEY",
                   rules: str | None = None, policies: dict | None = None,
                   extra_apis: list | None = None, routing: dict | None = None) -> dict:
    method = {"method": "oidc_login", "provider": "idp", "client_id": CLIENT_ID,
              "client_secret": {"env": "GW_BROWSER_CLIENT_SECRET"}, "public_url": public,
              "scopes": ["openid", "profile", "email", "offline_access"], **(options or {})}
    config = {
        "secret_key": {"env": secret_key_env},
        "store": store or {"backend": "memory"},
        "providers": [{"name": "idp", "issuer": idp.issuer, "discovery": True,
                       "algorithms": ["RS256"], "audiences": ["test-api"],
                       "jwks": {"timeout": "1s", "warmup": "3s"}}],
        "apis": [{"name": "app", "path": "/app", "auth": [*(auth_extra or []), method],
                  **({"rules": rules} if rules else {}),
                  **({"default_policy": next(iter(policies))} if policies else {})},
                 *(extra_apis or [])],
    }
    if routing:
        config["routing"] = routing
    if policies:
        config["policies"] = policies
    if previous_keys:
        config["previous_secret_keys"] = [{"env": "GW_BROWSER_OLD_SECRET_KEY"}]
    return config


@dataclass
class Browser:
    """A browser with its own cookie jar, speaking to one in-process gateway."""

    gateway: "LoginGateway"
    client: BufferedClient = None  # type: ignore[assignment]
    idp_http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self):
        if self.client is None:
            self.client = BufferedClient(LintMiddleware(self.gateway.app))

    def get(self, path: str, headers: dict | None = None, **kw):
        return self.client.get(path, base_url=self.gateway.public, headers=headers or NAV, **kw)

    def post(self, path: str, headers: dict | None = None, **kw):
        return self.client.post(path, base_url=self.gateway.public, headers=headers or {}, **kw)

    def cookie(self, name: str):
        found = self.client.get_cookie(name, domain=urlsplit(self.gateway.public).hostname)
        return found.value if found is not None else None

    def start(self, path: str = "/app/page") -> str:
        """The provider URL a navigation to ``path`` is sent to."""
        response = self.get(path)
        assert response.status_code == 302, response.get_data(as_text=True)
        return response.headers["Location"]

    def sign_in_at_idp(self, authorize_url: str, user: str = "alice",
                       password: str | None = None) -> str:
        """Submit the provider's login form; the callback URL it redirects to."""
        form = self.idp_http.get(authorize_url, timeout=5)
        assert form.status_code == 200 and "<form" in form.text, form.text
        params = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
        params = {k: v.replace("&amp;", "&") for k, v in params.items()}
        done = self.idp_http.post(authorize_url.split("?")[0], data={
            **params, "username": user, "password": password or f"{user}-password"},
            allow_redirects=False, timeout=5)
        assert done.status_code == 302, done.text
        return done.headers["Location"]

    def callback(self, url: str):
        parts = urlsplit(url)
        return self.get(parts.path + "?" + parts.query)

    def login(self, path: str = "/app/page", user: str = "alice"):
        """Navigate, sign in, follow back; the final response."""
        back = self.callback(self.sign_in_at_idp(self.start(path), user))
        assert back.status_code == 303, back.get_data(as_text=True)
        return self.get(back.headers["Location"])


class LoginGateway:
    """An in-process gateway with browser login, on a fake clock shared with the provider."""

    def __init__(self, tmp_path, idp: TestIdP, clock: FakeClock, *, store=None,
                 public: str = PUBLIC, name: str = "gw", **config_kw):
        self.idp, self.clock, self.public = idp, clock, public
        self.config = gateway_config(idp, public=public, **config_kw)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(self.config))
        self.upstream = Recorder()
        self.app = build_app(load_config(path), self.upstream, clock=clock, store=store)
        self.app.warm()
        self.flow = next(iter(self.app.resources["oidc_login_flows"].values()))
        self.flow.sleep = lambda s: clock.advance(s)

    def browser(self) -> Browser:
        return Browser(self)

    @property
    def identity(self):
        return self.upstream.environ["wsgi_gateway.context"].identity

    def upstream_header(self, name: str):
        key = "HTTP_" + name.upper().replace("-", "_")
        return self.upstream.environ.get(key)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def problem(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json", response.headers
    return json.loads(response.get_data())


# -- over real HTTP (gunicorn) ----------------------------------------------------------------

def e2e_config(idp: TestIdP, public: str, *, memcached: str | None, options: dict | None = None) -> str:
    """A gateway config file (YAML text) for ``wsgi-gateway serve`` behind ``public``."""
    store = {"backend": "memcached", "servers": [memcached], "timeout": "250ms"} if memcached \
        else {"backend": "memory"}
    config = gateway_config(idp, public=public, store=store,
                            options={"secure_cookies": False, **(options or {})})
    config["app"] = "contrib.demo.echo:app"
    return yaml.safe_dump(config)


def http_sign_in(public: str, user: str = "alice", path: str = "/app/page") -> requests.Session:
    """Sign in with plain HTTP requests (as a browser would, minus JavaScript)."""
    http = requests.Session()
    first = http.get(public + path, headers=NAV, allow_redirects=False, timeout=5)
    assert first.status_code == 302, first.text
    form = http.get(first.headers["Location"], timeout=5)
    params = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
    params = {k: v.replace("&amp;", "&") for k, v in params.items()}
    done = http.post(first.headers["Location"].split("?")[0],
                     data={**params, "username": user, "password": f"{user}-password"},
                     allow_redirects=False, timeout=5)
    back = http.get(done.headers["Location"], headers=NAV, allow_redirects=False, timeout=5)
    assert back.status_code == 303, back.text
    return http
