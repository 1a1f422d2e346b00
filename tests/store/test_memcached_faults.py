"""memcached under concurrency and faults: no lost updates, bounded waits, recovery."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tests.store.faults import fault_in
from tests.support.processes import Memcached
from wsgi_gateway.errors import StoreError
from wsgi_gateway.store.memcached import MemcachedStore


def _count(port: int, key: str, times: int, results) -> None:
    store = MemcachedStore([("127.0.0.1", port)], timeout=2, connect_timeout=2)
    seen = [store.incr(key, ttl=60) for _ in range(times)]
    results.put(seen)


def test_concurrent_increments_from_processes_lose_nothing(memcached):
    procs, per_proc, key = 6, 200, "race"
    results = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(
        target=_count, args=(memcached.port, key, per_proc, results)) for _ in range(procs)]
    for w in workers:
        w.start()
    seen = [value for _ in workers for value in results.get(timeout=30)]
    for w in workers:
        w.join(10)
    store = MemcachedStore([("127.0.0.1", memcached.port)])
    assert int(store.get(key)) == procs * per_proc
    # every increment saw a distinct value: no two callers were admitted as "the n-th"
    assert sorted(seen) == list(range(1, procs * per_proc + 1))


def test_client_made_before_fork_is_not_shared(memcached):
    store = MemcachedStore([("127.0.0.1", memcached.port)])
    store.set("before-fork", b"1", ttl=30)  # the parent's socket now exists
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child():
        results.put([store.incr("after-fork", ttl=30) for _ in range(50)])

    kids = [ctx.Process(target=child) for _ in range(3)]
    for k in kids:
        k.start()
    seen = sorted(v for _ in kids for v in results.get(timeout=30))
    for k in kids:
        k.join(10)
    assert seen == list(range(1, 151))


@pytest.fixture
def private_memcached():
    """A memcached of this test's own, free to kill or freeze."""
    server = Memcached().start()
    yield server
    server.stop()


def test_frozen_server_times_out_then_fails_fast(private_memcached):
    store = MemcachedStore([("127.0.0.1", private_memcached.port)], timeout=0.2,
                           connect_timeout=0.2, retry_after=1.0)
    store.set("k", b"v", ttl=30)
    fault_in(private_memcached, "freeze")
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.get("k")
    first = time.monotonic() - started
    assert first < 0.6, f"a frozen server held the call {first:.2f}s"
    started = time.monotonic()
    for _ in range(20):  # while the server is left alone, calls must not wait at all
        with pytest.raises(StoreError):
            store.get("k")
    assert time.monotonic() - started < 0.05
    private_memcached.resume()
    time.sleep(1.2)
    assert store.get("k") == b"v"  # recovery is automatic


def test_killed_server_is_store_error_and_recovers(private_memcached):
    store = MemcachedStore([("127.0.0.1", private_memcached.port)], retry_after=0.5)
    store.set("k", b"v", ttl=30)
    private_memcached.stop()
    for op in (lambda: store.get("k"), lambda: store.incr("n", ttl=5),
               lambda: store.set("k", b"x", ttl=5), lambda: store.add("a", b"x", ttl=5),
               lambda: store.get_many(["k"]), store.ping):
        with pytest.raises(StoreError):
            op()
    private_memcached.start()  # same port, empty
    time.sleep(0.7)
    store.set("k", b"again", ttl=30)
    assert store.get("k") == b"again"
    assert store.incr("n", ttl=30) == 1


def test_write_to_frozen_server_is_an_error_not_a_silent_loss(private_memcached):
    # pymemcache's default is fire-and-forget; the store must wait for the reply.
    store = MemcachedStore([("127.0.0.1", private_memcached.port)], timeout=0.2)
    store.get("warm-up")
    fault_in(private_memcached, "freeze")
    with pytest.raises(StoreError):
        store.set("k", b"v", ttl=30)
    private_memcached.resume()


def test_store_error_names_no_server_to_clients(private_memcached):
    store = MemcachedStore([("127.0.0.1", private_memcached.port)])
    private_memcached.stop()
    with pytest.raises(StoreError) as info:
        store.get("k")
    body = info.value.render()[2].decode()
    assert str(private_memcached.port) not in body and "127.0.0.1" not in body
    assert info.value.status == 503


def test_restarted_server_costs_no_error(private_memcached):
    """Issue 10, item 4: the first call on a socket to a restarted memcached failed (one
    503 per worker after each restart). It is retried once, at once."""
    store = MemcachedStore([("127.0.0.1", private_memcached.port)], retry_after=1.0)
    store.set("k", b"v", ttl=30)  # the connection now exists
    private_memcached.stop()
    private_memcached.start()  # same port, empty; this store made no call meanwhile
    for op in (lambda: store.get("k"), lambda: store.incr("n", ttl=30),
               lambda: store.get_everywhere(["k"]), lambda: store.set("k", b"x", ttl=30)):
        private_memcached.stop()
        private_memcached.start()
        op()  # no StoreError


def test_frozen_server_is_not_retried(private_memcached):
    store = MemcachedStore([("127.0.0.1", private_memcached.port)], timeout=0.2,
                           connect_timeout=0.2)
    store.get("warm-up")
    fault_in(private_memcached, "freeze")
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.get("k")
    assert time.monotonic() - started < 0.35  # one timeout, not two
    private_memcached.resume()


@pytest.fixture
def two_nodes():
    nodes = [Memcached().start(), Memcached().start()]
    yield nodes
    for node in nodes:
        node.stop()


@pytest.mark.parametrize("lost", [pytest.param(0, id="first node restarted"),
                                  pytest.param(1, id="second node restarted")])
def test_a_marker_written_everywhere_survives_one_node_restart(two_nodes, lost, caplog):
    store = MemcachedStore([("127.0.0.1", n.port) for n in two_nodes], retry_after=0.2)
    assert store.set_everywhere("revoked:s1", b"123.5", ttl=60) == 2
    store.get_everywhere([])  # both nodes now carry the store's sentinel
    caplog.clear()
    two_nodes[lost].stop()
    two_nodes[lost].start()
    time.sleep(0.25)  # past retry_after: the restarted node is asked again
    with caplog.at_level("WARNING", logger="wsgi_gateway.store"):
        assert store.get_everywhere(["revoked:s1"]) == {"revoked:s1": [b"123.5"]}
        store.get_everywhere(["revoked:s1"])
    restarts = [r for r in caplog.records if "holds no gateway data" in r.getMessage()]
    assert len(restarts) == 1 and str(two_nodes[lost].port) in restarts[0].getMessage()


def test_everywhere_with_one_node_down_and_one_frozen(two_nodes):
    # timeouts of 1 s: a loaded CI host can hold a live node's answer past 0.2 s
    store = MemcachedStore([("127.0.0.1", n.port) for n in two_nodes], timeout=1.0,
                           connect_timeout=1.0, retry_after=5)
    store.set_everywhere("m", b"1", ttl=60)
    two_nodes[0].stop()
    assert store.get_everywhere(["m"]) == {"m": [b"1"]}  # the other answers
    assert store.set_everywhere("m2", b"2", ttl=60) == 1
    fault_in(two_nodes[1], "freeze")
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.get_everywhere(["m"])
    assert time.monotonic() - started < 2.5  # bounded by the timeout, not a hang
    two_nodes[1].resume()
