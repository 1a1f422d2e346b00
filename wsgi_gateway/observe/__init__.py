"""Observability: metrics, the decision audit log and trace context.

Each request's facts are read once, at its end, from the typed
:class:`~wsgi_gateway.context.RequestContext` (:class:`Observer`); the layers never
call into this package on the hot path, except the cheap stage marks.
"""

from .observer import Observer, build_observer

__all__ = ["Observer", "build_observer"]
