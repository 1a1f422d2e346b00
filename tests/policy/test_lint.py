"""Lint: warnings for rules that load but are usually wrong (issue 11, item 3)."""

from __future__ import annotations

import pytest

from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.lint import lint_rule_file
from wsgi_gateway.policy.rulefile import load_rule_file

ENGINES = ["cel-python", "cel-cpp"]


def lint(tmp_path, text: str, engine: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return [w.replace(str(path), "FILE") for w in lint_rule_file(load_rule_file(path, get_engine(engine)), engine)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text, warning", [
    pytest.param("validate:\n  - {expr: \"!has(claims.email_verified) || claims.email_verified\", message: m}\n"
                 "headers:\n  X-Email: \"claims.email\"\n",
                 "FILE:4: X-Email: reads claims.email where claims.email_verified does not guard it",
                 id="email verified elsewhere in the file is not enough"),
    pytest.param("allow:\n  - when: \"claims.email.endsWith('@acme.test')\"\n",
                 "FILE:2: allow[0]: reads claims.email where", id="email in a condition"),
    pytest.param("headers:\n  X-Email: \"claims.email_verified || true ? claims.email : ''\"\n",
                 "reads claims.email where claims.email_verified does not guard it", id="email_verified || does not guard"),
    pytest.param("headers:\n  X-Email: \"claims.email_verified ? '' : claims.email\"\n",
                 "does not guard", id="email in the false branch"),
    pytest.param("allow:\n  - when: \"request.method == 'get'\"\n",
                 "FILE:2: allow[0]: compares request.method with 'get'", id="lower-case method"),
    pytest.param("deny:\n  - {when: \"'post' != request.method\", reason: r}\n",
                 "compares request.method with 'post'", id="lower-case method on the left"),
    pytest.param("allow:\n  - when: \"request.method in ['GET', 'head']\"\n",
                 "compares request.method with 'head'", id="lower-case method in a list"),
    pytest.param("assign:\n  - {policy: gold, when: \"true\"}\n",
                 "FILE:2: assign[0]: reads no variable, so it assigns gold to everyone", id="constant assign"),
    pytest.param("validate:\n  - {expr: \"1 == 2\", message: m}\n",
                 "validate[0]: reads no variable, so it rejects every token", id="constant validate"),
])
def test_warnings(tmp_path, engine, text, warning):
    found = lint(tmp_path, text, engine)
    assert any(warning in w for w in found), found


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text", [
    pytest.param("headers:\n  X-Email: \"claims.email_verified == true ? claims.email : ''\"\n",
                 id="email guarded in the same expression"),
    pytest.param("allow:\n  - when: \"claims.email.endsWith('@acme.test') && claims.email_verified\"\n",
                 id="email guarded by && on either side"),
    pytest.param("deny:\n  - {when: \"has(claims.email) && !has(claims.email_verified)\", reason: r}\n",
                 id="has() reads no value"),
    pytest.param("allow:\n  - when: \"request.method in ['GET', 'HEAD'] && request.path == '/get'\"\n",
                 id="upper-case methods"),
    pytest.param("assign:\n  - {policy: gold, when: \"'admin' in token.scopes\"}\n", id="assign reading the token"),
])
def test_no_warning(tmp_path, engine, text):
    assert lint(tmp_path, text, engine) == []
