"""Django's own WSGI app for the example project, as ``startproject`` writes it.

``wsgi-gateway serve -c contrib/examples/django_project/gateway.yaml`` wraps it
(``app: contrib.examples.django_project.wsgi:application``); gateway_wsgi.py wraps it
in code instead.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contrib.examples.django_project.settings")

application = get_wsgi_application()
