"""The Django app: ``"resource_server.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig
from django.core.signals import setting_changed


class ResourceServerConfig(AppConfig):
    """Reads and validates the settings once, registers the system checks (``manage.py check``)
    and, when drf-spectacular is installed, the OpenAPI extension."""

    name = "resource_server.django"
    label = "resource_server"
    verbose_name = "OAuth 2.0 resource server"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import configure, reload_on_change

        configure()
        setting_changed.connect(reload_on_change, dispatch_uid="resource_server.django.conf")
        if find_spec("drf_spectacular") is not None and find_spec("rest_framework") is not None:
            from . import spectacular  # noqa: F401  (registers the extension, as its docs ask)
