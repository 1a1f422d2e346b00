"""Worked examples of custom authenticators (see wsgi_gateway.authn.custom)."""
