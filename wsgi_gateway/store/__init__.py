"""Stores: the Store protocol and its two backends, chosen by config."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..config.model import StoreConfig
from .base import Store
from .memory import MemoryStore

log = logging.getLogger("wsgi_gateway.store")


def build_store(config: StoreConfig, *, clock: Callable[[], float] = time.time) -> Store:
    """The store the config describes. Makes no connection yet (safe before a fork)."""
    store: Store
    if config.backend == "memcached":
        from .memcached import MemcachedStore

        store = MemcachedStore(
            config.servers, namespace=config.namespace, connect_timeout=config.connect_timeout,
            timeout=config.timeout, retry_after=config.retry_after)
    else:
        store = MemoryStore(namespace=config.namespace, max_items=config.max_items)
    if config.revocations_file:
        from .revocations import DurableMarkers, RevocationsFile

        store = DurableMarkers(store, RevocationsFile(config.revocations_file, clock=clock),
                               namespace=config.namespace)
    return store


def log_failure_modes(config: StoreConfig) -> None:
    """The start-up line saying what each concern does while the store fails."""
    log.info("store: when it fails: %s%s", config.on_failure.summary(),
             f"; revocations also kept in {config.revocations_file}" if config.revocations_file
             else "")


__all__ = ["MemoryStore", "Store", "build_store", "log_failure_modes"]
