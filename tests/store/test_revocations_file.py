"""The durable revocations file: appended by one process, seen by the others within a
second of their (fake) clock, never re-read more often; torn lines skipped."""

from __future__ import annotations

import pytest

from wsgi_gateway.store import MemoryStore
from wsgi_gateway.store.revocations import DurableMarkers, RevocationsFile


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_another_process_append_is_seen_after_the_next_look(tmp_path, clock):
    path = str(tmp_path / "revoked.jsonl")
    reader, writer = RevocationsFile(path, clock=clock), RevocationsFile(path, clock=clock)
    assert reader.lookup(["gw:revoked:s1"]) == {}  # no file yet: nothing revoked
    writer.append("gw:revoked:s1", b"123.5", clock.now + 60)
    assert reader.lookup(["gw:revoked:s1"]) == {}  # looked at less than a second ago
    clock.now += 1.0
    assert reader.lookup(["gw:revoked:s1"]) == {"gw:revoked:s1": b"123.5"}
    assert writer.lookup(["gw:revoked:s1"]) == {"gw:revoked:s1": b"123.5"}  # its own, at once


def test_expired_lines_are_ignored_and_the_latest_line_wins(tmp_path, clock):
    f = RevocationsFile(str(tmp_path / "r.jsonl"), clock=clock)
    f.append("gw:a", b"1", clock.now + 10)
    f.append("gw:b", b"1", clock.now + 10)
    f.append("gw:b", b"2", clock.now + 100)
    clock.now += 20
    assert f.lookup(["gw:a", "gw:b"]) == {"gw:b": b"2"}


def test_torn_and_foreign_lines_are_skipped(tmp_path, clock):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "gw:a", "value": "5", "expires": 1e12}\n'
                    'not json\n{"key": "gw:b"}\n[1, 2]\n{"key": "gw:c", "value": "7", "exp')
    assert RevocationsFile(str(path), clock=clock).lookup(["gw:a", "gw:b", "gw:c"]) == \
        {"gw:a": b"5"}


def test_durable_store_answers_from_the_file_when_the_store_lost_it(tmp_path, clock):
    f = RevocationsFile(str(tmp_path / "r.jsonl"), clock=clock)
    first = DurableMarkers(MemoryStore(namespace="gw"), f, namespace="gw")
    assert first.set_everywhere("revoked:s1", b"99.0", ttl=60) == 1
    restarted = DurableMarkers(MemoryStore(namespace="gw"), f, namespace="gw")  # empty store
    assert restarted.get_everywhere(["revoked:s1", "other"]) == {"revoked:s1": [b"99.0"]}
    assert restarted.get("revoked:s1") is None  # other calls go to the store itself


def test_an_unwritable_file_is_a_store_error(tmp_path, clock):
    from wsgi_gateway.errors import StoreError

    (tmp_path / "dir").mkdir()
    f = RevocationsFile(str(tmp_path / "dir"), clock=clock)  # a directory: cannot append
    with pytest.raises(StoreError, match="revocations file cannot be written"):
        f.append("gw:a", b"1", clock.now + 1)
