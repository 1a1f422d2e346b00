"""Store round trips per request (issue 15), counted on the wire: the gateway talks to a
real memcached through a loopback relay that counts each burst the client sends and
waits on (a round trip) and the commands in it."""

from __future__ import annotations

import json
import selectors
import socket
import threading

import pytest

from tests.support.gateways import gateway_config, mint

COMMANDS = (b"get ", b"gets ", b"set ", b"add ", b"cas ", b"incr ", b"decr ", b"touch ",
            b"delete ", b"ma ", b"mg ", b"ms ", b"md ")


class CountingRelay:
    """Forwards one loopback port to memcached, counting what clients send."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.round_trips = self.commands = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.round_trips = self.commands = 0

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.round_trips, self.commands

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, tuple[socket.socket, bool]] = {}
        while not self._stop.is_set():
            for key, _ in selector.select(0.05):
                sock = key.fileobj
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    for s in (client, upstream):
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    peers[client], peers[upstream] = (upstream, True), (client, False)
                    selector.register(client, selectors.EVENT_READ, None)
                    selector.register(upstream, selectors.EVENT_READ, None)
                    continue
                other, from_client = peers[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for s in (sock, other):
                        selector.unregister(s)
                        peers.pop(s, None)
                        s.close()
                    continue
                if from_client:
                    # a value line of a set/add is data, not a command; these tests
                    # only count the command lines the gateway's commands start with
                    with self._lock:
                        self.round_trips += 1
                        self.commands += sum(1 for line in data.split(b"\r\n")
                                             if line.startswith(COMMANDS))
                other.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()


@pytest.fixture
def relay(memcached):
    relay = CountingRelay(("127.0.0.1", memcached.port))
    yield relay
    relay.close()


@pytest.mark.parametrize("limits", [
    pytest.param({"mode": "exact"}, id="exact mode"),
    pytest.param({}, id="default mode, small limits (counted exactly)"),
    pytest.param({"mode": "exact", "algorithm": "fixed"}, id="exact mode, fixed windows"),
])
def test_steady_path_costs_one_round_trip_with_rate_and_quota(in_process, relay, limits):
    g = in_process(gateway_config(relay.address, limits=limits,
                                  policies={"basic": {"rate": "1000/60s", "quota": "5000/1d"}}))
    token = mint(sub="steady")
    assert g.get(token).status_code == 200  # first use: session written, windows opened
    assert g.get(token).status_code == 200  # the previous rate window read once
    relay.reset()
    for _ in range(20):
        response = g.get(token)
        assert response.status_code == 200
    round_trips, commands = relay.counts()
    # the session is re-read once a second (cache_ttl): at most one more round trip
    assert 20 <= round_trips <= 21, (round_trips, commands)
    assert response.headers["RateLimit-Policy"] == '"rate";q=1000;w=60, "quota";q=5000;w=86400'


def test_a_new_identity_costs_two_round_trips(in_process, relay):
    g = in_process(gateway_config(relay.address,
                                  policies={"basic": {"rate": "1000/60s", "quota": "5000/1d"}}))
    assert g.get(mint(sub="warm-up")).status_code == 200
    for number in range(5):
        relay.reset()
        assert g.get(mint(sub=f"new-{number}")).status_code == 200
        round_trips, commands = relay.counts()
        # the session and revocation markers read; then rate, previous window and quota
        # counted with the session record added, in one burst (it was a third round
        # trip after the request)
        assert round_trips == 2, (number, round_trips, commands)


def test_a_new_identity_without_limits_adds_its_session_after_the_request(in_process, relay, memcached):
    """No counters to take: no round trip to ride, the record is added after the request."""
    g = in_process(gateway_config(relay.address, policies={"basic": {}}))
    assert g.get(mint(sub="warm-up")).status_code == 200
    relay.reset()
    assert g.get(mint(sub="unlimited")).status_code == 200
    assert relay.counts()[0] == 2
    records = [k for k in memcached_keys(memcached) if ":sess:" in k]
    assert len(records) == 2


def test_a_large_limit_is_leased_by_default_and_costs_no_round_trip(in_process, relay):
    from wsgi_gateway.limits.counters import auto_lease
    assert auto_lease(100_000) == 100 and auto_lease(9_999) == 1
    g = in_process(gateway_config(relay.address,
                                  policies={"basic": {"rate": "1000000/60s", "quota": "100000/30d"}}))
    token = mint(sub="leased")
    for _ in range(3):
        assert g.get(token).status_code == 200
    relay.reset()
    for _ in range(20):
        assert g.get(token).status_code == 200
    round_trips, _ = relay.counts()
    assert round_trips <= 1  # the session re-read at most, once a second


def test_auto_leases_never_over_admit_across_workers(in_process, memcached):
    """Two gateways (two workers) on one store, a quota of 10,000 leased 10 at a time,
    9,980 already used: together they serve 20 at most, then refuse."""
    config = gateway_config(memcached.address, policies={"basic": {"quota": "10000/30d"}})
    a, b = in_process(config, "a"), in_process(config, "b")
    token = mint(sub="near-the-end")
    assert a.get(token).status_code == 200          # 1 used; the counter exists
    key = next(k for k in memcached_keys(memcached) if ":q:" in k)
    memcached_client(memcached).incr(key, 9_979)    # 9,980 used
    served = 0
    for _ in range(40):
        for gateway in (a, b):
            served += gateway.get(token).status_code == 200
    assert served <= 20, served
    assert served >= 10  # leases strand at most lease - 1 per worker


def memcached_client(memcached):
    from pymemcache.client.base import Client
    return Client(("127.0.0.1", memcached.port))


def memcached_keys(memcached) -> list[str]:
    client = memcached_client(memcached)
    keys = []
    from urllib.parse import unquote
    for line in client.raw_command(b"lru_crawler metadump all", b"END").decode().splitlines():
        if line.startswith("key="):
            keys.append(unquote(line.split()[0][4:]))
    return keys


def test_a_new_session_is_written_once_with_its_policies(in_process, memcached):
    """Issue 15: a new identity's record was added with no policies, then rewritten by
    the touch right after (and each counter took an ``add`` after a missed ``incr``)."""
    g = in_process(gateway_config(memcached.address,
                                  policies={"basic": {"rate": "1000/60s", "quota": "5000/1d"}}))
    client = memcached_client(memcached)

    def sets() -> int:
        return int(client.stats()[b"cmd_set"])

    assert g.get(mint(sub="warm-up")).status_code == 200  # the store's sentinel put back
    before = sets()
    for number in range(4):
        assert g.get(mint(sub=f"fresh-{number}")).status_code == 200
    assert sets() - before == 4  # one record each; counters are created by their increment
    before = sets()
    token = mint(sub="fresh-0")
    for _ in range(10):
        assert g.get(token).status_code == 200
    assert sets() - before == 0  # nothing until touch_interval or the policies change
    records = [k for k in memcached_keys(memcached) if ":sess:" in k]
    assert len(records) == 5
    assert all(json.loads(client.get(k))["policies"] == ["basic"] for k in records)
