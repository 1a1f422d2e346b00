"""The worker's garbage-collector tuning (issue 15: full collections stalled requests)."""

from __future__ import annotations

import gc
import weakref

import pytest

from wsgi_gateway import runtime


@pytest.fixture
def tuned(monkeypatch):
    """tune_gc() applied; the process's collector restored afterwards (thresholds,
    frozen objects, module state)."""
    threshold = gc.get_threshold()
    monkeypatch.setattr(runtime._State, "requests", 0)
    monkeypatch.setattr(runtime._State, "tuned", False)
    monkeypatch.delenv("GATEWAY_GC_LOG", raising=False)
    runtime.tune_gc()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.collect()


class Node:
    def __init__(self):
        self.other = self


def test_start_up_heap_is_frozen_and_full_collections_are_not_automatic(tuned):
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[2] == runtime._NEVER


def test_cyclic_garbage_is_collected_within_collect_every_requests(tuned):
    node = Node()
    ref = weakref.ref(node)
    gc.collect(1)                 # alive: young collections promote it to generation 2
    del node                      # a cycle: only the collector frees it
    gc.collect(1)                 # young collections no longer reach it, and
    assert ref() is not None      # generation 2 is not collected by itself
    for _ in range(runtime.COLLECT_EVERY):
        runtime.after_request()
    assert ref() is None


def test_a_full_collection_walks_only_what_was_not_frozen(tuned):
    keep = [[i] for i in range(50_000)]  # long-lived objects made after start-up
    for _ in range(runtime.COLLECT_EVERY):
        runtime.after_request()           # collected once, then frozen
    assert len(gc.get_objects(2)) < 1000  # generation 2 holds almost nothing to walk
    assert gc.get_freeze_count() > 50_000
    del keep


def operator_post_request(worker, req, environ, resp):
    """An operator's own post_request hook (named in server: as a dotted path)."""
    environ["operator hook ran"] = True


def test_an_operators_post_request_runs_after_the_gateways_not_instead(tuned, tmp_path):
    """tune_gc() switches automatic full collections off, so serve's post_request must
    keep running the bounded ones whatever hook the operator adds in server:."""
    import dataclasses

    import yaml

    from wsgi_gateway.config import load_config
    from wsgi_gateway.serve import GatewayApplication

    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({
        "app": "tests.support.apps:echo", "apis": [{"name": "a", "path": "/a", "auth": ["keyless"]}],
        "server": {"post_request": "tests.test_runtime.operator_post_request"}}))
    config = load_config(str(tmp_path / "gw.yaml"))
    application = GatewayApplication(dataclasses.replace(config))
    environ: dict = {}
    for _ in range(runtime.COLLECT_EVERY):
        application.cfg.post_request(None, None, environ, None)
    assert environ == {"operator hook ran": True}
    assert runtime._State.requests == runtime.COLLECT_EVERY  # the gateway's ran each time
