"""Where a provider's keys come from, and how they stay fresh.

:class:`StaticKeys` serves keys from the config. :class:`RemoteKeys` fetches a
published key set (from OIDC discovery or an explicit ``jwks_uri``) and keeps it:

- **warm**: fetched when a worker starts (up to ``warmup`` seconds), then refreshed in
  a background thread at 80% of its TTL; the TTL honours ``Cache-Control: max-age``
  within ``[min_ttl, max_ttl]``;
- **new keys on first sight**: a token with an unknown ``kid`` triggers one refetch,
  at most one at a time per provider and at most once per ``refetch_interval``, so
  forged kids cannot amplify into IdP traffic;
- **outage-proof**: when the IdP is down or slow (bounded timeouts), the last good keys
  keep serving; only a token that needs a key we cannot get is answered 503;
- **quiet**: fetch failures are logged once per state change, not per request;
- **fork-safe**: the refresh thread is per process, started on first use after a fork.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from werkzeug.datastructures import ResponseCacheControl
from werkzeug.http import parse_cache_control_header

from ...config.providers import ProviderConfig, check_url
from .keys import KeyIndex, parse_jwks

log = logging.getLogger("wsgi_gateway.jwks")
MAX_DOCUMENT_BYTES = 1 << 20


class KeysUnavailable(Exception):
    """The keys needed to verify a token cannot be had now (answered 503)."""


class StaticKeys:
    """A provider's keys given in the config."""

    def __init__(self, index: KeyIndex):
        self.index = index

    def keys(self) -> KeyIndex:
        return self.index

    def refresh_for(self, kid: str | None) -> KeyIndex:
        return self.index

    def warm(self, timeout: float | None = None) -> None:
        return None

    def ready(self) -> str | None:
        return None


@dataclass
class _State:
    index: KeyIndex | None = None
    refresh_at: float = 0.0          # monotonic time of the next background fetch
    last_attempt: float = -1e18      # monotonic time of the last fetch, good or bad
    last_refetch: float = -1e18      # ... of the last fetch asked for by an unknown kid
    last_ok: bool = False
    failures: int = 0
    jwks_uri: str | None = None
    fetches: int = 0                 # every fetch of this worker, for the metrics
    fetch_failures: int = 0
    loaded_at: float | None = None   # monotonic time of the last good fetch


class RemoteKeys:
    """A provider's published key set, fetched over HTTP and kept fresh.

    :param provider: the provider's config (issuer, discovery or jwks_uri, jwks bounds).
    :param session: the requests session to fetch with.
    :param monotonic: the clock for TTLs and intervals (injected by tests).
    """

    def __init__(self, provider: ProviderConfig, *, session: requests.Session | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.provider = provider
        self.bounds = provider.jwks
        self.session = session or requests.Session()
        self.monotonic = monotonic
        self.state = _State(jwks_uri=provider.jwks_uri)
        self._fetch_lock = threading.Lock()
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread_pid: int | None = None

    # -- what verification asks -------------------------------------------------
    def keys(self) -> KeyIndex | None:
        """The current keys (None before the first successful fetch)."""
        self._ensure_thread()
        return self.state.index

    def refresh_for(self, kid: str | None) -> KeyIndex:
        """Keys after at most one refetch for an unknown ``kid``.

        Raises KeysUnavailable when the set cannot be fetched now (or a recent fetch
        failed), so the caller answers 503 rather than calling the token bad.
        """
        self._ensure_thread()
        # Taking the lock also waits for a fetch already in flight (its result may
        # hold this kid); the fetch itself happens at most once per interval.
        if not self._fetch_lock.acquire(timeout=2 * self.bounds.timeout + 1):
            raise KeysUnavailable("a key set fetch is already taking too long")
        try:
            if self._refetch_due():
                self.state.last_refetch = self.monotonic()
                self._fetch_and_store()
        finally:
            self._fetch_lock.release()
        if not self.state.last_ok or self.state.index is None:
            raise KeysUnavailable("the provider's keys are unavailable")
        return self.state.index

    def _refetch_due(self) -> bool:
        return self.monotonic() - self.state.last_refetch >= self.bounds.refetch_interval

    def warm(self, timeout: float | None = None) -> None:
        """Fetch now if never fetched, waiting at most ``timeout`` (default ``warmup``)."""
        self._ensure_thread()  # the new thread fetches at once
        self._loaded.wait(self.bounds.warmup if timeout is None else timeout)

    def ready(self) -> str | None:
        if self.state.index is None:
            return f"provider {self.provider.name}: keys not loaded yet"
        return None

    def fetch_stats(self) -> tuple[str, str, int, int, float | None]:
        """("keyset", provider name, fetches, failed fetches, seconds since the keys in
        use were fetched or None) of this worker: read by the metrics."""
        state = self.state
        age = None if state.loaded_at is None else self.monotonic() - state.loaded_at
        return "keyset", self.provider.name, state.fetches, state.fetch_failures, age

    # -- fetching ---------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread_pid == os.getpid():
            return
        with self._fetch_lock:
            if self._thread_pid != os.getpid():
                self._thread_pid = os.getpid()
                self.state.refresh_at = 0.0
                threading.Thread(target=self._run, name=f"jwks-{self.provider.name}",
                                 daemon=True).start()

    def close(self) -> None:
        """Stop the refresh thread (keys already loaded stay usable)."""
        self._stop.set()

    def _run(self) -> None:
        pid = os.getpid()
        while self._thread_pid == pid and not self._stop.is_set():
            wait = self.state.refresh_at - self.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            with self._fetch_lock:
                if self.monotonic() >= self.state.refresh_at:  # not just done by a request
                    self._fetch_and_store()

    def _fetch_and_store(self) -> None:
        """Fetch once and record the outcome; the caller holds the fetch lock."""
        state = self.state
        state.last_attempt = self.monotonic()
        state.fetches += 1
        try:
            index, ttl = self._fetch()
        except Exception as exc:  # noqa: BLE001 - any fetch fault keeps the old keys
            state.failures += 1
            state.fetch_failures += 1
            state.refresh_at = self.monotonic() + min(60.0, 0.5 * 2.0 ** min(state.failures - 1, 7))
            if state.last_ok or state.failures == 1:
                log.warning("provider %s: key set fetch failed (%s); %s", self.provider.name,
                            _describe(exc), f"serving {len(state.index)} cached keys"
                            if state.index else "no keys yet: its tokens get 503")
            state.last_ok = False
            return
        if not state.last_ok:
            log.info("provider %s: %d keys loaded%s", self.provider.name, len(index),
                     f" ({'; '.join(index.skipped)})" if index.skipped else "")
        state.index, state.last_ok, state.failures = index, True, 0
        state.loaded_at = self.monotonic()
        state.refresh_at = self.monotonic() + 0.8 * ttl
        self._loaded.set()

    def _fetch(self) -> tuple[KeyIndex, float]:
        if self.provider.discovery and self.state.jwks_uri is None:
            self.state.jwks_uri = self._discover()
        try:
            response = self._get(self.state.jwks_uri)
            index = parse_jwks(_json(response))
        except Exception:
            if self.provider.discovery:
                self.state.jwks_uri = None  # rediscover next time: the IdP may have moved it
            raise
        if not len(index):
            raise ValueError(f"the key set has no usable key ({'; '.join(index.skipped)})")
        return index, self._ttl(response)

    def _discover(self) -> str:
        url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = _json(self._get(url))
        if not isinstance(document, dict) or document.get("issuer") != self.provider.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        check_url(jwks_uri, "jwks_uri")
        return jwks_uri

    def _get(self, url: str) -> requests.Response:
        timeout = self.bounds.timeout
        response = self.session.get(url, timeout=(timeout, timeout), allow_redirects=False,
                                    headers={"Accept": "application/json"}, stream=True)
        try:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
        finally:
            response.close()
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document larger than 1 MiB")
        response._content = body
        return response

    def _ttl(self, response: requests.Response) -> float:
        control = parse_cache_control_header(response.headers.get("Cache-Control"),
                                             cls=ResponseCacheControl)
        max_age = control.max_age
        if control.no_store or control.no_cache:
            max_age = 0
        ttl = self.bounds.default_ttl if max_age is None else float(max_age)
        return min(max(ttl, self.bounds.min_ttl), self.bounds.max_ttl)


def _json(response: requests.Response) -> object:
    return json.loads(response._content)


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    return str(exc)[:200] or type(exc).__name__
