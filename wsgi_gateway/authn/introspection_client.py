"""The HTTP side of token introspection (RFC 7662): where the endpoint is, how the
gateway authenticates to it, and how a call is bounded.

- **endpoint**: explicit, or ``introspection_endpoint`` from the issuer's OpenID
  Connect discovery document (which must name the same issuer), fetched on first use
  and again every hour; when a later fetch fails the known endpoint keeps serving.
- **client authentication**: ``client_secret_basic`` (RFC 6749 §2.3.1: the ID and the
  secret are form-urlencoded before base64, so ``:``, ``+`` or ``%`` survive) or
  ``client_secret_post``.
- **bounded**: one ``timeout`` covers connecting and the whole answer (urllib3's total
  timeout, plus a deadline while the body is read), bodies over 64 KiB are refused, no
  redirect is followed.
- **a breaker per worker**: after a failure, calls fail at once for ``retry_after``
  seconds instead of each waiting for a timeout (sync workers would queue behind them).
  Failures are logged once per change of state, never with a token.
- **single flight**: concurrent calls for one token in one worker make one call
  (:class:`SingleFlight`), the others share its answer.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import requests
from urllib3.util import Timeout

from ..config.providers import check_url
from ..config.secrets import Secret

log = logging.getLogger("wsgi_gateway.introspection")
MAX_BODY_BYTES = 64 * 1024
DISCOVERY_TTL = 3600.0
MAX_IN_FLIGHT = 1024  # distinct keys sharing one call at a time, per worker
_ACCEPT = {"Accept": "application/json"}


class ProviderUnavailable(Exception):
    """The introspection endpoint cannot answer now (answered 503, never 401)."""

    def __init__(self, reason: str, retry_after: float = 1.0):
        super().__init__(reason)
        self.retry_after = retry_after


class IntrospectionClient:
    """Asks one provider whether tokens are active.

    :param client_id: the gateway's client ID at the provider.
    :param client_secret: its secret.
    :param client_auth: ``client_secret_basic`` or ``client_secret_post``.
    :param endpoint: the introspection URL; None to discover it from ``issuer``.
    :param issuer: the issuer whose discovery document names the endpoint.
    :param timeout: seconds for one whole call (connect, send, answer).
    :param retry_after: how long calls fail fast after a failure.
    :param clock: the gateway's clock (seconds), for the breaker and the discovery TTL;
        a step back of a wall clock never stretches either. One call's own deadline is
        measured on the monotonic clock: it bounds real waiting, not a policy.
    """

    def __init__(self, *, client_id: str, client_secret: Secret, client_auth: str,
                 endpoint: str | None, issuer: str | None, timeout: float,
                 retry_after: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if endpoint is None and issuer is None:
            raise ValueError("an introspection client needs an endpoint or an issuer")
        self.issuer, self.timeout, self.retry_after = issuer, timeout, retry_after
        self.clock = clock
        self._form = {"client_id": client_id, "client_secret": client_secret.reveal()} \
            if client_auth == "client_secret_post" else {}
        self._headers = dict(_ACCEPT)
        if client_auth == "client_secret_basic":
            pair = f"{quote_plus(client_id)}:{quote_plus(client_secret.reveal())}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self.client_auth = client_auth
        self._endpoint = endpoint
        self._fixed = endpoint is not None  # an explicit endpoint is never rediscovered
        self._discovered_at = float("-inf")
        self._discovery_lock = threading.Lock()
        self._open_until = 0.0
        self._failing: str | None = None
        self.calls = self.call_failures = 0  # this worker's calls, for the metrics
        self._local = threading.local()

    # -- what the authenticator asks -------------------------------------------------
    def introspect(self, token: str) -> dict:
        """The provider's answer: a JSON object with a boolean ``active``.

        Raises ProviderUnavailable when it cannot be had now.
        """
        wait = self._open_until - self.clock()
        if 0 < wait <= self.retry_after:
            raise ProviderUnavailable(self._failing or "the provider failed", retry_after=wait)
        self.calls += 1
        try:
            answer = self._ask(self.endpoint(), token)
        except Exception as exc:  # noqa: BLE001 - every fault of the call is "cannot decide"
            self.call_failures += 1
            raise self._failed(exc) from None
        self._recovered()
        return answer

    def endpoint(self) -> str:
        """The introspection URL, discovering it when due."""
        known = self._endpoint
        if known is not None and self._current():
            return known
        with self._discovery_lock:  # one discovery at a time; the others wait for it
            if self._endpoint is not None and self._current():
                return self._endpoint
            try:
                self._endpoint, self._discovered_at = self._discover(), self.clock()
            except Exception as exc:  # noqa: BLE001
                if self._endpoint is None:
                    raise
                log.warning("introspection: rediscovery failed (%s); keeping the known "
                            "endpoint", _describe(exc))
                self._discovered_at = self.clock()
        return self._endpoint

    def _current(self) -> bool:
        """The known endpoint needs no rediscovery yet."""
        return self._fixed or 0 <= self.clock() - self._discovered_at < DISCOVERY_TTL

    def warm(self, timeout: float | None = None) -> None:
        """Discover the endpoint now (bounded by the call timeout); failures are logged."""
        try:
            self.endpoint()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def ready(self) -> str | None:
        return None if self._endpoint is not None else "introspection endpoint not discovered yet"

    # -- HTTP --------------------------------------------------------------------------
    def fetch_stats(self) -> tuple[str, str, int, int, None]:
        """("introspection", issuer or endpoint, calls, failed calls, None): metrics."""
        return "introspection", self.issuer or self._endpoint or "-", self.calls, self.call_failures, None

    def _ask(self, url: str, token: str) -> dict:
        form = {"token": token, "token_type_hint": "access_token", **self._form}
        answer = self._call("POST", url, data=form)
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise ValueError("the answer is not an RFC 7662 introspection response")
        return answer

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._call("GET", url)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        endpoint = document.get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise ValueError("the discovery document has no introspection_endpoint")
        check_url(endpoint, "introspection_endpoint")
        methods = document.get("introspection_endpoint_auth_methods_supported")
        if isinstance(methods, list) and self.client_auth not in methods:
            log.warning("introspection: the provider does not list %s among its client "
                        "authentication methods (%s)", self.client_auth, methods)
        return endpoint

    def _call(self, method: str, url: str, **kw) -> object:
        deadline = time.monotonic() + self.timeout
        headers = self._headers if method == "POST" else _ACCEPT  # credentials only to POST
        response = self._session().request(
            method, url, headers=headers, timeout=Timeout(total=self.timeout),
            allow_redirects=False, stream=True, **kw)
        try:
            if response.status_code != 200:
                raise ValueError(_status_reason(response.status_code))
            body = bytearray()
            for chunk in response.raw.stream(8192, decode_content=True):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ValueError("answer larger than 64 KiB")
                if time.monotonic() > deadline:
                    raise requests.Timeout()
        finally:
            response.close()
        return _strict_json(bytes(body))

    def _session(self) -> requests.Session:
        """A session per thread, made again after a fork (no socket is shared between
        workers); kept for keep-alive connections to the provider."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.session, local.pid = requests.Session(), os.getpid()
        return local.session

    # -- state -------------------------------------------------------------------------
    def _failed(self, exc: Exception) -> ProviderUnavailable:
        reason = _describe(exc)
        self._open_until = self.clock() + self.retry_after
        if self._failing != reason:
            log.warning("introspection: the provider is unavailable (%s); unknown tokens get "
                        "503, cached answers keep serving", reason)
        self._failing = reason
        return ProviderUnavailable(reason, retry_after=self.retry_after)

    def _recovered(self) -> None:
        if self._failing is not None:
            self._failing = None
            log.info("introspection: the provider answers again")


class SingleFlight:
    """Concurrent calls for one key run once in this process; the others share the result.

    :param wait: how long a follower waits for the leader before giving up (TimeoutError).
    :param max_keys: keys shared at once; beyond it calls run unshared (bounded memory).
    """

    def __init__(self, wait: float, max_keys: int = MAX_IN_FLIGHT):
        self.wait, self.max_keys = wait, max_keys
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def run(self, key: str, fn: Callable[[], Any]) -> Any:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None and len(self._calls) < self.max_keys
            if leader:
                call = self._calls[key] = _Call()
        if call is None:
            return fn()
        if not leader:
            return call.result(self.wait)
        try:
            call.value = fn()
            return call.value
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()


class _Call:
    __slots__ = ("done", "value", "error")

    def __init__(self):
        self.done, self.value, self.error = threading.Event(), None, None

    def result(self, wait: float) -> Any:
        if not self.done.wait(wait):
            raise TimeoutError("the shared call is taking too long")
        if self.error is not None:
            raise self.error
        return self.value


def _status_reason(status: int) -> str:
    if status in (401, 403):
        return (f"HTTP {status}: the provider refused the gateway's client credentials "
                "(check client_id, client_secret and client_auth)")
    return f"HTTP {status}"


def _strict_json(body: bytes) -> object:
    """JSON without duplicate members or NaN/Infinity (an answer means one thing)."""
    def pairs(items):
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate member in the answer")
        return dict(items)

    def constant(name):
        raise ValueError(f"{name} in the answer")

    return json.loads(body, object_pairs_hook=pairs, parse_constant=constant)


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return "not JSON"
    return str(exc)[:200] or type(exc).__name__
