"""One direction: header rules that read ``limits`` run in their own stage between Limits
and Mutate (no closure from Mutate back into the rules), and the layers share typed
context fields, not an untyped extras dict."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from tests.support.gateways import gateway_config
from wsgi_gateway.context import RequestContext
from wsgi_gateway.middleware import Limits, Mutate, Rules
from wsgi_gateway.middleware.limit_headers import LimitHeaders


def _layers(gateway) -> list[type]:
    app = gateway.gateway.router.routes[0][2]
    out = []
    while app is not None and hasattr(app, "app"):
        out.append(type(app))
        app = app.app
    return out


@pytest.mark.parametrize(("headers", "staged"), [
    pytest.param('X-Left: "string(limits.quota.remaining)"', True, id="a header reads limits"),
    pytest.param('X-User: "claims.sub"', False, id="no header reads limits"),
])
def test_limit_headers_stage_sits_between_limits_and_mutate(in_process, tmp_path, headers, staged):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(f"headers:\n  {headers}\n"))
    gateway = in_process(gateway_config(None, policies={"basic": {}}, api={"rules": "rules.yaml"}))
    layers = _layers(gateway)
    expected = [Rules, Limits, LimitHeaders, Mutate] if staged else [Rules, Limits, Mutate]
    assert [layer for layer in layers if layer in (Rules, Limits, LimitHeaders, Mutate)] == expected


def test_the_context_has_typed_fields_and_no_extras():
    fields = {f.name for f in dataclasses.fields(RequestContext)}
    assert "extras" not in fields
    assert {"session_record", "mapped_identity", "limit_verdicts"} <= fields
