"""Settings of the smallest Django project that sits behind the gateway.

No database and no sessions: the gateway authenticates, and the view reads the identity
from the headers the gateway's rules inject (rules.yaml).
"""

from __future__ import annotations

import os

# A real project reads this from its environment; the example has nothing to protect.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret-" + "x" * 32)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "contrib.examples.django_project.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict = {}
USE_TZ = True
