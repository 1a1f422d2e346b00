"""The suite's own hygiene: a test leaves no state behind that changes another's result.

Each case runs a small pytest session in a subprocess, in a fixed order, with the real
conftest and the real test module whose fixtures once leaked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from tests.support.processes import REPO

CAPLOG_PROBE = '''
import logging

from tests.middleware.test_logging import *  # noqa: F401,F403 - its tests run first


def _state():
    logger = logging.getLogger("wsgi_gateway")
    return (logger.propagate, logger.level, logger.disabled,
            [h for h in logger.handlers if "LogCapture" not in type(h).__name__])


BEFORE = _state()  # at collection, before any test ran


def test_zy_a_dict_config_disables_existing_loggers():
    import logging.config

    logging.config.dictConfig({"version": 1})  # as a logconfig_dict would
    assert logging.getLogger("wsgi_gateway.authn").disabled


def test_zz_the_gateway_logger_is_as_it_was(caplog):
    assert _state() == BEFORE
    assert not logging.getLogger("wsgi_gateway.authn").disabled
    logging.getLogger("wsgi_gateway.probe").warning("seen by caplog")
    assert "seen by caplog" in caplog.text
'''


def test_the_logging_tests_leave_caplog_working(tmp_path):
    (tmp_path / "conftest.py").write_text(  # the suite's conftests, autouse fixtures included
        'pytest_plugins = ["tests.conftest", "tests.middleware.conftest"]\n')
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(CAPLOG_PROBE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    ran = re.search(r"(\d+) passed", done.stdout)
    assert ran and int(ran.group(1)) >= 6, done.stdout[-3000:]  # the logging tests, then the probe
    assert "1 failed" not in done.stdout


def test_a_frozen_memcached_is_stopped_when_freeze_returns():
    # SIGSTOP lands asynchronously: without waiting for it, 3 of 60 writes right after
    # freeze() were still answered here, and a fault test passed or failed by luck
    from tests.support.processes import Memcached, _state

    server = Memcached().start()
    try:
        for _ in range(5):
            server.freeze()
            assert _state(server.proc.pid) in ("T", "t")
            server.resume()
    finally:
        server.stop()
