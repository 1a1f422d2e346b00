"""The gateway's one error hierarchy.

Every error a client can see is a :class:`GatewayError`: it knows its HTTP status, a
snake_case ``code``, a short human ``title`` and the response headers it needs, and it
renders itself as an RFC 9457 ``application/problem+json`` response. Errors are
classified by type, never by message text. Descriptions are static or built from
values the gateway controls; they never contain credentials, claims or internals.

:class:`ConfigError` is separate: it stops start-up and never reaches a client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

PROBLEM_JSON = "application/problem+json"


class GatewayError(Exception):
    """Base class of every error answered to a client."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra_headers = dict(headers or {})

    def headers(self) -> list[tuple[str, str]]:
        """Response headers besides Content-Type."""
        return list(self.extra_headers.items())

    def problem(self, request_id: str | None = None) -> dict[str, object]:
        """The RFC 9457 problem object."""
        body: dict[str, object] = {
            "type": f"urn:wsgi-gateway:problem:{self.code}",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if request_id:
            body["request_id"] = request_id
        return body

    def render(self, request_id: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status line, headers and body of the problem response."""
        body = json.dumps(self.problem(request_id), separators=(",", ":")).encode()
        headers = [
            ("Content-Type", PROBLEM_JSON),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *self.headers(),
        ]
        return f"{self.status} {self.title}", headers, body

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        """Errors are WSGI apps: ``return err(environ, start_response)``."""
        from .context import peek_context

        ctx = peek_context(environ)
        if ctx is not None:
            ctx.problem = self.code  # metrics and the audit log read the reason here
        status, headers, body = self.render(ctx.request_id if ctx else None)
        start_response(status, headers)
        return [body]  # for HEAD the server drops the body and keeps Content-Length


class BadRequest(GatewayError):
    status, code, title = 400, "bad_request", "Bad Request"


class BodyReadError(BadRequest):
    """400: the request body could not be read: bad chunked framing, shorter than its
    Content-Length, or the client went away. The client's fault: logged at INFO.

    ``cause`` names what the server raised (``InvalidChunkSize``, ``NoMoreData`` ...).
    """

    code = "bad_request_body"

    def __init__(self, cause: str = "short body"):
        super().__init__("the request body could not be read (bad framing, or shorter "
                         "than announced)")
        self.cause = cause


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not Found"


class MethodNotAllowed(GatewayError):
    """405 with ``Allow``."""

    status, code, title = 405, "method_not_allowed", "Method Not Allowed"

    def __init__(self, detail: str | None = None, *, allow: Iterable[str]):
        super().__init__(detail, headers={"Allow": ", ".join(allow)})


class Unauthorized(GatewayError):
    """401 with an RFC 6750 ``WWW-Authenticate`` challenge.

    ``challenges`` are the schemes with their realm (``Bearer realm="api"``); ``error``
    is the RFC 6750 error code, absent when the request simply carried no credential.
    """

    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(
        self,
        detail: str | None = None,
        *,
        challenges: Iterable[str] = (),
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail, headers=headers)
        self.challenges = tuple(challenges)
        self.error = error

    def with_challenges(self, challenges: Iterable[str]) -> "Unauthorized":
        """The same error, challenging with ``challenges`` where it names none."""
        if not self.challenges:
            self.challenges = tuple(challenges)
        return self

    def headers(self) -> list[tuple[str, str]]:
        out = super().headers()
        for challenge in self.challenges:
            params = []
            # the error parameters (RFC 6750 §3) tell a client what was wrong with the
            # credential it sent; a browser session's challenge never names one
            if self.error and not challenge.startswith("Cookie "):
                params.append(f'error="{self.error}"')
                if self.detail:
                    params.append(f'error_description="{_quoted(self.detail)}"')
            out.append(("WWW-Authenticate", ", ".join([challenge, *params])))
        return out


class InvalidToken(Unauthorized):
    """A credential was presented and is bad, expired or not for this API."""

    code = "invalid_token"

    def __init__(self, detail: str = "the access token is invalid", **kw):
        super().__init__(detail, error="invalid_token", **kw)


class InvalidRequest(Unauthorized):
    """400: a credential is present but malformed (RFC 6750 ``invalid_request``)."""

    status, code, title = 400, "invalid_request", "Bad Request"

    def __init__(self, detail: str = "the credential is malformed", **kw):
        super().__init__(detail, error="invalid_request", **kw)


class Forbidden(GatewayError):
    status, code, title = 403, "forbidden", "Forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class TooManyRequests(GatewayError):
    """429 with ``Retry-After`` (whole seconds, at least 1)."""

    status, code, title = 429, "rate_limited", "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: float, headers=None):
        super().__init__(detail, headers=headers)
        self.extra_headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))


class ServiceUnavailable(GatewayError):
    """503: the gateway cannot decide now (keys, store or an upstream unavailable)."""

    status, code, title = 503, "unavailable", "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1, headers=None):
        super().__init__(detail, headers=headers)
        self.extra_headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))


class NotReady(ServiceUnavailable):
    """503 from the readiness endpoint; ``reasons`` (short, naming no host or secret)
    are an extension member of the problem."""

    code = "not_ready"

    def __init__(self, reasons: Iterable[str]):
        super().__init__("the gateway cannot serve yet")
        self.reasons = list(reasons)

    def problem(self, request_id: str | None = None) -> dict[str, object]:
        return {**super().problem(request_id), "reasons": self.reasons}


class StoreError(ServiceUnavailable):
    """The store (memcached) failed or timed out. Callers decide: fail open or closed."""

    code = "store_unavailable"

    def __init__(self, detail: str = "the gateway's store is unavailable", **kw):
        super().__init__(detail, **kw)


class PayloadTooLarge(GatewayError):
    """413: the request body is larger than the API's ``upstream.max_body``."""

    status, code, title = 413, "payload_too_large", "Content Too Large"


class NotImplementedByGateway(GatewayError):
    """501: the request needs something the gateway does not do."""

    status, code, title = 501, "not_implemented", "Not Implemented"


class UpgradeNotSupported(NotImplementedByGateway):
    """501: a WebSocket upgrade; sync WSGI workers cannot hold a two-way stream."""

    code = "upgrade_not_supported"


class BadGateway(GatewayError):
    """502: the upstream could not be reached or answered nonsense. Details name the
    API, never the target's address (unless the API's ``expose_target`` is set)."""

    status, code, title = 502, "bad_gateway", "Bad Gateway"


class UpstreamUnreachable(BadGateway):
    """502: connection refused or reset, or TLS to the target failed."""

    code = "upstream_unreachable"


class BadUpstreamResponse(BadGateway):
    """502: the upstream's answer was not valid HTTP (bad status line, cut body ...)."""

    code = "bad_upstream_response"


class GatewayTimeout(GatewayError):
    """504: the upstream did not connect or answer within the API's timeouts."""

    status, code, title = 504, "upstream_timeout", "Gateway Timeout"


class UpstreamUnavailable(ServiceUnavailable):
    """503 at once: every target of the API is being skipped after repeated failures."""

    code = "upstream_unavailable"


class InternalError(GatewayError):
    """An unexpected fault; its cause is logged with the request ID, never shown."""

    def __init__(self):
        super().__init__("an unexpected error occurred; quote the request_id when reporting it")


class ConfigError(Exception):
    """A configuration or rule file is wrong. Stops start-up; never reaches a client.

    ``problems`` lists every fault found, each already naming file, line and key path.
    """

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def _quoted(text: str) -> str:
    """Text safe inside an RFC 7235 quoted-string."""
    return "".join(c for c in text if c >= " " and c not in '"\\\x7f')
