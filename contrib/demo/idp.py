"""A throwaway OpenID Connect provider for the JWT demo (never for production).

    python -m contrib.demo.idp [--port 9000]

Serves discovery and a JWK set at http://127.0.0.1:9000/realms/demo, prints a signed
access token for the demo API, and answers the client_credentials grant for the client
``demo-client`` / ``demo-secret``. It is the provider the test suite uses
(tests/support/idp.py), run from the repository root.
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
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    idp = TestIdP(port=args.port, issuer_path="/realms/demo", audience="demo-api",
                  client_id="demo-client", subject="demo-user").start()
    idp.add_client("demo-client", "demo-secret", scope="read write")
    print(f"demo IdP: issuer {idp.issuer}", file=sys.stderr)
    print(f"  a token (1 h): {idp.issue(ttl=3600)}", file=sys.stderr)
    print(f"  more: curl -s -u demo-client:demo-secret -d grant_type=client_credentials "
          f"{idp.token_endpoint}", file=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    idp.stop()


if __name__ == "__main__":
    main()
