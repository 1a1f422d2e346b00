"""A throwaway OpenID Connect provider for the browser-login demo (never for production).

    python -m contrib.demo.browser_idp [--port 9001] [--gateway http://127.0.0.1:8000]

Serves discovery, a JWK set, a login form (users alice / alice-password and
bob / bob-password), the token endpoint (code with PKCE, refresh with rotation),
end-session and revocation at http://127.0.0.1:9001/realms/browser, for the client
``demo-browser`` / ``demo-browser-secret`` whose redirect URIs are the gateway's
``/.gateway/oidc/`` routes. It is the provider the test suite uses (tests/support/idp.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.idp import TestIdP  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--token-ttl", type=int, default=300, help="access token lifetime (s)")
    args = parser.parse_args()
    idp = TestIdP(port=args.port, issuer_path="/realms/browser").start()
    idp.token_ttl = args.token_ttl
    routes = args.gateway + "/.gateway/oidc/"
    idp.add_login_client("demo-browser", "demo-browser-secret", redirect_uris=[routes + "callback"],
                         post_logout_redirect_uris=[routes + "logged-out"],
                         backchannel_logout_uri=routes + "backchannel-logout")
    idp.add_user("alice", "alice-password", name="Alice", email="alice@example.com",
                 email_verified=True, groups=["admins"])
    idp.add_user("bob", "bob-password", name="Bob", email="bob@example.com",
                 email_verified=True, groups=[])
    print(f"demo IdP: issuer {idp.issuer}; users alice / alice-password, bob / bob-password",
          file=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    idp.stop()


if __name__ == "__main__":
    main()
