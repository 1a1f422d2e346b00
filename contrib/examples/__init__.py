"""Runnable examples: a Flask app and a Django project behind the gateway (issue 16).

Each is wrapped in code (``wsgi.py``) and served by ``wsgi-gateway serve``
(``gateway.yaml``); tests/e2e/test_examples.py runs both ways under real gunicorn.
"""
