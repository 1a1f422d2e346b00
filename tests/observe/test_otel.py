"""OpenTelemetry spans (``tracing.otel``): the span tree, its parent, its attributes."""

from __future__ import annotations

import json
import sys

import pytest
import requests
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from tests.observe.support import observed_config, write
from tests.support.gateways import SECRET_ENV, mint
from wsgi_gateway import build_app, load_config
from wsgi_gateway.errors import ConfigError

pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
COOKIE = "sessionid=cookie-secret-4f1d9a"
STAGES = ["authentication", "sessions", "rules", "limits", "upstream"]


@pytest.fixture
def traced(tmp_path, monkeypatch):
    """make(otel=...) -> (client, finished spans(), audit lines(), upstream recorder)."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    gateways = []

    def make(otel: dict | None = None, metrics: bool = False):
        config = observed_config(tmp_path, None)
        config["metrics"]["enabled"] = metrics
        config["client_headers"] = {"trusted_proxies": ["10.0.0.1"]}
        if otel is not None:
            config["tracing"] = {"otel": otel}
        upstream = Recorder()
        gateway = build_app(load_config(write(tmp_path, config)), upstream)
        gateways.append(gateway)
        exporter = InMemorySpanExporter()
        if gateway.observer is not None and gateway.observer.spans is not None:
            gateway.observer.spans.make_exporter = lambda _config: exporter

        def spans():
            gateway.observer.flush()
            return exporter.get_finished_spans()

        def audit():
            path = tmp_path / "audit.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return BufferedClient(LintMiddleware(gateway)), spans, audit, upstream

    yield make
    for gateway in gateways:
        gateway.close()


ON = {"enabled": True, "exporter": "none"}


def _tree(spans):
    [root] = [s for s in spans if s.parent is None or s.parent.is_remote]
    children = [s for s in spans if s is not root]
    return root, children


def test_one_request_span_with_a_child_per_stage(traced):
    client, spans, audit, upstream = traced(ON)
    response = client.get("/api/orders", headers={"Authorization": f"Bearer {mint(scope='vip')}"})
    assert response.status_code == 200
    root, children = _tree(spans())
    assert root.name == "GET api" and root.kind.name == "SERVER"
    assert [c.name for c in children] == STAGES
    assert all(c.parent.span_id == root.context.span_id for c in children)
    assert all(c.context.trace_id == root.context.trace_id for c in children)
    assert root.start_time <= children[0].start_time and children[-1].end_time <= root.end_time
    # the same trace as the audit line; the upstream's parent is the request span
    sent = upstream.environ["HTTP_TRACEPARENT"].split("-")
    assert f"{root.context.trace_id:032x}" == sent[1] == audit()[-1]["trace_id"]
    assert f"{root.context.span_id:016x}" == sent[2]
    assert root.attributes["gateway.request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("peer, believed", [
    pytest.param("10.0.0.1", True, id="trusted proxy: its span is the parent"),
    pytest.param("127.0.0.1", False, id="any client: a new trace"),
])
def test_parent_only_from_a_trusted_traceparent(traced, peer, believed):
    client, spans, _audit, _upstream = traced(ON)
    client.get("/api/orders", headers={"Authorization": f"Bearer {mint()}", "traceparent": PARENT},
               environ_base={"REMOTE_ADDR": peer})
    root, _ = _tree(spans())
    assert (f"{root.context.trace_id:032x}" == TRACE_ID) is believed
    if believed:
        assert root.parent.is_remote and f"{root.parent.span_id:016x}" == CALLER_SPAN
    else:
        assert root.parent is None


@pytest.mark.parametrize("method, auth, status, decision", [
    pytest.param("GET", True, 200, "allow", id="allowed"),
    pytest.param("DELETE", True, 403, "deny", id="denied"),
    pytest.param("GET", False, 401, "unauthenticated", id="no credential"),
    pytest.param("BREW", True, 403, "deny", id="unknown method"),
])
def test_attributes_are_bounded_and_free_of_secrets(traced, method, auth, status, decision):
    client, spans, _audit, _upstream = traced(ON)
    token = mint(sub="subject-7e2b")
    headers = {"Cookie": COOKIE, **({"Authorization": f"Bearer {token}"} if auth else {})}
    response = client.open("/api/orders/42?q=query-secret-91c", method=method, headers=headers)
    assert response.status_code == status
    found = spans()
    root, _ = _tree(found)
    assert root.attributes["gateway.decision"] == decision
    assert root.attributes["http.response.status_code"] == status
    assert root.attributes["http.request.method"] == (method if method != "BREW" else "_OTHER")
    text = json.dumps([json.loads(s.to_json()) for s in found])
    for secret in (token, token.split(".")[1], "cookie-secret", "query-secret", "subject-7e2b",
                   "/api/orders/42", "BREW"):
        assert secret not in text, secret


@pytest.mark.parametrize("otel, traceparent, recorded", [
    pytest.param({"sample": 0.0}, None, False, id="sample 0: a new trace is not recorded"),
    pytest.param({"sample": 1.0}, None, True, id="sample 1: every new trace"),
    pytest.param({"sample": 0.0}, PARENT, True, id="a trusted caller's sampled flag wins"),
    pytest.param({"sample": 1.0}, PARENT[:-2] + "00", False, id="a trusted caller's unsampled flag"),
])
def test_sampling(traced, otel, traceparent, recorded):
    """What is recorded is what the upstream is told (its traceparent's flags)."""
    client, spans, _audit, upstream = traced({**ON, **otel})
    headers = {"Authorization": f"Bearer {mint()}", **({"traceparent": traceparent} if traceparent else {})}
    client.get("/api/orders", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert len(spans()) == (1 + len(STAGES) if recorded else 0)
    assert upstream.environ["HTTP_TRACEPARENT"].endswith("-01" if recorded else "-00")


def test_new_traces_are_sampled_by_share():
    from wsgi_gateway.observe.trace import start_trace

    ids = iter(f"{i:032x}" if n == 16 else "00f067aa0ba902b7" for i in range(0, 1 << 64, 1 << 58)
               for n in (16, 8))
    flags = [start_trace({}, False, new_id=lambda n: next(ids), sample=0.25).flags for _ in range(64)]
    assert flags.count("01") == 16  # the low 64 bits below a quarter of their range


def test_off_by_default_and_never_imported(tmp_path, monkeypatch):
    """Off: no Spans object, no stage marks, and ``observe.otel`` is not loaded."""
    import subprocess

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config = observed_config(tmp_path, None)
    config["metrics"]["enabled"] = False
    path = write(tmp_path, config)
    code = ("import sys; from wsgi_gateway import build_app, load_config; "
            f"g = build_app(load_config({str(path)!r})); "
            "print(g.observer.spans, 'wsgi_gateway.observe.otel' in sys.modules, "
            "any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False", "False"]


def test_without_the_extra_start_up_stops_naming_it(tmp_path, monkeypatch):
    """The [otel] extra missing: a ConfigError naming the file and the extra, no
    traceback. Blocking the import in a child interpreter is the only way to lose an
    installed package for real without uninstalling it."""
    import subprocess

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config = observed_config(tmp_path, None)
    config["tracing"] = {"otel": ON}
    path = write(tmp_path, config)
    code = ("import sys; sys.modules['opentelemetry'] = None\n"
            "from wsgi_gateway import build_app, load_config\n"
            "from wsgi_gateway.errors import ConfigError\n"
            f"try:\n    build_app(load_config({str(path)!r}))\n"
            "except ConfigError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"{path}: tracing.otel: needs the [otel] extra" in out.stdout


@pytest.mark.parametrize("otel, message", [
    pytest.param({"enabled": True, "exporter": "zipkin"}, "tracing.otel.exporter: expected one of",
                 id="unknown exporter"),
    pytest.param({"enabled": True, "exporter": "none", "file": "x.json"}, "only for exporter: console",
                 id="file without console"),
    pytest.param({"enabled": True, "endpoint": "collector:4318"}, "an http(s) URL", id="bad endpoint"),
    pytest.param({"enabled": True, "colour": "red"}, "tracing.otel.colour: unknown key", id="unknown key"),
    pytest.param({"enabled": True, "sample": 2}, "between 0 and 1", id="sample over 1"),
])
def test_bad_config_names_file_and_line(tmp_path, monkeypatch, otel, message):
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config = observed_config(tmp_path, None)
    config["tracing"] = {"otel": otel}
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, config))
    [problem] = err.value.problems
    assert message in problem and "gateway.yaml:" in problem


@pytest.mark.e2e
def test_console_spans_from_gunicorn_workers(tmp_path, memcached):
    """Real gunicorn, 2 workers: the SDK starts in each worker after the fork; the
    console exporter's lines reach the file when the workers exit."""
    from tests.support.processes import GatewayProcess

    config = observed_config(tmp_path, memcached.address)
    config["metrics"]["enabled"] = False
    config["tracing"] = {"otel": {"enabled": True, "exporter": "console", "file": "spans.jsonl"}}
    process = GatewayProcess(write(tmp_path, config), workers=2, env=SECRET_ENV).start()
    try:
        token = mint(scope="vip")
        for _ in range(6):
            response = requests.get(process.url + "/api/orders", timeout=10,
                                    headers={"Authorization": f"Bearer {token}", "traceparent": PARENT})
            assert response.status_code == 200
    finally:
        process.stop()
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    roots = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert len(roots) == 6 and len(spans) == 6 * (1 + len(STAGES))
    traces = {s["context"]["trace_id"] for s in spans}
    assert len(traces) == 6 and "0x" + TRACE_ID not in traces  # 127.0.0.1 is not trusted here


def test_otlp_exporter_posts_to_the_configured_endpoint(tmp_path, monkeypatch):
    """The OTLP/HTTP exporter (imported only when chosen) sends protobuf to the endpoint:
    a real HTTP server on a free port stands in for the collector."""
    import http.server
    import threading

    received = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for key, value in SECRET_ENV.items():
            monkeypatch.setenv(key, value)
        config = observed_config(tmp_path, None)
        config["metrics"]["enabled"] = False
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        config["tracing"] = {"otel": {"enabled": True, "exporter": "otlp", "endpoint": endpoint}}
        gateway = build_app(load_config(write(tmp_path, config)), Recorder())
        token = mint()
        BufferedClient(gateway).get("/api/orders", headers={"Authorization": f"Bearer {token}"})
        gateway.observer.flush()
        gateway.close()
    finally:
        server.shutdown()
    [(path, content_type, body)] = received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"authentication" in body and token.encode() not in body
