"""Upstreams: the wrapped WSGI app (and, later, a reverse proxy to a URL)."""

from .app import load_app

__all__ = ["load_app"]
