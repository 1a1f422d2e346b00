"""``wsgi-gateway eval``: one expression against claims and a request, or a REPL."""

from __future__ import annotations

import io
import json

import pytest

from wsgi_gateway.cli import main
from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.repl import Inputs, activation, repl

ENGINES = ["cel-python", "cel-cpp"]


@pytest.fixture
def claims(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text(json.dumps({"sub": "ann", "scope": "orders:read admin", "groups": ["ops"],
                                "iat": 1700000000.0}))
    return str(path)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expression, extra, out", [
    pytest.param("token.scopes", [], "['orders:read', 'admin']", id="token from claims"),
    pytest.param("'ops' in claims.groups && request.method == 'POST'", [], "true", id="bool in CEL syntax"),
    pytest.param("request.headers['x-tenant'] + request.path + request.query.q", ["-H", "X-Tenant: acme"],
                 "'acme/v1/orders7'", id="headers, path and query"),
    pytest.param("claims.iat", [], "1700000000.0", id="double stays double"),
    pytest.param("now == timestamp('2026-01-01T00:00:00Z')", ["--now", "2026-01-01T00:00:00Z"], "true",
                 id="injected now"),
    pytest.param("claims.missing", [], None, id="evaluation error"),
    pytest.param("request.methd", [], None, id="misspelt field"),
])
def test_eval_one_expression(claims, capsys, engine, expression, extra, out):
    status = main(["eval", expression, "--claims", claims, "--request", "POST /v1/orders?q=7",
                   "--engine", engine, *extra])
    captured = capsys.readouterr()
    if out is None:
        assert status == 1 and captured.err.strip() and not captured.out
    else:
        assert status == 0 and captured.out.strip() == out, captured


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # a real terminal cannot be attached to a test run
        return True


@pytest.mark.parametrize("engine", ENGINES)
def test_repl(engine):
    engine_ = get_engine(engine)
    values = activation(engine_, Inputs({"sub": "ann"}))
    out = io.StringIO()
    status = repl(engine_, values, _Terminal("claims.sub\n\n# a comment\n1 / 0\n"), out)
    assert status == 1
    lines = out.getvalue().split("\n")
    assert lines[0] == "cel> 'ann'" and lines[1].startswith("cel> cel> cel> error: ")  # messages differ by engine
    assert "divide by zero" in lines[1] and lines[2:] == ["cel> ", ""]
    piped = io.StringIO()
    assert repl(engine_, values, io.StringIO("claims.sub == 'ann'\n"), piped) == 0
    assert piped.getvalue() == "true\n"
