"""A worked custom authenticator: internal services present a static token.

    auth:
      - method: custom
        class: contrib.authenticators.service_token:ServiceToken
        options:
          header: X-Service-Token            # where the token is read (default shown)
          tokens_file: conf/service-tokens.yaml  # service name -> sha256 hex of its token

The file holds only digests, so it can live in the repository; tokens are compared by
their SHA-256 (constant time). A missing header steps aside (another method may try);
an unknown token is refused with 401.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from types import MappingProxyType

import yaml

from wsgi_gateway.authn.credentials import CredentialPlaces
from wsgi_gateway.errors import InvalidRequest, InvalidToken
from wsgi_gateway.identity import Identity


class ServiceToken:
    """Authenticates internal services by a static token looked up by digest."""

    id = "service-token"

    def __init__(self, options, *, api: str, store=None, clock=None):
        self.header = options.get("header", "X-Service-Token")
        path = Path(options["tokens_file"])
        entries = yaml.safe_load(path.read_text()) or {}
        if not isinstance(entries, dict) or not all(
                isinstance(v, str) and len(v) == 64 for v in entries.values()):
            raise ValueError(f"{path}: expected service: sha256-hex entries")
        self.digests = {bytes.fromhex(d): name for name, d in entries.items()}
        self.challenge = f'ServiceToken realm="{api}"'
        self.credentials = CredentialPlaces(headers=(self.header,))

    def authenticate(self, request) -> Identity | None:
        token = request.headers.get(self.header)
        if token is None:
            return None
        if not token or len(token) > 256 or not token.isascii() or not token.isprintable():
            raise InvalidRequest(f"the {self.header} header is malformed")
        digest = hashlib.sha256(token.encode()).digest()
        for known, service in self.digests.items():
            if hmac.compare_digest(known, digest):
                return Identity(method=self.id, subject=service, issuer="service-token",
                                client_id=service, claims=MappingProxyType({"service": service}))
        raise InvalidToken("the service token is not known")

    def ready(self) -> str | None:
        return None
