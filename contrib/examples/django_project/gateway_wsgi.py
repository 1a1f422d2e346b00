"""The Django example wrapped by the gateway in code, for your own gunicorn command:

    gunicorn contrib.examples.django_project.gateway_wsgi:application

The config is gateway.yaml beside this file, or the file named by ``GATEWAY_CONFIG``;
its ``app`` key is ignored here (Django's app is passed in) and so is ``server``.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsgi_gateway import build_app, load_config

from .wsgi import application as django_app

CONFIG = os.environ.get("GATEWAY_CONFIG", str(Path(__file__).with_name("gateway.yaml")))

application = build_app(load_config(CONFIG), django_app)
application.warm()  # fetch the providers' keys before the first request (bounded wait)
