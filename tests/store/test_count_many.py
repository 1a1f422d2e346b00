"""``count_many``: a request's counters and reads in one round trip (memcached meta
commands on pymemcache's connection), atomic, bounded under faults like every call."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tests.store.faults import fault_in
from tests.support.processes import Memcached
from wsgi_gateway.errors import StoreError
from wsgi_gateway.store.memcached import MemcachedStore


def store_on(*servers, **kw) -> MemcachedStore:
    return MemcachedStore([("127.0.0.1", s.port) for s in servers], **kw)


def test_counts_creates_reads_and_gives_back(memcached):
    store = store_on(memcached)
    store.set("prev", b"7", ttl=30)
    values, found, _ = store.count_many([("a", 1, 30), ("b", 10, 30)], ["prev", "absent"])
    assert values == [1, 10] and found == {"prev": b"7"}
    values, _, _ = store.count_many([("a", 1, 30), ("b", 10, 30)])
    assert values == [2, 20]
    values, _, _ = store.count_many([("a", -1, 1), ("b", -25, 1), ("never", -1, 1)])
    assert values == [1, 0, 0]                  # never below 0; a missing counter stays missing
    assert store.get("never") is None
    assert store.incr("a", ttl=30) == 2         # the same counters as incr/decr


def test_adds_store_only_absent_keys_in_the_same_round_trip(memcached):
    store = store_on(memcached)
    store.set("taken", b"first", ttl=30)
    value = b'{"a": "line\r\nset x 0 0 1\r\n"}'  # a value holding CR LF stays data
    values, found, stored = store.count_many([("n", 1, 30)], ["taken"],
                                             [("fresh", value, 30), ("taken", b"second", 30)])
    assert values == [1] and found == {"taken": b"first"} and stored == [True, True]
    assert store.get("fresh") == value
    assert store.get("taken") == b"first"     # add mode: an existing value is kept
    assert store.get("x") is None
    store.count_many([], (), [("short-add", b"v", 1)])
    assert store.get("short-add") == b"v"


def test_a_refused_add_is_reported_and_leaves_the_counters_and_the_connection_intact(memcached):
    """memcached answers SERVER_ERROR to a value over its item size (1 MiB by default),
    having read and dropped it: the counters beside it still count, the next call on
    the same connection reads its own replies."""
    store = store_on(memcached)
    values, _, stored = store.count_many([("c", 1, 30)], (), [("huge", b"x" * (2 << 20), 30),
                                                              ("small", b"v", 30)])
    assert values == [1] and stored == [False, True]
    assert store.get("huge") is None and store.get("small") == b"v"
    assert store.count_many([("c", 1, 30)], ["small"]) == ([2], {"small": b"v"}, [])


def test_a_created_counter_lives_its_ttl(memcached):
    store = store_on(memcached)
    store.count_many([("short", 1, 1)])
    assert store.get("short") == b"1"
    time.sleep(2.2)
    assert store.get("short") is None


def test_keys_a_client_chose_are_hashed_not_sent_raw(memcached):
    store = store_on(memcached)
    values, found, _ = store.count_many([("rl:api:weird key\r\nset x", 1, 30)], ["a b"])
    assert values == [1] and found == {}


def _count(port: int, times: int, results) -> None:
    store = MemcachedStore([("127.0.0.1", port)], timeout=2, connect_timeout=2)
    results.put([tuple(store.count_many([("rate", 1, 60), ("quota", 1, 60)])[0])
                 for _ in range(times)])


def test_concurrent_counts_from_processes_lose_nothing(memcached):
    procs, per_proc = 6, 150
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [ctx.Process(target=_count, args=(memcached.port, per_proc, results))
               for _ in range(procs)]
    for w in workers:
        w.start()
    seen = [pair for _ in workers for pair in results.get(timeout=30)]
    for w in workers:
        w.join(10)
    total = procs * per_proc
    # every caller got a distinct number from each counter, created once by one of them
    assert sorted(rate for rate, _ in seen) == list(range(1, total + 1))
    assert sorted(quota for _, quota in seen) == list(range(1, total + 1))


def test_one_round_trip_per_server_in_a_cluster(memcached):
    other = Memcached().start()
    try:
        store = store_on(memcached, other)
        keys = [f"k{i}" for i in range(12)]  # spread over both nodes
        values, _, _ = store.count_many([(k, 1, 30) for k in keys], keys[:3])
        assert values == [1] * 12
        values, found, _ = store.count_many([(k, 2, 30) for k in keys], keys[:3])
        assert values == [3] * 12 and found == {k: b"3" for k in keys[:3]}
    finally:
        other.stop()


@pytest.fixture
def private_memcached():
    server = Memcached().start()
    yield server
    server.stop()


def test_frozen_server_times_out_then_fails_fast(private_memcached):
    store = store_on(private_memcached, timeout=0.2, connect_timeout=0.2, retry_after=1.0)
    store.count_many([("n", 1, 30)])
    fault_in(private_memcached, "freeze")
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.count_many([("n", 1, 30), ("m", 1, 30)], ["p"])
    assert time.monotonic() - started < 0.35  # one timeout, not retried
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(StoreError):
            store.count_many([("n", 1, 30)])
    assert time.monotonic() - started < 0.05
    private_memcached.resume()
    time.sleep(1.2)
    # the timed-out call's increment was delivered and counts once the server resumes
    # (stricter, never looser); the calls refused at once while it was left alone sent nothing
    assert store.count_many([("n", 1, 30)])[0] == [3]


def test_restarted_server_costs_no_error(private_memcached):
    store = store_on(private_memcached, retry_after=1.0)
    store.count_many([("n", 1, 30)])  # the connection now exists
    private_memcached.stop()
    private_memcached.start()  # same port, empty
    assert store.count_many([("n", 1, 30)], ["x"]) == ([1], {}, [])


def test_killed_server_is_store_error(private_memcached):
    store = store_on(private_memcached, retry_after=0.5)
    store.count_many([("n", 1, 30)])
    private_memcached.stop()
    with pytest.raises(StoreError):
        store.count_many([("n", 1, 30)])
