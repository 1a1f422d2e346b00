"""The HTTP client: one urllib3 PoolManager per API and worker process.

The only module that creates urllib3 pools (STYLE habit 13). A pool is made lazily on
the first request and keyed by the process ID: a gateway built in the gunicorn master
(``--preload``) and inherited by forked workers never shares a socket or a TLS
session between processes.
"""

from __future__ import annotations

import os
import ssl
import threading

import urllib3

from ..config.upstream import UpstreamConfig


class Pools:
    """Keep-alive connection pools for one API's targets, one manager per process.

    :param config: the API's upstream config (timeouts, pool size, TLS).
    """

    def __init__(self, config: UpstreamConfig):
        self.config = config
        self._pid: int | None = None
        self._manager: urllib3.PoolManager | None = None
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def manager(self) -> urllib3.PoolManager:
        """This process's pool manager, made on first use after a fork."""
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    self._manager = self._make()
                    self._pools = {}
                    self._pid = pid
        return self._manager

    def pool(self, origin: str) -> urllib3.HTTPConnectionPool:
        """The connection pool for ``scheme://host:port`` (looked up once per process:
        the manager's URL parsing costs more than a dict hit on every request)."""
        manager = self.manager()
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = manager.connection_from_url(origin)
        return pool

    def _make(self) -> urllib3.PoolManager:
        config, tls = self.config, self.config.tls
        options = dict(
            num_pools=max(10, len(config.targets)), maxsize=config.pool_size, block=False,
            timeout=urllib3.Timeout(connect=config.connect_timeout, read=config.read_timeout),
            retries=False,  # the proxy decides retries itself: only connect failures, idempotent
        )
        if any(t.startswith("https:") for t in config.targets):
            options.update(cert_reqs=ssl.CERT_REQUIRED, ca_certs=tls.ca_file,
                           cert_file=tls.cert_file, key_file=tls.key_file)
            if tls.server_name:  # SNI and the checked name, when the URL holds an address
                options.update(server_hostname=tls.server_name, assert_hostname=tls.server_name)
        return urllib3.PoolManager(**options)

    def close(self) -> None:
        """Close this process's connections."""
        if self._manager is not None and self._pid == os.getpid():
            self._manager.clear()
