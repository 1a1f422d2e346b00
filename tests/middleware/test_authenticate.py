"""Authenticate used alone: the method chain, challenges, and fail-closed answers."""

from __future__ import annotations

import pytest
from werkzeug.middleware.lint import LintMiddleware

from tests.middleware.conftest import BufferedClient, Recorder, problem
from wsgi_gateway.errors import InvalidToken, ServiceUnavailable
from wsgi_gateway.identity import Identity
from wsgi_gateway.middleware import Authenticate, RequestContextMiddleware


class HeaderToken:
    """A test method: a credential in X-Test-Token; 'good' is good, anything else is bad."""

    id = "header-token"
    challenge = 'Bearer realm="test"'

    def __init__(self, fault=None):
        self.fault = fault
        self.calls = 0

    def authenticate(self, request):
        self.calls += 1
        if self.fault:
            raise self.fault
        token = request.headers.get("X-Test-Token")
        if token is None:
            return None
        if token != "good":
            raise InvalidToken("the token is not valid")
        return Identity(method=self.id, subject="alice", client_id="app")

    def ready(self):
        return None


class Other(HeaderToken):
    id = "other"
    challenge = 'Basic realm="test"'

    def authenticate(self, request):
        self.calls += 1
        return None


def client_for(*authenticators):
    upstream = Recorder()
    app = RequestContextMiddleware(Authenticate(upstream, authenticators=authenticators))
    return BufferedClient(LintMiddleware(app)), upstream


def test_a_good_credential_sets_the_identity():
    client, upstream = client_for(HeaderToken())
    assert client.get("/", headers={"X-Test-Token": "good"}).status_code == 200
    assert upstream.environ["wsgi_gateway.context"].identity.alias == "app:alice"


def test_no_credential_is_401_with_every_challenge_and_no_error_code():
    client, upstream = client_for(Other(), HeaderToken())
    response = client.get("/")
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == ['Basic realm="test"', 'Bearer realm="test"']
    assert problem(response)["type"].endswith(":unauthorized")
    assert upstream.calls == 0


def test_a_bad_credential_fails_and_does_not_fall_through():
    first, second = HeaderToken(), Other()
    client, upstream = client_for(first, second)
    response = client.get("/", headers={"X-Test-Token": "forged"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="test", error="invalid_token", error_description="the token is not valid"')
    assert second.calls == 0 and upstream.calls == 0


def test_the_first_method_that_recognises_a_credential_decides():
    other, token = Other(), HeaderToken()
    client, upstream = client_for(other, token)
    assert client.get("/", headers={"X-Test-Token": "good"}).status_code == 200
    assert other.calls == 1 and token.calls == 1


@pytest.mark.parametrize("fault, status", [
    pytest.param(ServiceUnavailable("signing keys are unavailable", retry_after=5), 503, id="keys unavailable"),
])
def test_cannot_decide_is_503_never_401(fault, status):
    client, upstream = client_for(HeaderToken(fault=fault))
    response = client.get("/", headers={"X-Test-Token": "good"})
    assert response.status_code == status and response.headers["Retry-After"] == "5"
    assert upstream.calls == 0


def test_needs_an_authenticator():
    with pytest.raises(ValueError):
        Authenticate(Recorder(), authenticators=[])
