"""Mutate used alone: what the upstream receives."""

from __future__ import annotations

import json

import pytest
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder
from wsgi_gateway.authn.credentials import CredentialPlaces
from wsgi_gateway.context import context_of
from wsgi_gateway.middleware import Mutate, RequestContextMiddleware, Rules
from wsgi_gateway.mutate import check_header_value


class InjectUser:
    """A rule set that maps the identity to headers for the upstream."""

    name = "inject"

    def evaluate(self, ctx, request):
        ctx.upstream_headers["X-User-Id"] = "alice"


def headers_seen(app_kwargs, send):
    upstream = Recorder()
    app = RequestContextMiddleware(Rules(Mutate(upstream, **app_kwargs), rules=InjectUser()))
    response = BufferedClient(LintMiddleware(app)).get("/", headers=send)
    return json.loads(response.get_data())["headers"]


def test_injected_header_replaces_the_clients_copy():
    seen = headers_seen({}, {"X-User-Id": "mallory"})
    assert seen["X-User-Id"] == "alice"


def test_extra_credential_headers_are_stripped():
    seen = headers_seen({"credentials": CredentialPlaces(headers=("X-Api-Key",))},
                        {"X-Api-Key": "k", "Authorization": "Bearer t"})
    assert "X-Api-Key" not in seen and "Authorization" not in seen


def test_credential_cookies_and_query_parameters_are_stripped():
    upstream = Recorder()
    places = CredentialPlaces(cookies=("at",), query=("access_token",))
    app = RequestContextMiddleware(Mutate(upstream, credentials=places))
    BufferedClient(LintMiddleware(app), use_cookies=False).get(
        "/?a=1&access_token=secret&b=2&access%5Ftoken=x",
        environ_overrides={"HTTP_COOKIE": "theme=dark; at=secret; lang=en"})
    assert upstream.environ["HTTP_COOKIE"] == "theme=dark; lang=en"
    assert upstream.environ["QUERY_STRING"] == "a=1&b=2"


def test_nothing_is_stripped_when_strip_auth_is_off():
    upstream = Recorder()
    places = CredentialPlaces(cookies=("at",))
    app = RequestContextMiddleware(Mutate(upstream, strip_auth=False, credentials=places))
    BufferedClient(LintMiddleware(app), use_cookies=False).get(
        "/", headers={"Authorization": "x"}, environ_overrides={"HTTP_COOKIE": "at=1"})
    assert upstream.environ["HTTP_COOKIE"] == "at=1" and upstream.environ["HTTP_AUTHORIZATION"] == "x"


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "nul\0", "x" * 9000])
def test_header_values_that_could_smuggle_are_refused(value):
    with pytest.raises(ValueError):
        check_header_value("X-User-Id", value)


def test_context_made_on_first_use_when_used_alone():
    environ = {}
    assert context_of(environ) is context_of(environ)
    assert environ["wsgi_gateway.context"].request_id
