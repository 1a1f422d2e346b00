"""Balancing and passive health of a target set, with an injected clock."""

from __future__ import annotations

import pytest

from wsgi_gateway.config.upstream import PassiveHealth
from wsgi_gateway.upstream.targets import AllTargetsDown, Target, TargetSet

A, B, C = "http://a:1", "http://b:2", "http://c:3"


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


def _urls(picks):
    return [t.url for t in picks]


def test_round_robin_cycles():
    targets = TargetSet([A, B, C])
    picks = [targets.choose() for _ in range(6)]
    for t in picks:
        targets.done(t, ok=True)
    assert _urls(picks) == [A, B, C, A, B, C]


def test_least_outstanding_prefers_the_idle_target():
    targets = TargetSet([A, B], balance="least_outstanding")
    busy = targets.choose()              # A, still in flight
    assert targets.choose().url == B     # B has none outstanding
    targets.done(busy, ok=True)
    assert targets.choose().url == A


@pytest.mark.parametrize(("failures", "cooldown"), [pytest.param(1, 5.0, id="1 failure"),
                                                    pytest.param(3, 10.0, id="3 failures")])
def test_n_failures_in_a_row_skip_a_target_for_the_cooldown(failures, cooldown):
    clock = Clock()
    targets = TargetSet([A, B], health=PassiveHealth(failures, cooldown), clock=clock)
    a = targets.targets[0]
    for _ in range(failures):
        targets.choose()
        targets.done(a, ok=False)
    assert {targets.choose().url for _ in range(4)} == {B}
    clock.now += cooldown
    assert A in {targets.choose().url for _ in range(4)}


def test_a_success_resets_the_count():
    targets = TargetSet([A], health=PassiveHealth(2, 10.0), clock=Clock())
    a = targets.targets[0]
    for ok in (False, True, False):
        targets.choose()
        targets.done(a, ok=ok)
    assert targets.choose().url == A


def test_all_down_raises_with_the_wait():
    clock = Clock()
    targets = TargetSet([A, B], health=PassiveHealth(1, 10.0), clock=clock)
    for t in targets.targets:
        targets.choose()
        targets.done(t, ok=False)
        clock.now += 2
    with pytest.raises(AllTargetsDown) as err:
        targets.choose()
    assert err.value.retry_after == pytest.approx(6.0)
    assert targets.all_down()


def test_health_off_never_skips():
    targets = TargetSet([A], health=PassiveHealth(0, 10.0))
    for _ in range(10):
        targets.done(targets.choose(), ok=False)
    assert targets.choose().url == A


@pytest.mark.parametrize(("url", "host", "base"), [
    pytest.param("http://example.com", "example.com", "", id="default port"),
    pytest.param("http://example.com:80/base", "example.com", "/base", id="explicit default port"),
    pytest.param("https://example.com:8443/a/b", "example.com:8443", "/a/b", id="other port"),
    pytest.param("http://[::1]:8080", "[::1]:8080", "", id="IPv6"),
])
def test_target_host_header_and_base_path(url, host, base):
    target = Target(url)
    assert (target.host_header, target.base_path) == (host, base)
