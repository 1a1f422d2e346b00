"""A Flask app that trusts the gateway for identity: it reads who the caller is from the
headers the gateway's rules inject (rules.yaml), never from the token.

The gateway removes every client copy of those headers first, so a client cannot send
its own ``X-User-Id``; the app must only be reachable through the gateway.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/api/me")
def me():
    """Who the gateway says the caller is."""
    return jsonify(
        user=request.headers.get("X-User-Id"),
        scopes=request.headers.get("X-User-Scopes", ""),
        saw_authorization="Authorization" in request.headers,
    )


@app.get("/public/hello")
def hello():
    """An anonymous route (keyless in gateway.yaml): no identity header arrives."""
    return jsonify(hello="world", user=request.headers.get("X-User-Id"))
