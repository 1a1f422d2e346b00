"""The Flask example wrapped by the gateway in code, for your own gunicorn command:

    gunicorn contrib.examples.flask_app.wsgi:application

The config is gateway.yaml beside this file, or the file named by ``GATEWAY_CONFIG``;
its ``app`` key is ignored here (the Flask app is passed in) and so is ``server``.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsgi_gateway import build_app, load_config

from .app import app as flask_app

CONFIG = os.environ.get("GATEWAY_CONFIG", str(Path(__file__).with_name("gateway.yaml")))

application = build_app(load_config(CONFIG), flask_app)
application.warm()  # fetch the providers' keys before the first request (bounded wait)
