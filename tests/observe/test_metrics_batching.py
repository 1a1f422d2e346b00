"""Metrics recorded per request as one tuple and aggregated in bulk at a flush: the
pending bound, a scrape's own flush, bounded signatures, histogram buckets placed as
prometheus_client places them."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import Histogram, values

from tests.observe.support import samples, value
from wsgi_gateway.config.observe import MetricsConfig
from wsgi_gateway.context import RequestContext
from wsgi_gateway.observe import metrics as metrics_module
from wsgi_gateway.observe.metrics import Metrics, render


@pytest.fixture
def prom_dir(tmp_path, monkeypatch):
    # metrics switch prometheus_client to multiprocess mode for the process: put it back
    directory = tmp_path / "prom"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.setattr(metrics_module, "_active_dir", None)
    return str(directory)


def _request(number: int, stages=("authn", "rules")) -> RequestContext:
    ctx = RequestContext(request_id=f"r{number}", api="orders", decision="allow", policies=("basic",))
    ctx.record("authn", "jwt", "identified", f"app:subject-{number}")  # a new subject each
    ctx.record("rules", "readers", "true", "allows")
    ctx.marks = [(stage, 100.0 + i * 0.001) for i, stage in enumerate(stages)]
    return ctx


def _counted(directory: str) -> float:
    found = samples(render(directory)[0].decode())
    return value(found, "gateway_requests_total", api="orders", status="200", decision="allow")


def test_reaching_the_pending_bound_flushes_on_the_request_thread(prom_dir):
    metrics = Metrics(MetricsConfig(enabled=True, flush_interval=3600.0), prom_dir, pending_max=3)
    try:
        for number in range(7):
            metrics.observe(_request(number), "GET", 200, 0.002, 100.003)
        assert _counted(prom_dir) == 6  # two full batches written, nothing dropped
        assert len(metrics._pending) == 1  # never more than the bound waits
        metrics.flush()
        assert _counted(prom_dir) == 7
    finally:
        metrics.close()


def test_a_scrape_while_another_worker_creates_its_file_is_not_a_500(prom_dir):
    """prometheus_client creates a worker's file empty and sizes it just after; a scrape
    in between raised struct.error (seen as a 500 under gunicorn in a CI run)."""
    import os

    metrics = Metrics(MetricsConfig(enabled=True, flush_interval=3600.0), prom_dir)
    try:
        metrics.observe(_request(1), "GET", 200, 0.002, 100.003)
        metrics.flush()
        open(os.path.join(prom_dir, "counter_999999.db"), "wb").close()  # being created
        assert _counted(prom_dir) == 1
    finally:
        metrics.close()


def test_a_new_subject_per_request_keeps_one_signature(prom_dir):
    metrics = Metrics(MetricsConfig(enabled=True, flush_interval=3600.0), prom_dir)
    try:
        for number in range(50):
            metrics.observe(_request(number), "GET", 200, 0.002, 100.003)
        metrics.flush()
        assert len(metrics._increments_of) == 1  # the alias is never a label: not a key
        found = samples(render(prom_dir)[0].decode())
        assert value(found, "gateway_authn_total", method="jwt", outcome="identified", reason="-") == 50
    finally:
        metrics.close()


CONFIG = """
app: contrib.demo.echo:app
apis: [{{name: open, path: /open, auth: [keyless]}}]
metrics: {{enabled: true, multiproc_dir: {dir}, flush_interval: 1h}}
"""


def test_a_scrape_sees_this_workers_requests_without_waiting(make_client, prom_dir):
    client = make_client(CONFIG.format(dir=prom_dir))  # nothing flushes for an hour
    for _ in range(5):
        assert client.get("/open/x").status_code == 200
    found = samples(client.get("/.gateway/metrics").get_data(as_text=True))
    assert value(found, "gateway_requests_total", api="open", status="200") == 5
    assert value(found, "gateway_request_duration_seconds_count", api="open") == 5
    assert value(found, "gateway_stage_duration_seconds_count", api="open", stage="authn") == 5
    assert value(found, "gateway_stage_duration_seconds_bucket", api="open", stage="upstream",
                 le="+Inf") == 5


EDGES = [0.0, 0.0005, 0.00050001, 0.001, 0.0025, 0.5, 1.0, 10.0, 10.5, 1e9, -0.25, -1e-9]


@pytest.mark.parametrize("observed", [
    pytest.param(EDGES, id="bucket bounds, above the last, negative"),
    pytest.param([random.Random(7).expovariate(200) for _ in range(500)], id="500 spread values"),
    pytest.param([], id="none"),
])
def test_bulk_observations_land_where_one_by_one_ones_do(observed):
    def histogram(name):
        return Histogram(name, "test", buckets=metrics_module._BUCKETS, registry=None)

    one_by_one, bulk = histogram("one_by_one"), histogram("bulk")
    for seconds in observed:
        one_by_one.observe(max(seconds, 0.0))  # what a request recorded before batching
    Metrics._observe_all(bulk, list(observed))

    def read(hist):
        return {s.name.rsplit("_", 1)[1] + str(s.labels): s.value for s in hist.collect()[0].samples
                if not s.name.endswith("_created")}
    expected, got = read(one_by_one), read(bulk)
    assert got.keys() == expected.keys()
    for key, amount in expected.items():
        assert math.isclose(got[key], amount, rel_tol=1e-9, abs_tol=1e-12), key
