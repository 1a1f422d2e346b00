"""Rate limits and quotas in process, on a real memcached."""

from __future__ import annotations

import math
import time

import pytest

from tests.support.clock import FakeClock
from tests.support.gateways import gateway_config, mint


@pytest.fixture
def clock():
    """The gateway's clock, half a second into the next minute: every 60 s window (and
    the day) has just begun and stays put, so no test waits for a fresh window. Tokens
    minted on the real clock are then a little old, never from the future."""
    return FakeClock(math.ceil(time.time() / 60) * 60 + 0.5)


@pytest.fixture
def gw(in_process, memcached, clock):
    def make(policies, **kw):
        return in_process(gateway_config(memcached.address, policies=policies, **kw), clock=clock)
    return make


def test_rate_limit_429_with_retry_after_and_headers(gw):
    g = gw({"basic": {"rate": "3/60s"}}, limits={"algorithm": "fixed"})
    token = mint()
    statuses = [g.get(token).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = g.get(token)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "rate limit" in refused.json["detail"]
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert g.upstream.calls == 3


def test_headers_on_every_response(gw):
    g = gw({"basic": {"rate": "10/60s", "quota": "100/1d"}})
    response = g.get(mint())
    h = response.headers
    assert h["X-RateLimit-Limit"] == "10" and h["X-RateLimit-Remaining"] == "9"
    assert int(h["X-RateLimit-Reset"]) > time.time()
    assert h["RateLimit-Policy"] == '"rate";q=10;w=60, "quota";q=100;w=86400'
    assert h["RateLimit"].startswith('"rate";r=9;t=') and '"quota";r=99;t=' in h["RateLimit"]


@pytest.mark.parametrize("which, present", [("off", False), ("rate", True), ("quota", True)])
def test_header_choice(gw, which, present):
    g = gw({"basic": {"rate": "10/60s", "quota": "100/1d"}}, limits={"headers": which})
    h = g.get(mint()).headers
    assert ("X-RateLimit-Limit" in h) is present
    if which == "quota":
        assert h["X-RateLimit-Limit"] == "100"


@pytest.mark.parametrize("status", [429, 403])
def test_quota_exceeded(gw, status):
    g = gw({"basic": {"quota": "2/1d"}}, limits={"quota_status": status})
    token = mint()
    assert [g.get(token).status_code for _ in range(3)] == [200, 200, status]
    refused = g.get(token)
    assert "quota" in refused.json["detail"]
    assert ("Retry-After" in refused.headers) is (status == 429)


def test_reissued_token_continues_the_same_quota(gw):
    g = gw({"basic": {"quota": "3/1d"}})
    assert g.get(mint(iat=time.time() - 10)).status_code == 200
    assert g.get(mint(iat=time.time() - 5)).status_code == 200
    assert g.get(mint()).status_code == 200
    assert g.get(mint(jti="new")).status_code == 429  # a fourth token, the same identity


def test_segregate_by_client_gives_each_client_its_quota(gw):
    g = gw({"basic": {"quota": "2/1d"}}, api={"segregate_by_client": True})
    for client in ("web", "mobile"):
        assert [g.get(mint(client=client)).status_code for _ in range(3)] == [200, 200, 429]
    shared = gw({"basic": {"quota": "2/1d"}})
    statuses = [shared.get(mint(sub="bob", client=c)).status_code for c in ("web", "mobile", "web")]
    assert statuses == [200, 200, 429]


def test_most_permissive_policy_wins(gw, tmp_path):
    # two assigned policies: the higher rate applies (Tyk's merge)
    rules = tmp_path / "r.yaml"
    rules.write_text("assign:\n  - {policy: slow, when: 'true'}\n  - {policy: fast, when: 'true'}\n")
    g = gw({"basic": {"rate": "1/60s"}, "slow": {"rate": "2/60s"}, "fast": {"rate": "4/60s"}},
           api={"rules": str(rules)}, limits={"algorithm": "fixed"})
    assert [g.get(mint()).status_code for _ in range(5)] == [200] * 4 + [429]


def test_a_policy_change_applies_to_existing_sessions(gw):
    token = mint(sub="carol")
    before = gw({"basic": {"rate": "5/60s"}}, limits={"algorithm": "fixed"})
    assert [before.get(token).status_code for _ in range(3)] == [200] * 3
    after = gw({"basic": {"rate": "2/60s"}}, limits={"algorithm": "fixed"})  # a reload
    assert after.get(token).status_code == 429


def test_sliding_window_weighs_the_previous_window(in_process, memcached):
    from wsgi_gateway.limits.windows import Window, sliding_count

    window = Window.at(1000.75 * 10, 10)  # 75% into window 1000
    assert window.index == 1000 and abs(window.elapsed - 0.75) < 1e-9
    assert sliding_count(8, 1, window) == pytest.approx(8 * 0.25 + 1)


def test_anonymous_requests_are_limited_by_client_address(in_process, memcached, clock):
    config = gateway_config(memcached.address, policies={"basic": {"rate": "2/60s"}},
                            api={"auth": ["keyless"]}, limits={"algorithm": "fixed"})
    g = in_process(config, clock=clock)
    a = [g.get(environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for _ in range(3)]
    b = [g.get(environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code for _ in range(3)]
    assert a == b == [200, 200, 429]


def test_limits_fail_open_when_the_store_is_down(in_process):
    from tests.support.processes import free_port

    config = gateway_config(f"127.0.0.1:{free_port()}", policies={"basic": {"rate": "1/60s"}},
                            api={"auth": ["keyless"]})
    g = in_process(config)
    assert [g.get().status_code for _ in range(3)] == [200, 200, 200]
    closed = dict(config, store={**config["store"], "on_failure": {"rate_limits": "closed"}})
    assert in_process(closed, name="closed").get().status_code == 503


def test_leased_mode_never_over_admits(in_process, memcached, clock):
    config = gateway_config(memcached.address, policies={"basic": {"rate": "25/60s"}},
                            limits={"algorithm": "fixed", "mode": "leased", "lease": 10})
    workers = [in_process(config, name=f"w{i}", clock=clock) for i in range(3)]  # three workers' leases
    token = mint(sub="lease")
    admitted = sum(w.get(token).status_code == 200 for _ in range(20) for w in workers)
    assert 25 - 3 * 9 <= admitted <= 25


def test_rate_key_limits_an_organisation_across_its_users(gw):
    g = gw({"basic": {"rate": "3/60s", "rate_key": "claims.org"}}, limits={"algorithm": "fixed"})
    statuses = [g.get(mint(sub=f"user-{i}", org="acme")).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert g.get(mint(sub="user-9", org="globex")).status_code == 200
    # without the claim the rate key errors: the user's own session is limited instead
    assert [g.get(mint(sub="loner")).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_bad_rate_key_stops_loading(in_process, memcached):
    from wsgi_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="policies.basic.rate_key"):
        in_process(gateway_config(memcached.address,
                                  policies={"basic": {"rate": "1/s", "rate_key": "claims.org +"}}))


def test_at_most_two_store_round_trips_per_request_in_steady_state(gw, memcached):
    from pymemcache.client.base import Client as RawClient

    def stats():
        raw = RawClient(("127.0.0.1", memcached.port)).stats()
        return {k: int(raw[k.encode()]) for k in ("cmd_get", "cmd_set", "incr_hits", "incr_misses",
                                                  "cmd_touch")}

    # exact counting pinned: the default (auto) leases a quota this large, see
    # tests/limits/test_round_trips.py
    g = gw({"basic": {"rate": "1000/60s", "quota": "100000/1d"}}, limits={"mode": "exact"})
    token = mint(sub="steady")
    assert g.get(token).status_code == 200  # first use: session created, windows opened
    before = stats()
    started = time.monotonic()
    for _ in range(50):
        assert g.get(token).status_code == 200
    elapsed = time.monotonic() - started
    delta = {k: stats()[k] - before[k] for k in before}
    incrs = delta["incr_hits"] + delta["incr_misses"]
    assert incrs == 100  # one for the rate window, one for the quota period
    # the session and its revocation markers are re-read once a second (one get_many)
    assert delta["cmd_get"] <= 3 * (int(elapsed) + 2)
    assert delta["cmd_set"] <= 2 and delta["cmd_touch"] == 0


def test_session_id_header_is_the_gateways_and_never_the_clients(in_process, memcached):
    config = gateway_config(memcached.address, policies={"basic": {}},
                            api={"auth": ["jwt", "keyless"]}, sessions={"header": "X-Session-Id"})
    g = in_process(config)
    seen = g.get(mint(sub="ann"), headers={"X-Session-Id": "forged"}).get_json()["headers"]
    assert seen["X-Session-Id"] == g.upstream.environ["wsgi_gateway.context"].session_id != "forged"
    anonymous = g.get(headers={"X-Session-Id": "forged"}).get_json()["headers"]
    assert "X-Session-Id" not in anonymous  # no session, and the client's copy is dropped
