"""Stores: the Store protocol and its two backends, chosen by config."""

from __future__ import annotations

from ..config.model import StoreConfig
from .base import Store
from .memory import MemoryStore


def build_store(config: StoreConfig) -> Store:
    """The store the config describes. Makes no connection yet (safe before a fork)."""
    if config.backend == "memcached":
        from .memcached import MemcachedStore

        return MemcachedStore(
            config.servers, namespace=config.namespace, connect_timeout=config.connect_timeout,
            timeout=config.timeout, retry_after=config.retry_after)
    return MemoryStore(namespace=config.namespace, max_items=config.max_items)


__all__ = ["MemoryStore", "Store", "build_store"]
