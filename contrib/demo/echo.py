"""A WSGI app that answers with what it received, as JSON: see what the gateway forwards."""

from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response


@Request.application
def app(request: Request) -> Response:
    """Echo the method, path, query, headers and body size of the request."""
    body = request.get_data(cache=False)
    echo = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode("latin-1"),
        "headers": dict(request.headers.items()),
        "body_bytes": len(body),
    }
    ctx = request.environ.get("wsgi_gateway.context")  # present when the gateway wraps us in-process
    if ctx is not None:
        echo["gateway"] = {
            "api": ctx.api, "decision": ctx.decision, "policies": list(ctx.policies),
            "identity": ctx.identity.alias if ctx.identity else None,
            "session_id": ctx.session_id,
        }
    return Response(json.dumps(echo, indent=2) + "\n", content_type="application/json")


application = app
