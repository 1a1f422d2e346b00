"""apis[].upstream at load: the three spellings, and every fault named by file:line."""

from __future__ import annotations

import pytest

from wsgi_gateway.config import load_config
from wsgi_gateway.errors import ConfigError


def _load(tmp_path, upstream: str):
    path = tmp_path / "gw.yaml"
    path.write_text(f"apis:\n  - name: a\n    path: /a\n    upstream: {upstream}\n")
    return load_config(path).apis[0].upstream


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("app", {"kind": "app", "targets": ()}, id="app"),
    pytest.param("http://127.0.0.1:9000/", {"kind": "url", "targets": ("http://127.0.0.1:9000",)},
                 id="one URL"),
    pytest.param("{targets: [http://a:1/base/, 'https://b']}",
                 {"targets": ("http://a:1/base", "https://b")}, id="targets"),
    pytest.param("{targets: http://a:1, balance: least_outstanding, strip_path: true, "
                 "max_body: 1MiB, read_timeout: 5s, health: {failures: 5, cooldown: 1m}}",
                 {"balance": "least_outstanding", "strip_path": True, "max_body": 2**20,
                  "read_timeout": 5.0}, id="options"),
])
def test_upstream_spellings(tmp_path, text, expected):
    upstream = _load(tmp_path, text)
    for key, value in expected.items():
        assert getattr(upstream, key) == value, key


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("ftp://x", "FILE:4: apis[0].upstream: 'ftp://x': expected an http:// or "
                 "https:// URL with a host", id="scheme"),
    pytest.param("http://a:1?x=1", "a target takes no query", id="query"),
    pytest.param("'http://user:pw@a:1'", "a target takes no query, fragment or credentials",
                 id="credentials"),
    pytest.param("http://a:99999", "bad port", id="port"),
    pytest.param("{balance: round_robin}", "a mapping upstream needs targets", id="no targets"),
    pytest.param("{targets: []}", "expected a URL or a non-empty list", id="empty targets"),
    pytest.param("{targets: [http://a:1, 'http://a:1/']}", "a target is listed twice", id="twice"),
    pytest.param("{targets: http://a:1, balance: random}",
                 "FILE:4: apis[0].upstream.balance: expected one of 'round_robin', "
                 "'least_outstanding', got 'random'", id="balance"),
    pytest.param("{targets: http://a:1, max_body: lots}", "expected a size such as", id="size"),
    pytest.param("{targets: http://a:1, read_timeout: 0}", "must be more than 0", id="timeout"),
    pytest.param("{targets: http://a:1, tls: {ca_file: nowhere.pem}}",
                 "apis[0].upstream.tls.ca_file: 'nowhere.pem': no such file", id="missing CA"),
    pytest.param("{targets: http://a:1, stripPath: true}",
                 "apis[0].upstream.stripPath: unknown key (did you mean 'strip_path'?)", id="typo"),
    pytest.param("42", "expected 'app', a URL or a mapping with targets, got 42", id="number"),
])
def test_bad_upstreams_stop_loading(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    problems = "\n".join(err.value.problems).replace(str(tmp_path / "gw.yaml"), "FILE")
    assert message in problems
