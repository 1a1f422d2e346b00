"""npm's ``oidc-provider`` (OpenID Certified) under Node, for browser-login tests.

The package is installed once into a cache directory (``WSGI_GATEWAY_NODE_CACHE``, else
``~/.cache/wsgi-gateway/oidc-provider-8``) with ``npm install oidc-provider@8``; the
script ``oidc_provider.mjs`` is copied next to its ``node_modules`` and started on a
free port. :func:`unavailable` says why it cannot run (no Node, no npm, install failed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.processes import free_port

NODE = shutil.which("node") or "/usr/bin/node"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "wsgi-gateway" / "oidc-provider-8"
    return Path(os.environ.get("WSGI_GATEWAY_NODE_CACHE", default))


def install() -> str | None:
    """Install oidc-provider@8 into the cache when missing; the reason it cannot, else None."""
    if not os.path.exists(NODE):
        return "Node.js is not installed (apt-get install nodejs npm)"
    folder = cache_dir()
    if (folder / "node_modules" / "oidc-provider" / "package.json").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (apt-get install npm)"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "gw-oidc-provider", "private": true}')
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "oidc-provider@8"],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"npm install oidc-provider@8 failed: {done.stderr.strip()[-300:]}"
    return None


class NodeProvider:
    """A running oidc-provider; ``issuer`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, *, client_id: str, client_secret: str, public: str, routes: str,
                 access_ttl: int = 3600, extra: dict | None = None):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = {"port": self.port, "client_id": client_id, "client_secret": client_secret,
                       "redirect_uri": public + routes + "callback",
                       "post_logout_redirect_uri": public + routes + "logged-out",
                       "backchannel_logout_uri": public + routes + "backchannel-logout",
                       "access_ttl": access_ttl, **(extra or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = cache_dir() / f"provider-{self.port}.log"

    def start(self) -> "NodeProvider":
        script = cache_dir() / SCRIPT.name
        shutil.copyfile(SCRIPT, script)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([NODE, str(script), json.dumps(self.config)],
                                     cwd=cache_dir(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while b"ready" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oidc-provider did not start:\n{self.log()}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc is not None:
            self._log.close()
        self.proc = None
