"""The WSGI application, for gunicorn (``chatsite.wsgi``) and for ``serve.py``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

application = get_wsgi_application()
