"""Django and Django REST Framework: ``"resource_server.django"`` in ``INSTALLED_APPS`` and one
settings entry (:mod:`resource_server.django.conf`), then

- DRF: :class:`~resource_server.django.rest_framework.BearerTokenAuthentication` and
  :class:`~resource_server.django.rest_framework.ScopeMapPermission`, reading the view's
  ``scope_map`` and ``org_url_kwarg``;
- plain Django: :func:`require` for function views (sync or async), :class:`ScopeMapMixin` for
  class-based views, :func:`public` for views public on purpose, and
  :class:`~resource_server.django.middleware.ResourceServerMiddleware` to protect URL patterns
  without touching views;
- ``request.access`` (the :class:`policy.Access`), ``request.auth`` (the
  :class:`~resource_server.tokens.VerifiedToken`, None for a session) and ``request.user`` in
  every protected view, DRF or not; :class:`ProtectedHttpRequest` (and DRF's
  :class:`~resource_server.django.rest_framework.ProtectedRequest`) declare them to a type
  checker;
- system checks (``manage.py check``), the ``manage.py scopes routes|check|explain`` command,
  the RFC 9728 metadata and agent endpoints (:mod:`resource_server.django.urls`), an ORM grants
  store (:class:`~resource_server.django.grants.DjangoGrantStore`) and a drf-spectacular
  extension.
"""

from __future__ import annotations

try:
    import django  # noqa: F401
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("django", "resource_server.django", exc) from exc

from .attributes import ProtectedHttpRequest
from .conf import get_resource_server
from .requests import json_body
from .server import ResourceServer
from .users import TokenUser
from .views import ScopeMapMixin, public, require

__all__ = [
    "ProtectedHttpRequest",
    "ResourceServer",
    "ScopeMapMixin",
    "TokenUser",
    "get_resource_server",
    "json_body",
    "public",
    "require",
]
