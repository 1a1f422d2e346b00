"""Serving under gunicorn: the gateway as a gunicorn application, in-process.

``wsgi-gateway serve`` runs gunicorn's own arbiter with :class:`GatewayApplication`.
The config is loaded and fully checked in the master, so a bad file stops start-up
before anything listens; each worker then builds its own gateway after the fork
(no socket or memcached client is ever shared between workers).

Operators who keep their own gunicorn settings file (conf/gunicorn.conf.py is a
sample) load the gateway directly::

    gunicorn -c conf/gunicorn.conf.py 'wsgi_gateway:from_config("conf/demo.yaml")'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from .app import Gateway, build_app
from .store import log_failure_modes
from .config import GatewayConfig
from .config import load_config as load_gateway_config
from .errors import ConfigError
from .logs import configure_logging, gunicorn_logconfig
from .runtime import after_request, tune_gc

log = logging.getLogger("wsgi_gateway")

DEFAULT_SERVER: Mapping[str, Any] = {
    "bind": ["127.0.0.1:8000"],
    "workers": 2,
    # gunicorn 25+ opens a control socket at one fixed path per user; two gateways on a
    # host would fight over it. Opt in with control_socket_disable: false and a path.
    "control_socket_disable": True,
}


def from_config(path: str | Path, app: str | None = None) -> Gateway:
    """The gateway for a config file: for gunicorn's ``module:factory(...)`` loading."""
    config = load_gateway_config(path)
    if app:
        config = dataclasses.replace(config, app=app)
    configure_logging(config.logging)
    log_failure_modes(config.store)
    gateway = build_app(config)
    gateway.warm()
    return gateway


def check(path: str | Path, app: str | None = None, *,
          warn: Callable[[str], None] | None = None) -> GatewayConfig:
    """Load the config and build the whole gateway once; raises ConfigError on any fault.

    Lint warnings (rules that load but are probably wrong) go to ``warn`` (default: the log).
    """
    return prepare(path, app, warn=warn)[0]


def prepare(path: str | Path, app: str | None = None, *,
            warn: Callable[[str], None] | None = None) -> tuple[GatewayConfig, dict]:
    """:func:`check`, also returning the compiled rule files for workers to reuse."""
    config = load_gateway_config(path)
    if app:
        config = dataclasses.replace(config, app=app)
    gateway = build_app(config)  # imports the app and builds every layer; no network
    for warning in gateway.warnings:
        (warn or log.warning)(warning)
    gateway.close()
    return config, gateway.rule_files


class GatewayApplication(BaseApplication):
    """gunicorn's application class serving the gateway.

    :param config: the loaded gateway config.
    :param overrides: gunicorn settings from the command line; they win over the
        config's ``server:`` section, which wins over :data:`DEFAULT_SERVER`.
    :param app: the ``--app`` override, kept across reloads.

    On SIGHUP gunicorn reloads: the config file and every rule file are read and
    compiled again in the master; new workers start with the new set. A broken new set
    is rejected with its errors logged, and new workers start with the old one (the
    compiled rules the master holds, not the files on disk).
    """

    def __init__(self, config: GatewayConfig, overrides: Mapping[str, Any] | None = None,
                 app: str | None = None, rule_files: dict | None = None):
        self.gateway_config = config
        self.rule_files = dict(rule_files or {})
        self.overrides = dict(overrides or {})
        self.app_override = app
        super().__init__()

    def reload(self) -> None:  # gunicorn's hook on SIGHUP, in the master
        try:
            self.gateway_config, self.rule_files = prepare(self.gateway_config.source,
                                                           self.app_override)
        except ConfigError as err:
            log.error("reload rejected, the running configuration stays: %s",
                      "; ".join(err.problems))
        else:
            log.info("reloaded %s", self.gateway_config.source)
        super().reload()

    def settings(self) -> dict[str, Any]:
        """The gunicorn settings in force.

        With ``logging.format: json``, gunicorn's own loggers write the gateway's JSON
        lines (``logconfig_dict``) unless the operator gave a logging setup of their own.
        """
        chosen = {**self.gateway_config.server, **self.overrides}
        logging_ = self.gateway_config.logging
        own = {"logconfig", "logconfig_dict", "logconfig_json"} & chosen.keys()
        if logging_.format == "json" and not own:
            access_lines = bool(chosen.get("accesslog"))
            chosen["logconfig_dict"] = gunicorn_logconfig(logging_, access_lines=access_lines)
            if not access_lines:
                chosen.setdefault("logger_class", QuietAccessLogger)
        return {**DEFAULT_SERVER, **chosen}

    def load_config(self) -> None:  # gunicorn's hook: apply settings
        for key, value in self.settings().items():
            self.cfg.set(key, value)
        own_post_request = self.cfg.post_request

        def post_request(worker, req, environ, resp):
            # bounded full collections (runtime.py): tune_gc() switched the automatic ones
            # off, so this must run even when the operator sets a post_request of their own
            after_request()
            own_post_request(worker, req, environ, resp)

        self.cfg.set("post_request", post_request)
        if self.gateway_config.metrics.enabled:
            self._metrics_directory()

    def _metrics_directory(self) -> None:
        """Prometheus multiprocess mode, in the master: the directory is emptied once
        (not on reload: running workers still write there), every worker gets its path,
        and a worker's exit drops its live gauges (its counters stay in the sum)."""
        from .observe.metrics import default_dir, mark_dead, wipe

        metrics = self.gateway_config.metrics
        directory = getattr(self, "_metrics_dir", None) or metrics.multiproc_dir or default_dir()
        if getattr(self, "_metrics_dir", None) is None:
            wipe(directory)
            self._metrics_dir = directory
        self.gateway_config = dataclasses.replace(
            self.gateway_config, metrics=dataclasses.replace(metrics, multiproc_dir=directory))
        own = self.cfg.child_exit

        def child_exit(arbiter, worker):
            mark_dead(worker.pid, directory)
            own(arbiter, worker)

        self.cfg.set("child_exit", child_exit)
        own_exit = self.cfg.worker_exit

        def worker_exit(arbiter, worker):  # in the worker: write its pending counts
            observer = getattr(getattr(worker, "wsgi", None), "observer", None)
            if observer is not None:
                observer.flush()
            own_exit(arbiter, worker)

        self.cfg.set("worker_exit", worker_exit)

    def load(self):  # gunicorn's hook: called in each worker after the fork
        configure_logging(self.gateway_config.logging)
        log_failure_modes(self.gateway_config.store)
        gateway = build_app(self.gateway_config, rule_files=self.rule_files)
        gateway.warm()
        tune_gc()  # after the build: what the worker holds from now on is never walked again
        return gateway


class QuietAccessLogger(GunicornLogger):
    """gunicorn's logger, minus its access line when no access log was asked for.

    Any ``logconfig_dict`` switches gunicorn's access line on, and gunicorn then builds
    its atoms for every request even when the logger is muted: 49 µs a request measured
    here, more than the gateway's own request line.
    """

    def access(self, resp, req, environ, request_time):
        return None
