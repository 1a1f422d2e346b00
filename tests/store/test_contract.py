"""One suite, every backend: memory and memcached must behave the same."""

from __future__ import annotations

import uuid

import pytest

from tests.support.clock import FakeClock
from tests.support.waiting import eventually
from wsgi_gateway.errors import StoreError
from wsgi_gateway.store import MemoryStore
from wsgi_gateway.store.memcached import MemcachedStore


@pytest.fixture(params=["memory", "memcached"])
def store(request):
    if request.param == "memory":
        clock = FakeClock()
        s = MemoryStore(namespace="t", clock=clock)
        s.test_clock = clock  # the test moves it: see gone_within
        yield s
    else:
        server = request.getfixturevalue("memcached")
        s = MemcachedStore([("127.0.0.1", server.port)], namespace="t", timeout=1)
        yield s
        s.close()


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


def gone_within(store, k: str, seconds: float) -> None:
    """``k`` has expired ``seconds`` from now: on the memory store's fake clock exactly
    then; on memcached (its own clock, whole seconds) asked until then, no longer."""
    clock = getattr(store, "test_clock", None)
    if clock is not None:
        clock.advance(seconds)
        assert store.get(k) is None
    else:
        eventually(lambda: store.get(k) is None, timeout=seconds, interval=0.05,
                   what=f"expiry of {k}")


def test_get_absent_is_none(store):
    assert store.get(key()) is None


def test_set_then_get(store):
    k = key()
    store.set(k, b"value", ttl=30)
    assert store.get(k) == b"value"


def test_set_replaces(store):
    k = key()
    store.set(k, b"one", ttl=30)
    store.set(k, b"two", ttl=30)
    assert store.get(k) == b"two"


def test_add_only_when_absent(store):
    k = key()
    assert store.add(k, b"first", ttl=30) is True
    assert store.add(k, b"second", ttl=30) is False
    assert store.get(k) == b"first"


def test_incr_creates_with_initial_then_counts(store):
    k = key()
    assert store.incr(k, ttl=30) == 1
    assert store.incr(k, ttl=30) == 2
    assert store.incr(k, 5, ttl=30) == 7
    assert store.incr(key(), 1, ttl=30, initial=10) == 11


def test_incr_of_non_number_is_store_error(store):
    k = key()
    store.set(k, b"abc", ttl=30)
    with pytest.raises(StoreError):
        store.incr(k, ttl=30)


def test_gets_and_cas(store):
    k = key()
    assert store.gets(k) == (None, None)
    store.set(k, b"v1", ttl=30)
    value, token = store.gets(k)
    assert value == b"v1"
    assert store.cas(k, b"v2", token, ttl=30) is True
    assert store.cas(k, b"v3", token, ttl=30) is False  # token is stale now
    assert store.get(k) == b"v2"


def test_cas_on_absent_key_fails(store):
    assert store.cas(key(), b"v", None, ttl=30) is False


def test_incr_changes_the_cas_token(store):
    k = key()
    store.incr(k, ttl=30)
    _, token = store.gets(k)
    store.incr(k, ttl=30)
    assert store.cas(k, b"0", token, ttl=30) is False


def test_delete(store):
    k = key()
    store.set(k, b"v", ttl=30)
    assert store.delete(k) is True
    assert store.get(k) is None
    assert store.delete(k) is False


def test_get_many_returns_present_keys_only(store):
    a, b, c = key(), key(), key()
    store.set(a, b"A", ttl=30)
    store.set(c, b"C", ttl=30)
    assert store.get_many([a, b, c]) == {a: b"A", c: b"C"}
    assert store.get_many([]) == {}


def test_values_are_bytes_exactly(store):
    k = key()
    payload = bytes(range(256)) * 4
    store.set(k, payload, ttl=30)
    assert store.get(k) == payload


@pytest.mark.parametrize("raw", [
    pytest.param("with space", id="space"),
    pytest.param("new\nline\r\n", id="crlf"),
    pytest.param("nul\x00byte", id="nul"),
    pytest.param("ünïcødé-ключ", id="non-ascii"),
    pytest.param("x" * 400, id="over 250 bytes"),
    pytest.param("", id="empty"),
])
def test_keys_memcached_cannot_take_still_work(store, raw):
    store.set(raw, b"v", ttl=30)
    assert store.get(raw) == b"v"
    assert store.incr(raw + "#n", ttl=30) == 1
    assert store.get_many([raw]) == {raw: b"v"}


def test_ttl_expires(store):
    # memcached keeps whole seconds and may expire up to ~1 s early: ask for 1 s,
    # check it is gone by 2.5 s.
    k = key()
    store.set(k, b"v", ttl=1)
    assert store.get(k) == b"v"
    gone_within(store, k, 2.5)


def test_incr_keeps_the_first_expiry(store):
    k = key()
    store.incr(k, ttl=2)
    assert store.incr(k, ttl=30) == 2  # the same counter, and its window must not slide
    gone_within(store, k, 3.1)


def test_long_ttl_beyond_30_days(store):
    k = key()
    store.set(k, b"v", ttl=40 * 86400)  # memcached reads > 30 days as a timestamp
    assert store.get(k) == b"v"


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(store, ttl):
    with pytest.raises(ValueError):
        store.set(key(), b"v", ttl=ttl)


def test_namespaces_are_separate(store, request):
    k = key()
    store.set(k, b"mine", ttl=30)
    if isinstance(store, MemoryStore):
        other = MemoryStore(namespace="other")
    else:
        other = MemcachedStore(store.servers, namespace="other")
    assert other.get(k) is None


def test_ping(store):
    store.ping()


def test_memory_store_is_bounded():
    s = MemoryStore(max_items=10)
    for i in range(100):
        s.set(f"k{i}", b"v", ttl=30)
    assert sum(s.get(f"k{i}") is not None for i in range(100)) == 10
    assert s.get("k99") == b"v"  # the most recent survive


def test_memory_store_uses_the_injected_clock():
    now = [1000.0]
    s = MemoryStore(clock=lambda: now[0])
    s.set("k", b"v", ttl=10)
    now[0] += 9.9
    assert s.get("k") == b"v"
    now[0] += 0.2
    assert s.get("k") is None


def test_decr_gives_back_never_below_zero_and_not_on_absent(store):
    k = key()
    assert store.decr(k) is None  # absent: not created
    assert store.get(k) is None
    store.incr(k, 3, ttl=30)
    assert store.decr(k) == 2
    assert store.decr(k, 5) == 0
    assert store.incr(k, ttl=30) == 1


def test_set_everywhere_then_get_everywhere(store):
    k, absent = key(), key()
    assert store.set_everywhere(k, b"1700000000.5", ttl=30) == 1  # one server (or process)
    assert store.get_everywhere([k, absent]) == {k: [b"1700000000.5"]}
    assert store.get(k) == b"1700000000.5"  # an ordinary key too
