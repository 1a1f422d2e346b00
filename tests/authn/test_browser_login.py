"""Browser login (``oidc_login``) in process: a real provider over HTTP, the gateway on a
fake clock, a scripted browser. Each security property has its attack here; the
``*_mutant`` tests in test_browser_login_mutants.py show each check can fail."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, urlsplit

import pytest
import yaml

from tests.support.browser_login import (
    CALLBACK, CLIENT_ID, ENV, NAV, PUBLIC, ROUTES, SCRIPT, FakeClock, LoginGateway, make_idp,
    problem, query,
)
from wsgi_gateway.authn.oidc_login.browser import safe_return_to


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def idp(clock):
    provider = make_idp(clock=clock)
    yield provider
    provider.stop()


@pytest.fixture
def gw(tmp_path, idp, clock):
    return LoginGateway(tmp_path, idp, clock)


# -- the flow ---------------------------------------------------------------------------

def test_navigation_goes_to_the_provider_with_code_pkce_state_and_nonce(gw, idp):
    url = gw.browser().start("/app/page")
    assert url.startswith(idp.url("/authorize?"))
    params = query(url)
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(base64.urlsafe_b64decode(params["code_challenge"] + "=")) == 32
    assert len(params["state"]) >= 22 and len(params["nonce"]) >= 22  # ≥ 128 bits each
    assert "openid" in params["scope"].split()
    assert params["redirect_uri"] == CALLBACK and params["client_id"] == CLIENT_ID


def test_sign_in_returns_to_the_original_path_with_the_identity_upstream(gw):
    browser = gw.browser()
    page = browser.login("/app/reports?month=11")
    assert page.status_code == 200
    assert gw.upstream.environ["PATH_INFO"] == "/app/reports"
    assert gw.upstream.environ["QUERY_STRING"] == "month=11"
    identity = gw.identity
    assert (identity.method, identity.subject, identity.claims["email"]) == \
        ("oidc_login", "alice", "alice@example.com")
    # the session cookie never reaches the upstream, nor does any token
    assert "gw-session" not in (gw.upstream.environ.get("HTTP_COOKIE") or "")
    assert "HTTP_AUTHORIZATION" not in gw.upstream.environ


def test_the_session_cookie_is_a_random_handle_with_safe_attributes(gw):
    browser = gw.browser()
    authorize = browser.start()
    back = browser.callback(browser.sign_in_at_idp(authorize))
    cookies = back.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("__Host-gw-session="))
    value = session.split(";")[0].split("=", 1)[1]
    assert len(base64.urlsafe_b64decode(value + "=")) >= 32 and "." not in value  # ≥ 256 bits, no JWT
    attributes = {a.strip().split("=")[0].lower() for a in session.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite"} <= attributes
    assert "SameSite=Lax" in session and "Path=/" in session and "Domain" not in session
    assert back.headers["Location"] == PUBLIC + "/app/page"


def test_the_store_holds_no_handle_and_no_plain_token(gw, idp):
    browser = gw.browser()
    browser.login()
    handle = browser.cookie("__Host-gw-session")
    store = gw.app.store
    items = {k: _readable(e.value) for k, e in store._items.items()}  # the memory store's table
    refresh = next(iter(idp.login.refresh))
    assert not any(handle in k or handle.encode() in v for k, v in items.items())
    assert not any(refresh.encode() in v for v in items.values())
    assert not any(b"eyJ" in v for v in items.values())  # no JWT (access or ID token) in clear


def _readable(value: bytes) -> bytes:
    """The value plus every base64 string inside it, decoded (what a thief could read)."""
    out = [value]
    try:
        record = json.loads(value)
    except ValueError:
        return value
    for member in (record.values() if isinstance(record, dict) else []):
        if isinstance(member, str):
            try:
                out.append(base64.b64decode(member, validate=True))
            except ValueError:
                pass
    return b"\n".join(out)


@pytest.mark.parametrize("headers", [
    pytest.param(SCRIPT, id="fetch (Sec-Fetch-Mode cors)"),
    pytest.param({"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, id="X-Requested-With"),
    pytest.param({"Accept": "application/json"}, id="API client (no text/html)"),
    pytest.param({"Accept": "*/*"}, id="curl default Accept"),
    pytest.param({**NAV, "Sec-Fetch-Dest": "image"}, id="an image load"),
    pytest.param({**NAV, "Sec-Fetch-Dest": "iframe"}, id="a framed page"),
])
def test_scripts_get_401_not_a_redirect(gw, headers):
    response = gw.browser().get("/app/data", headers=headers)
    assert response.status_code == 401
    assert problem(response)["status"] == 401
    assert "Location" not in response.headers
    # RFC 9110 §11.6.1: every 401 carries a challenge (there was none)
    assert response.headers.getlist("WWW-Authenticate") == [
        'Cookie realm="app", form-action="/.gateway/oidc/login", cookie-name="__Host-gw-session"']


def test_script_header_option_forces_401(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"script_header": "X-Api-Call"})
    assert gw.browser().get("/app/x", headers={**NAV, "X-Api-Call": "1"}).status_code == 401


def test_a_post_without_a_session_gets_401(gw):
    assert gw.browser().post("/app/x", headers={"Accept": "text/html"}).status_code == 401


# -- return-to: never an open redirect -------------------------------------------------

@pytest.mark.parametrize("target, expected", [
    pytest.param("/app/x?y=1", "/app/x?y=1", id="a local path"),
    pytest.param("//evil.example/x", "/", id="//host"),
    pytest.param("/\\evil.example", "/", id="/\\host"),
    pytest.param("\\\\evil.example", "/", id="\\\\host"),
    pytest.param("https:evil.example", "/", id="https:host"),
    pytest.param("https://evil.example/", "/", id="absolute other origin"),
    pytest.param("http://gw.test/app", "/", id="our host over http"),
    pytest.param("javascript:alert(1)", "/", id="javascript:"),
    pytest.param("/%2F%2Fevil.example", "/", id="encoded //"),
    pytest.param("/%252F%252Fevil.example", "/", id="double-encoded //"),
    pytest.param("/%5Cevil.example", "/", id="encoded backslash"),
    pytest.param("/\t/evil.example", "/", id="tab inside //"),
    pytest.param(" //evil.example", "/", id="leading space"),
    pytest.param("/x\r\nSet-Cookie: a=b", "/", id="header injection"),
    pytest.param("/%0d%0aSet-Cookie:a=b", "/", id="encoded CRLF"),
    pytest.param("", "/", id="empty"),
    pytest.param("/" + "a" * 5000, "/", id="too long"),
    pytest.param("https://gw.test/app?x=1", "https://gw.test/app?x=1", id="absolute on our origin"),
    pytest.param("https://docs.gw.test/p", "https://docs.gw.test/p", id="an allowed origin"),
    pytest.param("https://docs.gw.test//evil.example", "/", id="allowed origin then //"),
    # a browser reads "\\" as "/": host evil.example, path /@gw.test (urlsplit: host gw.test)
    pytest.param("https://evil.example\\@gw.test", "/", id="backslash before @ our host"),
    pytest.param("https://evil.example\\@gw.test/x", "/", id="backslash before @ our host, path"),
    pytest.param("https://evil.example%5C@gw.test/", "/", id="encoded backslash in userinfo"),
    pytest.param("https://user@gw.test/x", "/", id="userinfo on our host"),
    pytest.param("https://[::1/x", "/", id="unclosed IPv6 host"),
    pytest.param("HTTPS://GW.TEST/x", "https://gw.test/x", id="our origin in capitals: rebuilt"),
])
def test_return_to_is_never_an_open_redirect(target, expected):
    assert safe_return_to(target, PUBLIC, ["https://docs.gw.test"]) == expected


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https:evil.example",
                                    "/%2F%2Fevil.example", "https://evil.example\\@gw.test/x"])
def test_the_login_route_sends_hostile_return_to_home(gw, target):
    browser = gw.browser()
    authorize = browser.get(ROUTES + "login", query_string={"return_to": target}).headers["Location"]
    back = browser.callback(browser.sign_in_at_idp(authorize))
    assert back.status_code == 303 and back.headers["Location"] == PUBLIC + "/"


# -- callbacks that must not become sessions -------------------------------------------

def _signed_in_callback(gw):
    browser = gw.browser()
    return browser, browser.sign_in_at_idp(browser.start())


def _no_session(response):
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "text/html" in response.headers["Content-Type"]
    assert not any(c.startswith("__Host-gw-session=") and "Max-Age=0" not in c
                   for c in response.headers.getlist("Set-Cookie"))


def test_an_altered_state_is_refused(gw):
    browser, url = _signed_in_callback(gw)
    _no_session(browser.callback(url.replace("state=", "state=x")))


def test_a_replayed_callback_is_refused(gw):
    browser, url = _signed_in_callback(gw)
    login_cookie = browser.cookie("__Host-gw-login")
    assert browser.callback(url).status_code == 303
    # even with the pre-login cookie it had (a double submit, or a thief holding both)
    browser.client.set_cookie("__Host-gw-login", login_cookie, domain="gw.test")
    _no_session(browser.callback(url))


def test_a_callback_opened_in_another_browser_is_refused(gw):
    _, url = _signed_in_callback(gw)
    response = gw.browser().callback(url)
    _no_session(response)
    assert "another browser" in response.get_data(as_text=True)


def test_a_callback_naming_another_issuer_is_refused_before_the_code_is_used(gw, idp):
    """RFC 9207 mix-up defence: the response's ``iss`` must be the provider's."""
    browser, url = _signed_in_callback(gw)
    assert f"iss={quote(idp.issuer, safe='')}" in url  # the test provider names itself
    hostile = url.replace(f"iss={quote(idp.issuer, safe='')}", "iss=https%3A%2F%2Fevil.example")
    exchanged = idp.login.counts["code"]
    response = browser.callback(hostile)
    _no_session(response)
    assert "another issuer" in response.get_data(as_text=True)
    assert idp.login.counts["code"] == exchanged  # the code never reached the token endpoint


def test_an_error_response_naming_another_issuer_is_refused_as_such(gw):
    browser = gw.browser()
    state = query(browser.start())["state"]
    response = browser.get(ROUTES + "callback", query_string={
        "state": state, "error": "access_denied", "iss": "https://evil.example"})
    _no_session(response)
    assert "another issuer" in response.get_data(as_text=True)


def test_a_callback_without_iss_is_refused_when_the_provider_promises_it(tmp_path, idp, clock):
    idp.discovery_overrides["authorization_response_iss_parameter_supported"] = True
    browser, url = _signed_in_callback(LoginGateway(tmp_path, idp, clock))  # discovered now
    response = browser.callback(re.sub(r"&?iss=[^&]*", "", url))
    _no_session(response)
    assert "does not name its issuer" in response.get_data(as_text=True)


def test_a_callback_without_iss_is_accepted_from_a_provider_that_does_not_promise_it(gw):
    browser, url = _signed_in_callback(gw)
    assert browser.callback(re.sub(r"&?iss=[^&]*", "", url)).status_code == 303


def test_a_late_callback_is_refused(gw, clock):
    browser = gw.browser()
    authorize = browser.start()
    clock.advance(601)  # the login started more than pending_ttl ago; the code itself is fresh
    _no_session(browser.callback(browser.sign_in_at_idp(authorize)))


def test_a_provider_error_is_a_page_not_a_session(gw):
    browser = gw.browser()
    state = query(browser.start())["state"]
    response = browser.get(ROUTES + "callback", query_string={"state": state, "error": "access_denied"})
    _no_session(response)
    assert "access_denied" in response.get_data(as_text=True)


def test_a_code_without_its_verifier_is_refused_by_the_provider(gw, idp):
    # the provider checks PKCE: a code redeemed with another verifier fails (no session)
    browser, url = _signed_in_callback(gw)
    flow = gw.flow
    real = flow.client.exchange
    flow.client.exchange = lambda code, verifier, redirect_uri: real(code, verifier="x" * 50,
                                                                      redirect_uri=redirect_uri)
    _no_session(browser.callback(url))


def test_starting_many_logins_keeps_the_cookie_small_and_evicts_the_oldest(gw):
    browser = gw.browser()
    first = browser.start()
    for _ in range(30):
        last = browser.start()
    login_cookie = browser.cookie("__Host-gw-login")
    assert len(login_cookie.split(".")) == 3 and len(login_cookie) < 100
    _no_session(browser.callback(browser.sign_in_at_idp(first)))
    assert browser.callback(browser.sign_in_at_idp(last)).status_code == 303


# -- ID token checks --------------------------------------------------------------------

@pytest.mark.parametrize("override", [
    pytest.param({"aud": "another-client"}, id="aud is another client"),
    pytest.param({"aud": [CLIENT_ID, "other"], "azp": "other"}, id="azp is another party"),
    pytest.param({"aud": [CLIENT_ID, "other"], "azp": None}, id="several audiences, no azp"),
    pytest.param({"iss": "https://evil.example"}, id="another issuer"),
    pytest.param({"exp": 1}, id="expired"),
    pytest.param({"iat": 4_000_000_000}, id="issued in the future"),
    pytest.param({"iat": 1_000_000_000}, id="issued long ago"),
    pytest.param({"sub": ""}, id="no subject"),
])
def test_a_bad_id_token_is_refused(gw, idp, override):
    idp.login.id_token_overrides = override
    browser, url = _signed_in_callback(gw)
    _no_session(browser.callback(url))


@pytest.mark.parametrize("override, accepted", [
    pytest.param({}, True, id="auth_time now"),
    pytest.param({"auth_time": -59}, True, id="59 s ago"),
    pytest.param({"auth_time": -600}, False, id="10 minutes ago"),
    pytest.param({"auth_time": None}, False, id="no auth_time"),
    pytest.param({"auth_time": True}, False, id="a boolean auth_time"),
])
def test_max_age_needs_a_recent_auth_time(tmp_path, idp, clock, override, accepted):
    """OIDC Core §3.1.3.7: with max_age asked, an ID token without auth_time, or with one
    older than max_age, is refused."""
    if isinstance(override.get("auth_time"), int) and not isinstance(override["auth_time"], bool):
        override = {"auth_time": int(clock()) + override["auth_time"]}
    idp.login.id_token_overrides = override
    gw = LoginGateway(tmp_path, idp, clock, options={"extra_params": {"max_age": "60"}})
    browser = gw.browser()
    authorize = browser.start()
    assert query(authorize)["max_age"] == "60"
    response = browser.callback(browser.sign_in_at_idp(authorize))
    if accepted:
        assert response.status_code == 303
    else:
        _no_session(response)


def test_auth_time_is_not_required_without_max_age(gw, idp):
    idp.login.id_token_overrides = {"auth_time": None}
    browser, url = _signed_in_callback(gw)
    assert browser.callback(url).status_code == 303


def test_a_max_age_that_is_not_whole_seconds_stops_start_up(tmp_path, idp):
    from tests.support.browser_login import gateway_config
    from wsgi_gateway import load_config
    from wsgi_gateway.errors import ConfigError

    path = tmp_path / "gw.yaml"
    for bad in ("1h", "²", "١٢", "-1", ""):
        path.write_text(yaml.safe_dump(gateway_config(idp, options={"extra_params": {"max_age": bad}})))
        with pytest.raises(ConfigError, match="max_age must be whole seconds"):
            load_config(path)


def test_a_wrong_nonce_is_refused(gw, idp):
    idp.login.wrong_nonce = True
    browser, url = _signed_in_callback(gw)
    _no_session(browser.callback(url))


def test_an_id_token_signed_by_an_unknown_key_is_refused(gw, idp):
    idp.signing_kid = idp.add_key("RS256", publish=False, fresh=True)
    browser, url = _signed_in_callback(gw)
    _no_session(browser.callback(url))


# -- sessions -----------------------------------------------------------------------------

def test_every_login_gets_a_new_handle_and_the_old_one_dies(gw):
    browser = gw.browser()
    browser.login()
    first = browser.cookie("__Host-gw-session")
    again = browser.get(ROUTES + "login", query_string={"return_to": "/app/page"}).headers["Location"]
    assert browser.callback(browser.sign_in_at_idp(again)).status_code == 303
    second = browser.cookie("__Host-gw-session")
    assert first != second
    stale = gw.browser()
    stale.client.set_cookie("__Host-gw-session", first, domain="gw.test")
    assert stale.get("/app/x").status_code == 302  # unknown handle: starts fresh


def test_an_unknown_handle_starts_fresh(gw):
    browser = gw.browser()
    browser.client.set_cookie("__Host-gw-session", "A" * 43, domain="gw.test")
    assert browser.get("/app/x").status_code == 302
    assert browser.get("/app/x", headers=SCRIPT).status_code == 401


@pytest.mark.parametrize("advance, alive", [
    pytest.param(3600, True, id="used within the idle timeout"),
    pytest.param(8 * 3600 + 10, False, id="idle too long"),
])
def test_idle_timeout(gw, clock, idp, advance, alive):
    idp.token_ttl = 100_000  # no refresh in the way
    browser = gw.browser()
    browser.login()
    clock.advance(advance)
    assert (browser.get("/app/x", headers=SCRIPT).status_code == 200) is alive


def test_absolute_timeout(gw, clock, idp):
    idp.token_ttl = 200_000
    browser = gw.browser()
    browser.login()
    for _ in range(25):  # used every hour: never idle, but 24 h is the limit
        clock.advance(3600)
        last = browser.get("/app/x", headers=SCRIPT).status_code
    assert last == 401


def test_a_rotated_secret_key_still_opens_old_sessions(tmp_path, idp, clock, monkeypatch):
    store_kw = {}
    old = LoginGateway(tmp_path, idp, clock, name="old", secret_key_env="GW_BROWSER_OLD_SECRET_KEY")
    browser = old.browser()
    browser.login()
    new = LoginGateway(tmp_path, idp, clock, name="new", previous_keys=True, store=old.app.store,
                       **store_kw)
    moved = new.browser()
    moved.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    assert moved.get("/app/x", headers=SCRIPT).status_code == 200
    without = LoginGateway(tmp_path, idp, clock, name="without", store=old.app.store)
    gone = without.browser()
    gone.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    assert gone.get("/app/x", headers=SCRIPT).status_code == 401


# -- cross-site requests ---------------------------------------------------------------------

@pytest.mark.parametrize("headers, status", [
    pytest.param({"Origin": PUBLIC}, 200, id="same origin"),
    pytest.param({"Referer": PUBLIC + "/app/form"}, 200, id="same-origin Referer, no Origin"),
    pytest.param({"Origin": "https://evil.example"}, 403, id="another origin"),
    pytest.param({"Origin": "null"}, 403, id="null origin"),
    pytest.param({"Origin": "https://gw.test.evil.example"}, 403, id="suffix trick"),
    pytest.param({"Origin": "http://gw.test"}, 403, id="same host over http"),
    pytest.param({}, 403, id="neither Origin nor Referer"),
    pytest.param({"Origin": "https://partner.example"}, 200, id="an allowed origin"),
])
def test_unsafe_methods_need_a_same_origin_request(tmp_path, idp, clock, headers, status):
    gw = LoginGateway(tmp_path, idp, clock, options={"allowed_origins": ["https://partner.example"]})
    browser = gw.browser()
    browser.login()
    calls = gw.upstream.calls
    response = browser.post("/app/orders", headers={"Accept": "application/json", **headers})
    assert response.status_code == status
    assert gw.upstream.calls == calls + (status == 200)


# -- refresh -----------------------------------------------------------------------------------

def test_the_access_token_is_refreshed_before_it_expires_and_rotation_is_followed(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"forward_access_token": True})
    browser = gw.browser()
    browser.login()
    first = gw.upstream_header("Authorization")
    for _ in range(3):
        clock.advance(idp.token_ttl - 30)  # inside the 60 s lead
        assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert idp.login.counts["refresh"] == 3 and idp.login.counts["refresh_reused"] == 0
    assert gw.upstream_header("Authorization") != first
    assert gw.identity.subject == "alice"


def test_an_expires_in_sent_as_text_still_schedules_the_refresh(gw, idp, clock):
    """``"expires_in": "300"`` (a string, as some providers send it) was read as no
    expiry: the session kept its access token forever and never refreshed."""
    idp.login.expires_in_as_text = True
    browser = gw.browser()
    browser.login()
    clock.advance(idp.token_ttl - 30)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert idp.login.counts["refresh"] == 1


@pytest.mark.parametrize("sent, seconds", [
    (300, 300.0), (300.5, 300.5), ("300", 300.0), (" 300 ", 300.0), ("300.0", 300.0),
    (-5, 0.0), ("-5", 0.0),                    # already expired: refresh now
    (None, None), (True, None), ("soon", None), ("²", None), ("1e3", None),
    (float("inf"), None), (float("nan"), None), ("9" * 40, None),
])
def test_expires_in_is_read_as_seconds(sent, seconds):
    from wsgi_gateway.authn.oidc_login.client import _seconds
    assert _seconds(sent) == seconds


def test_a_still_fresh_token_is_not_refreshed(gw, idp, clock):
    browser = gw.browser()
    browser.login()
    clock.advance(idp.token_ttl - 120)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert idp.login.counts["refresh"] == 0


@pytest.mark.parametrize("headers, status", [
    pytest.param(NAV, 302, id="navigation: sign in again"),
    pytest.param(SCRIPT, 401, id="script: 401"),
])
def test_a_refused_refresh_ends_the_session_cleanly(gw, idp, clock, headers, status):
    browser = gw.browser()
    browser.login()
    idp.login.refuse_refresh = True
    clock.advance(idp.token_ttl + 1)
    assert browser.get("/app/x", headers=headers).status_code == status
    idp.login.refuse_refresh = False
    assert browser.get("/app/x", headers=SCRIPT).status_code == 401  # it stays ended


def test_a_provider_outage_keeps_a_valid_token_and_503s_an_expired_one(gw, idp, clock):
    browser = gw.browser()
    browser.login()
    idp.set_status(503, paths=["/token"])
    clock.advance(idp.token_ttl - 30)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    clock.advance(60)
    response = browser.get("/app/x", headers=SCRIPT)
    assert response.status_code == 503 and problem(response)["status"] == 503
    idp.set_status(None)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200


def test_a_request_waits_for_another_workers_refresh(gw, idp, clock):
    browser = gw.browser()
    browser.login()
    session = gw.flow.sessions.load(browser.cookie("__Host-gw-session"))
    clock.advance(idp.token_ttl + 1)
    assert gw.flow.sessions.take_lease(session, 10)  # "another worker" holds the lease
    response = browser.get("/app/x", headers=SCRIPT)
    assert response.status_code == 503  # it waited refresh_wait, then gave up without refreshing
    assert idp.login.counts["refresh"] == 0
    gw.flow.sessions.release_lease(session)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert idp.login.counts["refresh"] == 1


# -- logout ------------------------------------------------------------------------------------

def test_logout_kills_the_cookie_everywhere_and_ends_the_provider_session(gw, idp, clock):
    browser = gw.browser()
    browser.login()
    handle = browser.cookie("__Host-gw-session")
    copy = gw.browser()
    copy.client.set_cookie("__Host-gw-session", handle, domain="gw.test")
    assert copy.get("/app/x", headers=SCRIPT).status_code == 200
    out = browser.get(ROUTES + "logout", headers={**NAV, "Sec-Fetch-Site": "same-origin"})
    assert out.status_code == 303
    location = out.headers["Location"]
    assert location.startswith(idp.url("/logout?"))
    params = query(location)
    assert params["post_logout_redirect_uri"] == PUBLIC + ROUTES + "logged-out"
    assert params["id_token_hint"].count(".") == 2
    clock.advance(1.01)  # past every worker's copy
    assert copy.get("/app/x", headers=SCRIPT).status_code == 401
    assert copy.get("/app/x").status_code == 302
    landing = browser.get(urlsplit(params["post_logout_redirect_uri"]).path)
    assert landing.status_code == 200 and "Signed out" in landing.get_data(as_text=True)


def test_a_cross_site_logout_is_refused(gw):
    browser = gw.browser()
    browser.login()
    response = browser.get(ROUTES + "logout", headers={**NAV, "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200


def test_logout_can_revoke_the_refresh_token(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"revoke_on_logout": True})
    browser = gw.browser()
    browser.login()
    browser.post(ROUTES + "logout", headers={"Origin": PUBLIC})
    assert idp.login.counts["revoked"] == 1 and idp.login.revoked_families


def _post_logout_token(gw, token):
    return gw.browser().post(ROUTES + "backchannel-logout", data={"logout_token": token},
                             headers={"Content-Type": "application/x-www-form-urlencoded"})


@pytest.mark.parametrize("by", ["sid", "sub"])
def test_back_channel_logout_ends_every_session_of_that_sid_or_sub(gw, idp, clock, by):
    browsers = [gw.browser(), gw.browser()]
    for b in browsers:
        b.login()
    bob = gw.browser()
    bob.login(user="bob")
    sid = idp.sid_of("alice")
    token = idp.logout_token(CLIENT_ID, **({"sid": sid} if by == "sid" else {"sub": "alice"}))
    assert _post_logout_token(gw, token).status_code == 200
    clock.advance(1.01)
    statuses = [b.get("/app/x", headers=SCRIPT).status_code for b in browsers]
    assert statuses == ([200, 401] if by == "sid" else [401, 401])
    assert bob.get("/app/x", headers=SCRIPT).status_code == 200


@pytest.mark.parametrize("overrides", [
    pytest.param({"aud": "another-client"}, id="another audience"),
    pytest.param({"events": {}}, id="no logout event"),
    pytest.param({"nonce": "n"}, id="carries a nonce"),
    pytest.param({"iss": "https://evil.example"}, id="another issuer"),
    pytest.param({"jti": None}, id="no jti"),
])
def test_a_bad_logout_token_is_refused_and_ends_nothing(gw, idp, clock, overrides):
    browser = gw.browser()
    browser.login()
    token = idp.logout_token(CLIENT_ID, sub="alice", **overrides)
    assert _post_logout_token(gw, token).status_code == 400
    clock.advance(1.01)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200


def test_a_forged_logout_token_is_refused(gw, idp, clock):
    browser = gw.browser()
    browser.login()
    idp.signing_kid = idp.add_key("RS256", publish=False, fresh=True)
    assert _post_logout_token(gw, idp.logout_token(CLIENT_ID, sub="alice")).status_code == 400
    clock.advance(1.01)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200


# -- identity, rules, bearer tokens side by side ------------------------------------------------

def test_bearer_tokens_and_browser_sessions_on_one_api(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, auth_extra=[{"method": "jwt"}])
    token = idp.issue({"sub": "robot"}, now=int(clock()))
    api = gw.browser().get("/app/x", headers={"Authorization": f"Bearer {token}", **SCRIPT})
    assert api.status_code == 200 and gw.identity.subject == "robot"
    browser = gw.browser()
    browser.login()
    assert gw.identity.method == "oidc_login"
    assert gw.browser().get("/app/x").status_code == 302  # nobody: a person is sent to sign in


def test_a_refused_credential_names_its_error_in_the_bearer_challenge_only(tmp_path, idp, clock):
    rules = tmp_path / "rules.yaml"
    rules.write_text("validate:\n  - {expr: \"claims.sub == 'somebody else'\", message: not you}\n")
    gw = LoginGateway(tmp_path, idp, clock, auth_extra=[{"method": "jwt"}], rules=str(rules))
    browser = gw.browser()
    browser.login()
    bad = browser.get("/app/x", headers=SCRIPT)  # the session is valid, the rules say 401
    assert bad.status_code == 401
    bearer, cookie = bad.headers.getlist("WWW-Authenticate")
    assert bearer.startswith("Bearer ") and 'error="invalid_token"' in bearer
    assert cookie == ('Cookie realm="app", form-action="/.gateway/oidc/login", '
                      'cookie-name="__Host-gw-session"')


def test_rules_see_the_id_token_claims(tmp_path, idp, clock):
    rules = tmp_path / "rules.yaml"
    rules.write_text("deny:\n  - name: admins only\n"
                     "    when: \"!('admins' in claims.groups)\"\n    reason: admins only\n")
    gw = LoginGateway(tmp_path, idp, clock, rules=str(rules))
    alice, bob = gw.browser(), gw.browser()
    assert alice.login().status_code == 200
    back = bob.callback(bob.sign_in_at_idp(bob.start(), "bob"))
    assert bob.get(back.headers["Location"]).status_code == 403


def test_ready_reports_a_provider_without_discovery(tmp_path, idp, clock):
    idp.set_status(500, paths=["/.well-known/openid-configuration"])
    gw = LoginGateway(tmp_path, idp, clock)
    ready = gw.browser().get("/.gateway/ready", headers=SCRIPT)
    assert ready.status_code == 503 and b"discovery" in ready.get_data()
    response = gw.browser().get("/app/x")
    assert response.status_code == 503 and "text/html" in response.headers["Content-Type"]
    count = idp.requests_count("/.well-known/openid-configuration")
    gw.browser().get("/app/x")
    assert idp.requests_count("/.well-known/openid-configuration") == count  # no retry storm
    idp.set_status(None)
    clock.advance(5.1)
    assert gw.browser().get("/app/x").status_code == 302
    assert gw.browser().get("/.gateway/ready", headers=SCRIPT).status_code == 200


def test_config_needs_a_secret_key(tmp_path, idp, monkeypatch):
    from tests.support.browser_login import gateway_config
    import yaml
    from wsgi_gateway import build_app, load_config
    from wsgi_gateway.errors import ConfigError

    config = gateway_config(idp)
    del config["secret_key"]
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="secret_key"):
        build_app(load_config(path), lambda e, s: [])


def test_a_copy_read_before_logout_never_resurrects_the_session(tmp_path, idp, clock):
    options = {"touch_interval": "500ms"}
    a = LoginGateway(tmp_path, idp, clock, name="a", options=options)
    b = LoginGateway(tmp_path, idp, clock, name="b", options=options, store=a.app.store)
    browser = a.browser()
    browser.login()
    on_b = b.browser()
    on_b.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    assert on_b.post(ROUTES + "logout", headers={"Origin": PUBLIC}).status_code == 303
    clock.advance(0.6)  # a's copy is still fresh and its last use is due to be written
    browser.get("/app/x", headers=SCRIPT)
    clock.advance(0.5)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 401


def _session_entry(gw):
    store = gw.app.store
    key = next(k for k in store._items if ":s:" in k and not k.endswith(":lease"))
    return store, key


def test_a_session_record_edited_in_the_store_is_refused(gw, clock):
    browser = gw.browser()
    browser.login(user="bob")
    store, key = _session_entry(gw)
    entry = store._items[key]
    try:  # what a writer to memcached would try: make bob an admin
        record = json.loads(entry.value)
        record["claims"]["groups"] = ["admins"]
        edited = json.dumps(record).encode()
    except ValueError:
        edited = entry.value[:-1] + bytes([entry.value[-1] ^ 1])
    store._items[key] = entry._replace(value=edited)
    clock.advance(1.01)  # past the worker's copy
    response = browser.get("/app/x", headers=SCRIPT)
    assert response.status_code == 401
    assert gw.identity is None or "admins" not in (gw.identity.claims.get("groups") or [])


def test_a_sealed_record_copied_under_another_name_does_not_open(gw, clock):
    alice, bob = gw.browser(), gw.browser()
    alice.login()
    bob.login(user="bob")
    store = gw.app.store
    keys = [k for k in store._items if ":s:" in k and not k.endswith(":lease")]
    values = {k: store._items[k] for k in keys}
    store._items[keys[1]] = values[keys[1]]._replace(value=values[keys[0]].value)
    store._items[keys[0]] = values[keys[0]]._replace(value=values[keys[1]].value)
    clock.advance(1.01)
    assert [b.get("/app/x", headers=SCRIPT).status_code for b in (alice, bob)] == [401, 401]


def test_userinfo_is_merged_under_the_id_token_claims(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"userinfo": True})
    gw.browser().login()
    assert gw.identity.claims["userinfo_only"] == "from-userinfo"
    assert gw.identity.claims["sub"] == "alice"


def test_forwarding_is_off_by_default_and_a_client_authorization_never_passes(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"forward_access_token": True})
    browser = gw.browser()
    browser.login()
    browser.get("/app/x", headers={**SCRIPT, "Authorization": "Bearer forged"})
    assert gw.upstream_header("Authorization") != "Bearer forged"
    assert gw.upstream_header("Authorization").count(".") == 2


@pytest.mark.parametrize("options, message", [
    pytest.param({"public_url": "http://gw.example"}, "https", id="plain http off loopback"),
    pytest.param({"public_url": "https://gw.test/app"}, "origin", id="public_url with a path"),
    pytest.param({"client_secret": None}, "client_secret", id="no client secret"),
    pytest.param({"client_auth": "private_key_jwt"}, "private_key", id="private_key_jwt without a key"),
    pytest.param({"pending_max": 50}, "pending_max", id="too many pending logins"),
    pytest.param({"cache_ttl": "5s"}, "cache_ttl", id="worker copy longer than a second"),
    pytest.param({"session_idle": "2d"}, "session_idle", id="idle above absolute"),
    pytest.param({"session_idle": "10m", "touch_interval": "10m"}, "touch_interval",
                 id="last use written no more often than the idle timeout"),
    pytest.param({"extra_params": {"state": "x"}}, "extra_params", id="extra_params sets state"),
    pytest.param({"extra_params": {"code_verifier": "x" * 50}}, "extra_params",
                 id="extra_params sets code_verifier"),
    pytest.param({"extra_params": {"response_mode": "form_post"}}, "extra_params",
                 id="extra_params sets response_mode"),
    pytest.param({"refresh_lease": "3s", "http_timeout": "5s"}, "refresh_lease",
                 id="refresh lease shorter than a provider call"),
    pytest.param({"allowed_origins": ["https://a.example/path"]}, "origin", id="an origin with a path"),
    pytest.param({"routes": "/oidc"}, "routes", id="routes without a trailing slash"),
    pytest.param({"provider": "nope"}, "provider 'nope'", id="unknown provider"),
    pytest.param({"colour": "blue"}, "colour", id="unknown option"),
    pytest.param({"secure_cookies": False}, "secure_cookies", id="insecure cookies over https"),
    pytest.param({"secure_cookies": False, "public_url": "http://localhost:8080",
                  "cookie_name": "__Host-app"}, "cookie_name", id="__Host- cookie without Secure"),
])
def test_bad_options_stop_start_up_naming_the_file(tmp_path, idp, options, message):
    import yaml
    from tests.support.browser_login import gateway_config
    from wsgi_gateway import build_app, load_config
    from wsgi_gateway.errors import ConfigError

    config = gateway_config(idp, options=options)
    method = config["apis"][0]["auth"][0]
    for key in [k for k, v in options.items() if v is None]:
        del method[key]
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as caught:
        build_app(load_config(path), lambda e, s: [])
    assert str(path) in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("store, workers, warned", [
    pytest.param({"backend": "memory"}, 2, True, id="memory store, 2 workers"),
    pytest.param({"backend": "memory"}, 1, False, id="memory store, 1 worker"),
    pytest.param({"backend": "memcached", "servers": ["127.0.0.1:1"]}, 4, False, id="memcached"),
])
def test_a_per_worker_store_with_several_workers_is_warned(tmp_path, idp, store, workers, warned):
    import yaml
    from tests.support.browser_login import gateway_config
    from wsgi_gateway import load_config
    from wsgi_gateway.config.deploy import shared_state_warnings

    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(gateway_config(idp, store=store)))
    warnings = shared_state_warnings(load_config(path), workers)
    assert any("oidc_login" in w for w in warnings) is warned


@pytest.mark.parametrize("error", ["<script>alert(1)</script>", "access_denied\"><img src=x>"])
def test_a_provider_error_is_never_reflected_as_markup(gw, error):
    browser = gw.browser()
    state = query(browser.start())["state"]
    response = browser.get(ROUTES + "callback", query_string={"state": state, "error": error})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "<script>" not in page and "<img" not in page


def test_a_replayed_logout_token_ends_nothing_more(gw, idp, clock):
    token = idp.logout_token(CLIENT_ID, sub="alice")
    assert _post_logout_token(gw, token).status_code == 200
    browser = gw.browser()
    browser.login()  # signed in again after the logout the token announced
    assert _post_logout_token(gw, token).status_code == 400
    clock.advance(1.01)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200


def test_a_flood_of_sign_in_starts_is_throttled_not_stored(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, options={"start_rate": 5})
    browser = gw.browser()
    statuses = [browser.get("/app/x").status_code for _ in range(20)]
    assert statuses.count(302) == 5 and statuses.count(429) == 15
    pending = [k for k in gw.app.store._items if ":p:" in k]
    assert len(pending) == 5
    clock.advance(1)
    assert browser.get("/app/x").status_code == 302


def test_limits_count_a_browser_session_like_any_identity(tmp_path, idp, clock):
    gw = LoginGateway(tmp_path, idp, clock, policies={"people": {"rate": "3/60s"}})
    alice, alice_elsewhere, bob = gw.browser(), gw.browser(), gw.browser()
    alice.login()  # one request
    alice_elsewhere.login()  # the same person in another browser: the same session ID
    statuses = [b.get("/app/x", headers=SCRIPT).status_code for b in (alice, alice_elsewhere)]
    assert statuses == [200, 429]
    assert bob.login(user="bob").status_code == 200


def test_a_touch_on_another_worker_during_a_refresh_loses_nothing(tmp_path, idp, clock, memcached):
    """Worker A refreshes (the provider rotates the refresh token) while worker B writes the
    session's last use: A's compare-and-set then fails, yet the session holds, with the new
    tokens (else the spent refresh token stays in the store and the next refresh is a reuse)."""
    from wsgi_gateway.store.memcached import MemcachedStore

    options = {"touch_interval": f"{idp.token_ttl - 40}s"}
    a = LoginGateway(tmp_path, idp, clock, name="a", options=options,
                     store=MemcachedStore([("127.0.0.1", memcached.port)]))
    b = LoginGateway(tmp_path, idp, clock, name="b", options=options,
                     store=MemcachedStore([("127.0.0.1", memcached.port)]))
    browser = a.browser()
    browser.login()
    on_b = b.browser()
    on_b.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    real_refresh = a.flow.client.refresh

    def refresh_while_b_touches(refresh_token):  # not a mock: the real call, interleaved
        clock.advance(20)  # B's last-use write is now due (A's was not)
        assert on_b.get("/app/x", headers=SCRIPT).status_code == 200
        return real_refresh(refresh_token)
    a.flow.client.refresh = refresh_while_b_touches
    clock.advance(idp.token_ttl - 50)  # inside the refresh lead, no touch due yet
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    a.flow.client.refresh = real_refresh
    assert idp.login.counts["refresh"] == 1
    clock.advance(idp.token_ttl - 30)  # the next refresh must use the rotated token
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert (idp.login.counts["refresh"], idp.login.counts["refresh_reused"]) == (2, 0)


@pytest.mark.parametrize("path", [
    pytest.param("/open/x", id="another API (keyless)"),
    pytest.param("/elsewhere", id="an unmatched path passed through"),
])
def test_the_session_cookies_never_reach_another_upstream(tmp_path, idp, clock, path):
    """The handle is the session's bearer credential: an app behind another route of this
    gateway must not receive it (it could replay it against the login-protected API)."""
    gw = LoginGateway(tmp_path, idp, clock, extra_apis=[{"name": "open", "path": "/open",
                                                         "auth": ["keyless"]}],
                      routing={"unmatched": "pass"})
    browser = gw.browser()
    browser.login()
    browser.get(ROUTES + "login", query_string={"return_to": "/app/y"})  # a login cookie too
    assert browser.get(path, headers=SCRIPT).status_code == 200
    sent = gw.upstream.environ.get("HTTP_COOKIE") or ""
    assert gw.upstream.environ["PATH_INFO"] == path
    assert "gw-session" not in sent and "gw-login" not in sent


def test_a_clock_stepped_back_does_not_stretch_a_workers_copy_past_a_logout(tmp_path, idp, clock):
    """The per-worker copy lives at most cache_ttl by the wall clock; when the clock is
    stepped back (NTP, a resumed VM) a copy must not count as fresh for the whole step."""
    a = LoginGateway(tmp_path, idp, clock, name="a")
    b = LoginGateway(tmp_path, idp, clock, name="b", store=a.app.store)
    browser = a.browser()
    browser.login()
    on_b = b.browser()
    on_b.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    assert on_b.get("/app/x", headers=SCRIPT).status_code == 200  # b keeps a copy
    assert browser.post(ROUTES + "logout", headers={"Origin": PUBLIC}).status_code == 303
    clock.advance(-30)
    assert on_b.get("/app/x", headers=SCRIPT).status_code == 401


def test_a_session_named_under_a_previous_key_is_kept_alive_by_use(tmp_path, idp, clock):
    """After a secret_key rotation, a session used every hour must not hit the idle
    timeout (its last use has to be written like any other session's)."""
    idp.token_ttl = 200_000  # no refresh in the way
    old = LoginGateway(tmp_path, idp, clock, name="old", secret_key_env="GW_BROWSER_OLD_SECRET_KEY")
    browser = old.browser()
    browser.login()
    new = LoginGateway(tmp_path, idp, clock, name="new", previous_keys=True, store=old.app.store)
    moved = new.browser()
    moved.client.set_cookie("__Host-gw-session", browser.cookie("__Host-gw-session"), domain="gw.test")
    statuses = []
    for _ in range(10):  # 10 h of hourly use: never idle for 8 h
        clock.advance(3600)
        statuses.append(moved.get("/app/x", headers=SCRIPT).status_code)
    assert statuses == [200] * 10


def test_two_tabs_signing_in_at_once_both_come_back(gw):
    """Two logins pending in one browser (two tabs after the session ended): finishing one
    keeps the other's binding, so the second tab comes back signed in, not refused as
    'started in another browser'."""
    browser = gw.browser()
    first, second = browser.start("/app/one"), browser.start("/app/two")
    assert browser.callback(browser.sign_in_at_idp(first)).headers["Location"] == PUBLIC + "/app/one"
    back = browser.callback(browser.sign_in_at_idp(second))
    assert back.status_code == 303 and back.headers["Location"] == PUBLIC + "/app/two"
    assert browser.cookie("__Host-gw-login") is None  # nothing pending any more: cookie gone


def test_two_login_clients_may_not_share_a_session_cookie(tmp_path, idp):
    """Two clients (two routes) under one cookie name overwrite each other's handle at
    every sign-in: a person bounces between them, and each overwritten session lives on."""
    import yaml
    from tests.support.browser_login import gateway_config
    from wsgi_gateway import build_app, load_config
    from wsgi_gateway.errors import ConfigError

    config = gateway_config(idp)
    other = {**config["apis"][0]["auth"][0], "routes": "/.gateway/oidc2/", "scopes": ["openid"]}
    config["apis"].append({"name": "app2", "path": "/app2", "auth": [other]})
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="cookie_name"):
        build_app(load_config(path), lambda e, s: [])
    other["cookie_name"] = "__Host-app2-session"
    path.write_text(yaml.safe_dump(config))
    build_app(load_config(path), lambda e, s: []).close()


@pytest.mark.parametrize("path, upstream_path", [
    pytest.param("/app/caf%C3%A9", "/app/café", id="a non-ASCII path (was sent home)"),
    pytest.param("/app/a%3Fb", "/app/a?b", id="an encoded ? stays in the path"),
    pytest.param("/app/a%23b", "/app/a#b", id="an encoded # stays in the path"),
])
def test_sign_in_returns_to_the_exact_path_asked_for(gw, path, upstream_path):
    browser = gw.browser()
    back = browser.callback(browser.sign_in_at_idp(browser.start(path + "?x=1")))
    assert back.headers["Location"] == PUBLIC + path + "?x=1"
    browser.get(back.headers["Location"])
    environ = gw.upstream.environ
    assert environ["PATH_INFO"].encode("latin-1").decode() == upstream_path
    assert environ["QUERY_STRING"] == "x=1"


def test_an_upstream_cannot_plant_or_delete_the_session_cookie(tmp_path, idp, clock):
    """An app behind another route (or the login API's own) that sets the gateway's cookie
    would put the browser into a session of its choosing (a login CSRF) or sign it out."""
    gw = LoginGateway(tmp_path, idp, clock, extra_apis=[{"name": "open", "path": "/open",
                                                         "auth": ["keyless"]}])
    browser = gw.browser()
    browser.login()
    handle = browser.cookie("__Host-gw-session")

    def planting_app(environ, start_response):
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "__Host-gw-session=planted; Path=/; Secure; HttpOnly; SameSite=Lax"),
            ("set-cookie", "__Host-gw-login=planted; Path=/; Secure"),
            ("Set-Cookie", "theme=dark; Path=/")])
        return [b"ok"]
    gw.upstream.app = planting_app
    for path in ("/open/x", "/app/x"):
        response = browser.get(path, headers=SCRIPT)
        assert response.status_code == 200
        assert response.headers.getlist("Set-Cookie") == ["theme=dark; Path=/"]
    assert browser.cookie("__Host-gw-session") == handle


@pytest.mark.parametrize("status", [
    pytest.param(429, id="rate limited (an OAuth error body)"),
    pytest.param(400, id="400 server_error"),
])
def test_a_provider_error_that_is_not_a_refusal_keeps_the_session(gw, idp, clock, status):
    """Only a refusal of the grant (invalid_grant and the other RFC 6749 §5.2 codes) ends a
    session; a rate limit or server_error at the token endpoint is an outage (Auth0
    answers 429 with {"error": "too_many_requests"}): every refresh in it ended a session."""
    browser = gw.browser()
    browser.login()
    idp.set_status(status, paths=["/token"])  # body {"error": "server_error"}
    clock.advance(idp.token_ttl - 30)  # refresh due, the token still valid
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    idp.set_status(None)
    clock.advance(1.01)
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
    assert idp.login.counts["refresh"] == 1


@pytest.mark.parametrize("header", [
    pytest.param({"Sec-Purpose": "prefetch"}, id="Sec-Purpose prefetch (Chrome)"),
    pytest.param({"Sec-Purpose": "prefetch;prerender"}, id="Sec-Purpose prerender"),
    pytest.param({"Purpose": "prefetch"}, id="Purpose prefetch"),
    pytest.param({"X-Moz": "prefetch"}, id="X-Moz prefetch (Firefox)"),
])
def test_a_prefetched_logout_link_does_not_sign_out(gw, header):
    """A browser prefetches or prerenders same-origin links (speculation rules, link
    prefetch): a logout link on a page must not end the session before it is clicked."""
    browser = gw.browser()
    browser.login()
    response = browser.get(ROUTES + "logout", headers={**NAV, "Sec-Fetch-Site": "same-origin",
                                                       **header})
    assert response.status_code >= 400 and "Set-Cookie" not in response.headers
    assert browser.get("/app/x", headers=SCRIPT).status_code == 200
