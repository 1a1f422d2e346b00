"""Every browser-login security check can fail: each mutant below breaks one check in the
gateway, and the attack test that guards it must then fail (AssertionError). A mutant
that survives would mean the test proves nothing."""

from __future__ import annotations

import inspect

import pytest

from tests.authn import test_browser_login as attacks
from tests.support.browser_login import ENV, FakeClock, LoginGateway, make_idp
from wsgi_gateway.authn.digests import CredentialDigests
from wsgi_gateway.authn.jwt.verify import Verifier, parse
from wsgi_gateway.authn.oidc_login import login, pending
from wsgi_gateway.authn.oidc_login.client import OidcClient
from wsgi_gateway.authn.oidc_login.login import LoginFlow
from wsgi_gateway.authn.oidc_login.sealing import Sealer
from wsgi_gateway.authn.oidc_login.sessions import BrowserSessions
from wsgi_gateway.middleware import mutate as mutate_mw
from wsgi_gateway.mutate.strip import ClientHeaderStrip


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def _no_binding_check(mp, gw, idp):
    mp.setattr(pending, "bindings", lambda cookie: ["x" * 16])
    mp.setattr(CredentialDigests, "matches", lambda self, purpose, stored, credential: True)


def _no_replay_check(mp, gw, idp):
    idp.login.reusable_codes = True  # the provider's own single-use check out of the way
    mp.setattr(gw.app.store, "delete", lambda key: True)


def _trust_the_tokens_nonce(mp, gw, idp):
    original = OidcClient.verify_id_token

    def verify(self, token, *, nonce, previous=None):
        claimed = parse(token, 8192).claims.get("nonce") if previous is None else nonce
        return original(self, token, nonce=claimed, previous=previous)
    mp.setattr(OidcClient, "verify_id_token", verify)


def _no_late_check(mp, gw, idp):
    gw.flow.pending.ttl = 10**6


def _no_pending_bound(mp, gw, idp):
    gw.flow.pending.max_pending = 1000
    mp.setattr(pending, "bindings", lambda c: c.split(".") if c else [])


def _keep_the_old_handle(mp, gw, idp):
    mp.setattr(LoginFlow, "_end_old", lambda self, request: None)


def _logout_only_clears_the_cookie(mp, gw, idp):
    mp.setattr(BrowserSessions, "end", lambda self, session: None)


def _lease_always_granted(mp, gw, idp):
    mp.setattr(BrowserSessions, "take_lease", lambda self, session, ttl: True)


def _no_pkce(mp, gw, idp):
    original = OidcClient._session

    def session(self, redirect_uri=None):
        s = original(self, redirect_uri)
        s.code_challenge_method = None
        return s
    mp.setattr(OidcClient, "_session", session)


def _touch_without_cas(mp, gw, idp):
    original = BrowserSessions._write
    mp.setattr(BrowserSessions, "_write", lambda self, session, cas=None: original(self, session))


def _unbound_sealing(mp, gw, idp):
    seal, open_ = Sealer.seal, Sealer.open
    mp.setattr(Sealer, "seal", lambda self, p, bound_to: seal(self, p, ""))
    mp.setattr(Sealer, "open", lambda self, s, bound_to: open_(self, s, ""))


MUTANTS = [
    pytest.param(_touch_without_cas, "test_a_copy_read_before_logout_never_resurrects_the_session",
                 id="a stale copy rewrites an ended session"),
    pytest.param(_no_binding_check, "test_a_callback_opened_in_another_browser_is_refused",
                 id="state not bound to the browser"),
    pytest.param(_no_replay_check, "test_a_replayed_callback_is_refused", id="callback replayable"),
    pytest.param(_no_late_check, "test_a_late_callback_is_refused", id="no age limit on logins"),
    pytest.param(_no_pending_bound, "test_starting_many_logins_keeps_the_cookie_small_and_evicts_the_oldest",
                 id="pending logins unbounded"),
    pytest.param(_trust_the_tokens_nonce, "test_a_wrong_nonce_is_refused", id="nonce not checked"),
    pytest.param(lambda mp, gw, idp: mp.setattr(OidcClient, "_check_audience", lambda self, c: None),
                 "test_a_bad_id_token_is_refused", id="aud/azp not checked"),
    pytest.param(lambda mp, gw, idp: mp.setattr(Verifier, "verify_signature", lambda self, t, p: None),
                 "test_an_id_token_signed_by_an_unknown_key_is_refused", id="ID token signature not checked"),
    pytest.param(lambda mp, gw, idp: mp.setattr(Verifier, "verify_signature", lambda self, t, p: None),
                 "test_a_forged_logout_token_is_refused", id="logout token signature not checked"),
    pytest.param(_no_pkce, "test_navigation_goes_to_the_provider_with_code_pkce_state_and_nonce",
                 id="no PKCE"),
    pytest.param(lambda mp, gw, idp: mp.setattr(login, "safe_return_to", lambda t, o, a=(): t or "/"),
                 "test_the_login_route_sends_hostile_return_to_home", id="open redirect"),
    pytest.param(lambda mp, gw, idp: mp.setattr(login, "same_origin", lambda *a: True),
                 "test_a_cross_site_logout_is_refused", id="cross-site logout"),
    pytest.param(lambda mp, gw, idp: mp.setattr(login, "same_origin", lambda *a: True),
                 "test_unsafe_methods_need_a_same_origin_request", id="cross-site POST"),
    pytest.param(lambda mp, gw, idp: mp.setattr(login, "is_navigation", lambda *a, **k: True),
                 "test_scripts_get_401_not_a_redirect", id="scripts redirected"),
    pytest.param(lambda mp, gw, idp: (mp.setattr(Sealer, "seal", lambda self, p, b: p),
                                      mp.setattr(Sealer, "open", lambda self, s, b: s)),
                 "test_the_store_holds_no_handle_and_no_plain_token", id="tokens in clear"),
    pytest.param(lambda mp, gw, idp: (mp.setattr(Sealer, "seal", lambda self, p, b: p),
                                      mp.setattr(Sealer, "open", lambda self, s, b: s)),
                 "test_a_session_record_edited_in_the_store_is_refused", id="claims editable in the store"),
    pytest.param(_unbound_sealing, "test_a_sealed_record_copied_under_another_name_does_not_open", id="sealing not bound to the name"),
    pytest.param(lambda mp, gw, idp: mp.setattr(BrowserSessions, "first_use", lambda self, n, ttl: True),
                 "test_a_replayed_logout_token_ends_nothing_more", id="logout token replayable"),
    pytest.param(lambda mp, gw, idp: mp.setattr(LoginFlow, "_start_allowed", lambda self: True),
                 "test_a_flood_of_sign_in_starts_is_throttled_not_stored", id="sign-in starts unbounded"),
    pytest.param(_keep_the_old_handle, "test_every_login_gets_a_new_handle_and_the_old_one_dies",
                 id="session fixation"),
    pytest.param(_logout_only_clears_the_cookie,
                 "test_logout_kills_the_cookie_everywhere_and_ends_the_provider_session",
                 id="logout only in this browser"),
    pytest.param(lambda mp, gw, idp: mp.setattr(BrowserSessions, "expired", lambda self, s, now: False),
                 "test_idle_timeout", id="no idle timeout"),
    pytest.param(_lease_always_granted, "test_a_request_waits_for_another_workers_refresh",
                 id="no refresh lease"),
    pytest.param(lambda mp, gw, idp: mp.setattr(ClientHeaderStrip, "add_cookies", lambda self, n: None),
                 "test_the_session_cookies_never_reach_another_upstream",
                 id="session cookie passed to other upstreams"),
    pytest.param(lambda mp, gw, idp: mp.setattr(mutate_mw, "_without_set_cookies", lambda s, n: s),
                 "test_an_upstream_cannot_plant_or_delete_the_session_cookie",
                 id="an upstream sets the session cookie"),
]

# arguments for parametrized attack tests: the case the mutant must break
CASES = {"test_a_bad_id_token_is_refused": {"override": {"aud": "another-client"}},
         "test_the_login_route_sends_hostile_return_to_home": {"target": "//evil.example"},
         "test_unsafe_methods_need_a_same_origin_request": {
             "headers": {"Origin": "https://evil.example"}, "status": 403},
         "test_scripts_get_401_not_a_redirect": {"headers": {"Accept": "application/json"}},
         "test_idle_timeout": {"advance": 8 * 3600 + 10, "alive": False},
         "test_the_session_cookies_never_reach_another_upstream": {"path": "/open/x"}}


@pytest.mark.parametrize("mutate, attack", MUTANTS)
def test_each_check_can_fail(tmp_path, monkeypatch, mutate, attack):
    clock = FakeClock()
    idp = make_idp(clock=clock)
    try:
        gw = LoginGateway(tmp_path, idp, clock)
        mutate(monkeypatch, gw, idp)
        test = getattr(attacks, attack)
        available = {"gw": gw, "idp": idp, "clock": clock, "tmp_path": tmp_path / "attack",
                     **CASES.get(attack, {})}
        (tmp_path / "attack").mkdir()
        kwargs = {name: available[name] for name in inspect.signature(test).parameters}
        with pytest.raises((AssertionError, KeyError)):
            test(**kwargs)
    finally:
        idp.stop()
