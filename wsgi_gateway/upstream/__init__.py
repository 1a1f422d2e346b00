"""Upstreams: the wrapped WSGI app, or a reverse proxy to URL targets."""

from .app import load_app
from .proxy import ReverseProxy

__all__ = ["ReverseProxy", "load_app"]
