"""The WSGI application, for any WSGI server (``serve.py`` uses werkzeug's)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "api_site.settings")
application = get_wsgi_application()
