"""Custom authenticators for tests: one that faults on demand."""

from __future__ import annotations

from wsgi_gateway.authn.credentials import CredentialPlaces
from wsgi_gateway.errors import Unauthorized
from wsgi_gateway.identity import Identity


class Moody:
    """X-Mood: ok → an identity; crash → RuntimeError; no → Unauthorized; absent → None."""

    id = "moody"
    challenge = 'Moody realm="test"'
    credentials = CredentialPlaces(headers=("X-Mood",))

    def __init__(self, options, *, api, store, clock):
        self.options = options

    def authenticate(self, request):
        mood = request.headers.get("X-Mood")
        if mood is None:
            return None
        if mood == "crash":
            raise RuntimeError("the database password is hunter2")
        if mood == "no":
            raise Unauthorized("not in the mood", error="invalid_token")
        if mood == "weird":
            return "not an identity"
        return Identity(method=self.id, subject=self.options.get("subject", "moody-user"))

    def ready(self):
        return None


class NotAnAuthenticator:
    def __init__(self, options, **kw):
        pass
