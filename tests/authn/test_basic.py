"""The basic method (RFC 7617): users file, hash checks, the verified-credential cache,
lockout in a real memcached, the ``users`` commands, and a table of bad input."""

from __future__ import annotations

import argparse
import base64
import io
import logging
import os
import select
import statistics
import subprocess
import sys
import threading
import time
import unicodedata

import pytest
import yaml
from werkzeug.security import check_password_hash

from tests.middleware.conftest import BufferedClient, Recorder, problem
from tests.support.clock import FakeClock as Clock  # file checks, cache and lock TTLs
from tests.support.processes import REPO, Memcached
from tests.support.waiting import eventually
from werkzeug.middleware.lint import LintMiddleware
from wsgi_gateway import build_app, load_config
from wsgi_gateway.authn.basic import LockoutOptions
from wsgi_gateway.authn.users_cli import add_commands
from wsgi_gateway.authn.users_file import add_user, load_users, remove_user, save_users
from wsgi_gateway.errors import ConfigError

FAST = "scrypt:1024:8:1"   # ~3 ms a check keeps the tables quick; timing tests use the default
LOCK = {"attempts": 3, "window": "60s", "duration": "60s"}
CHALLENGE = 'Basic realm="api", charset="UTF-8"'
CLI = ("import argparse, sys; from wsgi_gateway.authn.users_cli import add_commands; "
       "p = argparse.ArgumentParser(prog='wsgi-gateway'); add_commands(p.add_subparsers()); "
       "a = p.parse_args(); sys.exit(a.run(a))")


def b64(raw: str | bytes) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def basic(credential: str | bytes) -> dict:
    return {"Authorization": "Basic " + b64(credential)}


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "wonderland", claims={"groups": ["ops"], "policies": ["gold"]},
             method=FAST)
    add_user(path, "bob", "p:ss wörd", method=FAST)
    return path


def config(memcached=None, api=None, **options) -> dict:
    store = ({"backend": "memcached", "servers": [memcached.address]} if memcached
             else {"backend": "memory"})
    method = {"method": "basic", "users_file": "users.yaml", **options}
    return {"store": store, "apis": [{"name": "api", "path": "/api", "auth": [method], **(api or {})}]}


class InProcess:
    """A gateway built in process from a config dict, on the test's clock."""

    def __init__(self, tmp_path, config: dict, name: str, clock: Clock):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.upstream = Recorder()
        self.gateway = build_app(load_config(path), self.upstream, clock=clock)
        self.client = BufferedClient(LintMiddleware(self.gateway))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def in_process(tmp_path, clock):
    return lambda config, name="gw": InProcess(tmp_path, config, name, clock)


@pytest.fixture
def gateway(in_process, users, memcached):
    """gateway(name, api={...}, **basic options) → an in-process gateway on the real memcached."""
    def make(name="gw", api=None, **options):
        return in_process(config(memcached, api, **options), name)
    return make


def authenticator(gw):
    return gw.gateway.apis["api"].authenticators[0]


def call(gw, credential=None, addr="192.0.2.1", headers=None):
    headers = dict(headers or {})
    if credential is not None:
        headers.update(basic(credential))
    return gw.client.get("/api/x", headers=headers, environ_overrides={"REMOTE_ADDR": addr})


def timed(gw, credential) -> tuple[float, int]:
    """(CPU seconds of this thread, status) of one request: the hash runs in this thread,
    and CPU time does not grow when other processes share the cores, as wall time does."""
    start = time.thread_time()
    status = call(gw, credential).status_code
    return time.thread_time() - start, status


# --- good and bad passwords --------------------------------------------------------

@pytest.mark.parametrize("headers, status, subject", [
    pytest.param(basic("alice:wonderland"), 200, "alice", id="good password"),
    pytest.param({"Authorization": "basic " + b64("alice:wonderland")}, 200, "alice",
                 id="scheme in lower case"),
    pytest.param({"Authorization": "BASIC   " + b64("alice:wonderland") + " "}, 200, "alice",
                 id="scheme in upper case, extra spaces"),
    pytest.param(basic("bob:p:ss wörd"), 200, "bob", id="colon, space and non-ASCII in the password"),
    pytest.param(basic(unicodedata.normalize("NFD", "bob:p:ss wörd")), 200, "bob",
                 id="NFD password normalised to NFC"),
    pytest.param(basic("alice:wrong"), 401, None, id="wrong password"),
    pytest.param(basic("alice:"), 401, None, id="empty password"),
    pytest.param(basic("alice:wonderland "), 401, None, id="a trailing space is part of the password"),
    pytest.param(basic("Alice:wonderland"), 401, None, id="user names are case-sensitive"),
    pytest.param(basic("nobody:wonderland"), 401, None, id="unknown user"),
    pytest.param(basic(":wonderland"), 401, None, id="empty user name"),
])
def test_passwords(gateway, headers, status, subject):
    gw = gateway()
    response = call(gw, headers=headers)
    assert response.status_code == status
    if status == 200:
        assert gw.upstream.environ["wsgi_gateway.context"].identity.subject == subject
        assert "Authorization" not in response.get_data(as_text=True)  # strip_auth
    else:
        body = problem(response)
        assert body["type"].endswith(":unauthorized")
        assert body["detail"] == "the user name or password is not valid"
        assert response.headers.getlist("WWW-Authenticate") == [CHALLENGE]  # no error= (RFC 7617)
        assert gw.upstream.calls == 0


def test_the_identity_carries_the_users_claims_never_the_hash(gateway):
    gw = gateway()
    assert call(gw, "alice:wonderland").status_code == 200
    ctx = gw.upstream.environ["wsgi_gateway.context"]
    identity = ctx.identity
    assert (identity.method, identity.subject, identity.issuer) == ("basic", "alice", "basic:api")
    assert dict(identity.claims) == {"groups": ["ops"], "policies": ["gold"]}
    assert ctx.session_id == identity.session_id() and ctx.session_id


def test_the_users_policies_apply_when_configured(in_process, users, memcached):
    add_user(users, "alice", "wonderland", claims={"policies": ["gold", "platinum"]}, method=FAST)
    cfg = config(memcached, api={"default_policy": "bronze"})
    cfg["policies"] = {"gold": {"rate": "100/s"}, "bronze": {"rate": "1/s"}}
    gw = in_process(cfg)
    assert call(gw, "alice:wonderland").status_code == 200
    ctx = gw.upstream.environ["wsgi_gateway.context"]
    assert ctx.identity.policies == ("gold",)                # platinum is not configured
    assert ctx.policies == ("gold",)
    assert call(gw, "bob:p:ss wörd").status_code == 200
    assert gw.upstream.environ["wsgi_gateway.context"].policies == ("bronze",)


def test_claims_reach_the_rules(gateway, tmp_path):
    (tmp_path / "ops.yaml").write_text(
        'deny:\n  - when: "!(has(claims.groups) && \'ops\' in claims.groups)"\n'
        '    reason: "ops only"\n')
    gw = gateway(api={"rules": "ops.yaml"})
    assert call(gw, "alice:wonderland").status_code == 200
    denied = call(gw, "bob:p:ss wörd")
    assert denied.status_code == 403 and problem(denied)["detail"] == "ops only"


@pytest.mark.parametrize("options, challenge", [
    pytest.param({}, CHALLENGE, id="realm defaults to the API name"),
    pytest.param({"realm": "Staff only"}, 'Basic realm="Staff only", charset="UTF-8"', id="realm"),
])
def test_no_credential_is_challenged(gateway, options, challenge):
    gw = gateway(**options)
    response = call(gw)
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [challenge]
    assert authenticator(gw).issuer == "basic:" + challenge.split('"')[1]


@pytest.mark.parametrize("value", [
    pytest.param("Bearer " + b64("alice:wonderland"), id="Bearer"),
    pytest.param('Digest username="alice", realm="api"', id="Digest"),
    pytest.param("Basicx " + b64("alice:wonderland"), id="a scheme that starts with Basic"),
])
def test_another_scheme_steps_aside(in_process, users, value):
    gw = in_process(config(api={"auth": [{"method": "basic", "users_file": "users.yaml"},
                                         "keyless"]}))
    response = call(gw, headers={"Authorization": value})
    assert response.status_code == 200  # basic said "not mine", keyless let it through
    assert gw.upstream.environ["wsgi_gateway.context"].identity.anonymous
    assert authenticator(gw).hash_checks == 0


# --- bad input: 400 or 401, never a 500, never the upstream ------------------------

def B(raw: bytes) -> str:
    return "Basic " + b64(raw)


BAD_INPUT = [
    # 400 invalid_request: a Basic credential that breaks RFC 7617's syntax is the
    # client's bug, not a wrong password; it is refused before any hash or counter.
    pytest.param("Basic", 400, "not a valid Basic", id="scheme only"),
    pytest.param("Basic ", 400, "not a valid Basic", id="scheme and a space"),
    pytest.param("Basic !!!!", 400, "not a valid Basic", id="characters outside token68"),
    pytest.param("Basic ÿÿÿÿ", 400, "not a valid Basic", id="non-ASCII octets in the header"),
    pytest.param("Basic " + b64("alice:wonderland").rstrip("="), 400, "base64",
                 id="base64 without padding"),
    pytest.param("Basic a", 400, "base64", id="base64 of impossible length"),
    pytest.param("Basic YQ==YQ==", 400, "not a valid Basic", id="padding in the middle"),
    pytest.param("Basic " + b64(b"\xfb\xff:\xfe").replace("+", "-").replace("/", "_"), 400,
                 "base64", id="base64url alphabet"),
    pytest.param("Basic " + b64("alice:wonderland") + " x", 400, "not a valid Basic",
                 id="trailing garbage"),
    pytest.param(B(b"alice:wonderland") + ", " + B(b"bob:x"), 400, "not a valid Basic",
                 id="two Authorization headers joined by a comma"),
    pytest.param(B(b"alicewonderland"), 400, "no ':'", id="no colon"),
    pytest.param(B(b""), 400, "not a valid Basic", id="empty credential"),
    pytest.param(B("ålice:wonderland".encode("latin-1")), 400, "UTF-8", id="ISO-8859-1 user name"),
    pytest.param(B(b"alice:wonder\xffland"), 400, "UTF-8", id="password not UTF-8"),
    pytest.param(B(b"\xc3\x28:x"), 400, "UTF-8", id="invalid UTF-8 sequence"),
    pytest.param(B(b"\xed\xa0\x80:x"), 400, "UTF-8", id="UTF-8-encoded surrogate"),
    pytest.param(B(b"\xc0\xaf:x"), 400, "UTF-8", id="overlong UTF-8"),
    pytest.param(B(b"alice:wonder\x00land"), 400, "control", id="NUL in the password"),
    pytest.param(B(b"al\x1bice:wonderland"), 400, "control", id="ESC in the user name"),
    pytest.param(B(b"alice:wonderland\r\n"), 400, "control", id="CR LF in the credential"),
    pytest.param(B(b"alice:wonderland\x7f"), 400, "control", id="DEL"),
    pytest.param(B("alice:wonder\u0085land".encode()), 400, "control", id="C1 control (NEL)"),
    pytest.param("Basic " + "A" * 5000, 400, "too large", id="oversized header (over 4 KiB)"),
    pytest.param(B(b"alice:" + b"x" * 3100), 400, "too large", id="oversized password"),
    # 401: well-formed, so the answer is the same as for any wrong password (a lookup
    # that fails, with the dummy hash checked)
    pytest.param(B(b"x" * 2000 + b":y"), 401, None, id="very long unknown user name"),
    pytest.param(B(b":"), 401, None, id="empty user name and password"),
    pytest.param(B("\u202ealice:wonderland".encode()), 401, None, id="bidi override in the name"),
    # 401 without an error: not a Basic credential at all, so no method found one
    pytest.param("Basic\t" + b64("alice:wonderland"), 401, None, id="tab after the scheme"),
    pytest.param("Bearer " + b64("alice:wonderland"), 401, None, id="the password under Bearer"),
    pytest.param("", 401, None, id="empty header"),
]


@pytest.mark.parametrize("value, status, detail", BAD_INPUT)
def test_bad_input_is_400_or_401_never_500(gateway, value, status, detail):
    gw = gateway()
    response = call(gw, headers={"Authorization": value})
    assert response.status_code == status
    body = problem(response)
    assert body["type"].endswith("invalid_request" if status == 400 else "unauthorized")
    assert "wonderland" not in response.get_data(as_text=True)
    assert gw.upstream.calls == 0
    challenges = response.headers.getlist("WWW-Authenticate")
    assert challenges and all(c.startswith(CHALLENGE) for c in challenges)
    if status == 400:
        assert detail in body["detail"]
        assert authenticator(gw).hash_checks == 0  # refused before any hash


# --- cost: unknown users, the cache, the file -------------------------------------

@pytest.fixture
def slow_users(tmp_path):
    add_user(tmp_path / "slow.yaml", "carol", "secret")  # werkzeug's default scrypt
    return "slow.yaml"


def test_an_unknown_user_costs_what_a_wrong_password_costs(in_process, memcached, slow_users):
    gw = in_process(config(memcached, users_file=slow_users, lockout=None))
    timed(gw, "warm:up")
    pairs = [(timed(gw, "carol:nope"), timed(gw, "mallory:nope")) for _ in range(3)]
    wrong, unknown = [w for w, _ in pairs], [u for _, u in pairs]  # interleaved: same conditions
    assert {s for _, s in wrong + unknown} == {401}
    median_wrong = statistics.median(t for t, _ in wrong)
    median_unknown = statistics.median(t for t, _ in unknown)
    assert median_unknown > 0.01 and median_wrong > 0.01  # a real scrypt ran each time
    assert 0.6 < median_unknown / median_wrong < 1.6, (median_unknown, median_wrong)
    assert authenticator(gw).hash_checks == 7


def test_a_cached_credential_skips_the_hash(in_process, memcached, slow_users):
    gw = in_process(config(memcached, users_file=slow_users))
    auth = authenticator(gw)
    cold, status = timed(gw, "carol:secret")
    assert status == 200 and auth.hash_checks == 1
    warm = [timed(gw, "carol:secret") for _ in range(20)]
    assert {s for _, s in warm} == {200}
    assert auth.hash_checks == 1
    assert statistics.median(t for t, _ in warm) < cold / 20, (cold, warm)
    assert call(gw, "carol:secret2").status_code == 401 and auth.hash_checks == 2


@pytest.mark.parametrize("options, checks", [
    pytest.param({"cache_size": 0}, 3, id="cache off: every request checks"),
    pytest.param({}, 1, id="cache on: one check"),
])
def test_cache_option(gateway, options, checks):
    gw = gateway(**options)
    for _ in range(3):
        assert call(gw, "alice:wonderland").status_code == 200
    assert authenticator(gw).hash_checks == checks


def test_a_cached_credential_expires_after_cache_ttl(gateway, clock):
    gw = gateway(cache_ttl="1s")
    call(gw, "alice:wonderland"), call(gw, "alice:wonderland")
    assert authenticator(gw).hash_checks == 1
    clock.advance(1.2)
    assert call(gw, "alice:wonderland").status_code == 200
    assert authenticator(gw).hash_checks == 2


def test_file_changes_land_within_a_second_and_empty_the_cache(gateway, users, clock):
    gw = gateway()
    assert call(gw, "alice:wonderland").status_code == 200       # now cached
    assert call(gw, "bob:p:ss wörd").status_code == 200
    add_user(users, "alice", "looking-glass", method=FAST)        # a new password
    remove_user(users, "bob")
    add_user(users, "carol", "c", method=FAST)
    assert call(gw, "alice:wonderland").status_code == 200        # not looked at yet
    clock.advance(1.1)
    assert call(gw, "alice:wonderland").status_code == 401        # the cached entry is gone
    assert call(gw, "alice:looking-glass").status_code == 200
    assert dict(gw.upstream.environ["wsgi_gateway.context"].identity.claims)["groups"] == ["ops"]
    assert call(gw, "bob:p:ss wörd").status_code == 401
    assert call(gw, "carol:c").status_code == 200


@pytest.mark.parametrize("damage, logged", [
    pytest.param(lambda p: p.write_text("users:\n  alice: {hash: not-a-hash}\n"),
                 "users.yaml:2: users.alice: hash", id="broken"),
    pytest.param(lambda p: p.unlink(), "users.yaml: cannot be read", id="deleted"),
])
def test_a_broken_users_file_keeps_the_previous_version(gateway, users, caplog, damage, logged, clock):
    gw = gateway()
    good = load_users(users)
    damage(users)
    clock.advance(1.1)
    with caplog.at_level(logging.ERROR, logger="wsgi_gateway"):
        assert call(gw, "bob:p:ss wörd").status_code == 200       # checked against the old file
        assert call(gw, "alice:wonderland").status_code == 200
    assert [r for r in caplog.records if "users file is broken" in r.getMessage()]
    assert logged in caplog.text
    save_users(users, {"alice": good["alice"]})                   # repaired, without bob
    clock.advance(1.1)
    assert call(gw, "bob:p:ss wörd").status_code == 401


# --- lockout ----------------------------------------------------------------------

def locked(response, at_most: float = 60) -> bool:
    if response.status_code != 429:
        return False
    body = problem(response)
    assert body["detail"] == "too many failed sign-in attempts; try again later"
    assert 1 <= int(response.headers["Retry-After"]) <= at_most
    return True


@pytest.mark.parametrize("name", [pytest.param("alice", id="known user"),
                                  pytest.param("nobody", id="unknown user, the same")])
def test_lockout_per_user(gateway, name):
    gw = gateway(lockout={**LOCK, "per": ["user"]})
    auth = authenticator(gw)
    for i in range(3):  # three addresses: the user's count alone locks
        assert call(gw, f"{name}:wrong", addr=f"192.0.2.{i}").status_code == 401
    checks = auth.hash_checks
    response = call(gw, f"{name}:wonderland", addr="192.0.2.99")  # even the good password
    assert locked(response) and response.headers["Retry-After"] in ("59", "60")
    assert auth.hash_checks == checks          # no hash is checked while locked
    assert gw.upstream.calls == 0
    assert call(gw, "bob:p:ss wörd", addr="192.0.2.99").status_code == 200  # others unaffected


def test_lockout_per_address(gateway):
    gw = gateway(lockout={**LOCK, "per": ["address"]})
    for name in ("alice", "bob", "nobody"):
        assert call(gw, f"{name}:wrong", addr="198.51.100.7").status_code == 401
    assert locked(call(gw, "alice:wonderland", addr="198.51.100.7"))
    assert call(gw, "alice:wonderland", addr="198.51.100.8").status_code == 200


def test_lockout_per_user_and_address_by_default(gateway):
    gw = gateway(lockout={"attempts": 3})
    assert authenticator(gw).lockout.options == LockoutOptions(3, 300.0, 900.0)
    for _ in range(3):
        call(gw, "nobody:wrong", addr="203.0.113.5")
    assert locked(call(gw, "bob:p:ss wörd", addr="203.0.113.5"), at_most=900)   # the address
    for i in range(3):
        call(gw, "alice:wrong", addr=f"203.0.113.{10 + i}")
    assert locked(call(gw, "alice:wonderland", addr="203.0.113.50"), at_most=900)  # the user


def test_a_good_password_clears_the_users_count(gateway):
    gw = gateway(lockout={**LOCK, "per": ["user"]})
    for credential, status in [("wrong", 401), ("wrong", 401), ("wonderland", 200),
                               ("wrong", 401), ("wrong", 401), ("wonderland", 200),
                               ("wrong", 401), ("wonderland", 429)]:
        assert call(gw, f"alice:{credential}").status_code == status, credential


def test_a_lockout_ends_after_its_duration(gateway, clock):
    gw = gateway(lockout={"attempts": 1, "window": "60s", "duration": "2s"})
    assert call(gw, "alice:wrong").status_code == 401
    assert locked(call(gw, "alice:wonderland"), at_most=2)
    clock.advance(2.2)
    assert call(gw, "alice:wonderland").status_code == 200


def test_two_gateways_share_the_lockout(gateway):
    a, b = gateway("a", lockout=LOCK), gateway("b", lockout=LOCK)
    assert call(a, "alice:wrong", addr="192.0.2.1").status_code == 401
    assert call(b, "alice:wrong", addr="192.0.2.2").status_code == 401
    assert call(a, "alice:wrong", addr="192.0.2.3").status_code == 401
    assert locked(call(b, "alice:wonderland", addr="192.0.2.4"))
    assert locked(call(a, "alice:wonderland", addr="192.0.2.5"))


def test_a_lock_reaches_cached_credentials_elsewhere_within_a_second(gateway, clock):
    a, b = gateway("a", lockout=LOCK), gateway("b", lockout=LOCK)
    assert call(a, "alice:wonderland").status_code == 200   # cached in a
    for i in range(3):
        assert call(b, "alice:wrong", addr=f"192.0.2.{i}").status_code == 401
    assert locked(call(a, "alice:guess"))                    # a password check asks at once
    assert call(a, "alice:wonderland").status_code == 200   # a cache hit trusts "unlocked" 1 s
    clock.advance(1.1)
    assert locked(call(a, "alice:wonderland"))


def test_lockout_off_never_locks(gateway):
    gw = gateway(lockout=None)
    for _ in range(8):
        assert call(gw, "alice:wrong").status_code == 401
    assert call(gw, "alice:wonderland").status_code == 200


@pytest.mark.parametrize("mode, cached, fresh, wrong", [
    pytest.param("closed", 503, 503, 503, id="closed: 503, no unchecked sign-in"),
    pytest.param("open", 200, 200, 401, id="open: passwords checked without lockout"),
])
def test_store_failure(in_process, users, mode, cached, fresh, wrong, clock):
    server = Memcached().start()
    try:
        cfg = config(server, lockout={**LOCK, "on_store_failure": mode})
        cfg["store"].update(timeout="100ms", retry_after="300ms")
        cfg["sessions"] = {"enabled": False}  # the session layer would answer 503 itself
        gw = in_process(cfg)
        assert call(gw, "alice:wonderland").status_code == 200
        server.stop()
        clock.advance(1.1)  # past the 1 s a cached credential trusts "not locked"
        responses = [call(gw, c) for c in ("alice:wonderland", "bob:p:ss wörd", "alice:wrong")]
        assert [r.status_code for r in responses] == [cached, fresh, wrong]
        if mode == "closed":
            assert problem(responses[0])["type"].endswith("store_unavailable")
            assert responses[0].headers["Retry-After"] == "1"
        server = Memcached(port=server.port).start()
        # the store's own breaker (retry_after 300ms, on the real clock) lets a call through
        eventually(lambda: call(gw, "bob:p:ss wörd").status_code == 200, timeout=5,
                   what="a sign-in after memcached came back")
    finally:
        server.stop()


# --- configuration --------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    pytest.param({}, "apis[0].auth[0]: missing required key 'users_file'", id="no users_file"),
    pytest.param({"users_file": "nope.yaml"}, "apis[0].auth[0].users_file: ", id="missing file"),
    pytest.param({"users_file": "broken.yaml"},
                 "broken.yaml:3: users.eve: hash: not a werkzeug password hash", id="bad hash"),
    pytest.param({"users_file": "users.yaml", "realm": 'a"b'}, "realm: 1-128", id="quote in realm"),
    pytest.param({"users_file": "users.yaml", "cache_size": -1}, "cache_size", id="cache_size"),
    pytest.param({"users_file": "users.yaml", "lockout": {"attempts": 0}},
                 "lockout: attempts must be within", id="attempts 0"),
    pytest.param({"users_file": "users.yaml", "lockout": {"tries": 3}},
                 "lockout.tries: unknown key", id="unknown lockout key"),
    pytest.param({"users_file": "users.yaml", "lockout": {"window": "soon"}},
                 "lockout.window: expected a duration", id="bad duration"),
    pytest.param({"users_file": "users.yaml", "lockout": {"per": ["host"]}},
                 "lockout.per[0]: expected one of", id="bad per"),
])
def test_config_errors_name_file_line_and_key(tmp_path, users, options, message):
    (tmp_path / "broken.yaml").write_text(
        "users:\n  alice: {hash: 'scrypt:1024:8:1$ab$00'}\n  eve: {hash: plain}\n")
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"apis": [{"name": "api", "path": "/api",
                                              "auth": [{"method": "basic", **options}]}]}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:" in str(err.value) and message in str(err.value), str(err.value)


@pytest.mark.parametrize("text, message", [
    pytest.param("- alice\n", ":1: expected a mapping with one key, users", id="a list"),
    pytest.param("people: {}\n", ":1: expected a mapping with one key, users", id="unknown key"),
    pytest.param("users: [alice]\n", ":1: users: expected a mapping", id="users a list"),
    pytest.param("users:\n  alice: secret\n", ":2: users.alice: expected a mapping", id="not a mapping"),
    pytest.param("users:\n  alice: {groups: [a]}\n", ":2: users.alice: expected a mapping with hash",
                 id="no hash"),
    pytest.param("users:\n  'a:b': {hash: x}\n", ":2: users.a:b: a user name may not contain ':'",
                 id="colon in the name"),
    pytest.param("users:\n  123: {hash: x}\n", ":2: users.123: a user name must be a string",
                 id="number as name"),
    pytest.param("users:\n  \"a\\tb\": {hash: x}\n", "control characters", id="tab in the name"),
    pytest.param(f"users:\n  {unicodedata.normalize('NFD', 'jörg')}: {{hash: x}}\n", "NFC",
                 id="NFD name"),
    pytest.param("users:\n  alice: {hash: 'md5$x$y'}\n", "not a werkzeug password hash", id="md5"),
    pytest.param("users:\n  alice: {hash: 'scrypt:1000:8:1$s$00'}\n", "power of two",
                 id="scrypt n not a power of two"),
    pytest.param("users:\n  alice: {hash: 'pbkdf2:nosuch:10$s$00'}\n", "unknown pbkdf2 digest",
                 id="unknown pbkdf2 digest"),
    pytest.param("users:\n  alice: {hash: 'scrypt:1024:8:1$s$00', groups: ops}\n",
                 "groups: expected a list of names", id="groups not a list"),
    pytest.param("users:\n  alice: {hash: 'scrypt:1024:8:1$s$00', policies: [1]}\n",
                 "policies: expected a list of names", id="a policy not a name"),
    pytest.param("users:\n  alice: {hash: 'scrypt:1024:8:1$s$00', born: 2001-01-01}\n",
                 "born: claims hold strings", id="a date claim"),
    pytest.param("users:\n  alice: {hash: 'scrypt:1024:8:1$s$00'}\n  alice: {hash: x}\n",
                 "duplicate key 'alice'", id="duplicate user"),
])
def test_users_file_errors_name_line_and_user(tmp_path, text, message):
    path = tmp_path / "u.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_users(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


# --- the users commands -------------------------------------------------------------

def cli(capsys, monkeypatch, *args, stdin=""):
    """Run ``wsgi-gateway users ARGS`` through add_commands; the password comes on stdin."""
    parser = argparse.ArgumentParser(prog="wsgi-gateway")
    add_commands(parser.add_subparsers(required=True))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # the password, as a pipe would give it (no store or HTTP is mocked)
    parsed = parser.parse_args(["users", *args])
    code = parsed.run(parsed)
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_update_list_remove(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "u.yaml")
    assert cli(capsys, monkeypatch, "add", "dora", "--file", path, "--password-stdin",
               "--group", "ops", "--group", "dev", "--policy", "gold", stdin="s3cret pass phrase\n")[0] == 0
    user = load_users(tmp_path / "u.yaml")["dora"]
    assert check_password_hash(user.hash, "s3cret pass phrase") and user.method == "scrypt:32768:8:1"
    assert dict(user.claims) == {"groups": ["ops", "dev"], "policies": ["gold"]}
    assert (tmp_path / "u.yaml").stat().st_mode & 0o777 == 0o600
    code, out, _ = cli(capsys, monkeypatch, "add", "dora", "--file", path, "--password-stdin",
                       stdin="another pass phrase\n")
    assert (code, out.split()[0]) == (0, "updated")
    user = load_users(tmp_path / "u.yaml")["dora"]
    assert check_password_hash(user.hash, "another pass phrase") and dict(user.claims)["groups"] == ["ops", "dev"]
    code, out, _ = cli(capsys, monkeypatch, "list", "--file", path)
    assert code == 0 and out == 'dora\tscrypt:32768:8:1\t{"groups": ["ops", "dev"], "policies": ["gold"]}\n'
    assert user.hash.split("$")[2] not in out
    assert cli(capsys, monkeypatch, "remove", "dora", "--file", path)[0] == 0
    assert load_users(tmp_path / "u.yaml") == {}
    code, _, err = cli(capsys, monkeypatch, "remove", "dora", "--file", path)
    assert code == 1 and "no user 'dora'" in err


@pytest.mark.parametrize("name, stdin, message", [
    pytest.param("a:b", "pw\n", "may not contain ':'", id="colon in the name"),
    pytest.param("", "pw\n", "1-256 characters", id="empty name"),
    pytest.param("dora", "\n", "1-1024 characters", id="empty password"),
    pytest.param("dora", "", "1-1024 characters", id="no input"),
    pytest.param("dora", "pa\x01ss\n", "control characters", id="control character in the password"),
    pytest.param("dora", "x" * 1025 + "\n", "1-1024 characters", id="password too long"),
])
def test_users_add_refuses(tmp_path, capsys, monkeypatch, name, stdin, message):
    code, _, err = cli(capsys, monkeypatch, "add", name, "--file", str(tmp_path / "u.yaml"),
                       "--password-stdin", stdin=stdin)
    assert code == 1 and message in err
    assert not (tmp_path / "u.yaml").exists()


def test_users_add_needs_a_terminal_or_password_stdin(tmp_path, capsys, monkeypatch):
    code, _, err = cli(capsys, monkeypatch, "add", "dora", "--file", str(tmp_path / "u.yaml"),
                       stdin="pw\n")
    assert code == 1 and "use --password-stdin" in err


def test_there_is_no_password_argument(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        cli(capsys, monkeypatch, "add", "dora", "--file", str(tmp_path / "u.yaml"),
            "--password", "s3cret")


def test_users_commands_report_a_broken_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "u.yaml").write_text("users:\n  eve: {hash: plain}\n")
    code, _, err = cli(capsys, monkeypatch, "list", "--file", str(tmp_path / "u.yaml"))
    assert code == 2 and "u.yaml:2: users.eve: hash:" in err


def test_a_user_added_by_the_command_signs_in_within_a_second(gateway, users, clock):
    gw = gateway()
    result = subprocess.run([sys.executable, "-c", CLI, "users", "add", "erin", "--file",
                             str(users), "--password-stdin"], input="tea time at four\n", text=True,
                            capture_output=True, cwd=REPO, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "tea time at four" not in result.stdout + result.stderr
    clock.advance(1.1)
    assert call(gw, "erin:tea time at four").status_code == 200


def _on_a_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin/stdout, answering each prompt."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stdin=slave, stdout=slave,
                            stderr=slave, cwd=REPO, start_new_session=True)
    os.close(slave)
    seen, answered = b"", 0
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 1024)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                seen += chunk
            prompts = seen.count(b"Password for") + seen.count(b"Repeat it:")
            if answered < min(prompts, len(answers)):  # a prompt waits, echo off
                os.write(master, answers[answered].encode() + b"\n")
                answered += 1
    finally:
        os.close(master)
    return proc.wait(10), seen.decode(errors="replace")


@pytest.mark.parametrize("answers, code", [
    pytest.param(["tty secret phrase", "tty secret phrase"], 0, id="asked twice"),
    pytest.param(["tty secret phrase", "something else"], 1, id="two different answers"),
])
def test_users_add_asks_on_the_terminal(tmp_path, answers, code):
    path = tmp_path / "u.yaml"
    status, screen = _on_a_terminal(["users", "add", "tess", "--file", str(path)], answers)
    assert status == code, screen
    assert "Password for tess:" in screen and "tty secret phrase" not in screen  # not echoed
    if code == 0:
        assert check_password_hash(load_users(path)["tess"].hash, "tty secret phrase")
    else:
        assert "the two passwords differ" in screen and not path.exists()


# --- the file on disk ------------------------------------------------------------

def test_writes_keep_the_mode_and_leave_no_temporary_file(tmp_path, users):
    users.chmod(0o640)
    add_user(users, "carol", "c", method=FAST)
    remove_user(users, "bob")
    assert users.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.yaml"]
    assert list(load_users(users)) == ["alice", "carol"]


def test_writers_are_serialised_and_readers_never_see_half_a_file(tmp_path, users):
    problems, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen = load_users(users)
            except ConfigError as err:  # a torn file
                problems.append(err)
                continue
            if not {"alice", "bob"} <= set(seen):  # an empty or half-written one
                problems.append(sorted(seen))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=add_user, args=(users, f"user{i}", "pw"),
                                kwargs={"method": FAST}) for i in range(12)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert problems == []
    assert set(load_users(users)) == {"alice", "bob", *(f"user{i}" for i in range(12))}
