"""The adapter's settings, read and validated once (``AppConfig.ready()``, and again when a test
overrides them), so a bad configuration fails at start-up with an error naming the setting.

``RESOURCE_SERVER``
    The dotted path of a :class:`~resource_server.django.ResourceServer`, or of a
    zero-argument callable returning one; or a dict of its arguments, with dotted paths (or the
    objects themselves) where a Python object is needed, as DRF's settings do::

        RESOURCE_SERVER = {
            "VERIFIER": "myapi.auth.verifier",      # a TokenVerifier, or a zero-argument factory
            "ROLES": {"member": ["project:read"], "admin": ["project:read", "project:write"]},
            "MEMBERSHIP": "myapi.auth.membership",  # (subject, org) -> role name or None
            "RESOURCE": "https://api.example.com",
        }

    Keys: ``VERIFIER``, ``ROLES`` and ``MEMBERSHIP`` (required); ``REALM``, ``RESOURCE``,
    ``AUTHORIZATION_SERVERS``, ``DPOP``, ``DPOP_REQUIRED``, ``CAPABILITIES``,
    ``VIEWER_CONTEXT``, ``CACHE_SIZE``, ``USER_FOR``, ``SESSION_SUBJECT`` and ``ACTORS`` (a
    :class:`policy.Actors`, its dotted path or a factory): the ``ResourceServer`` arguments of
    the same names. Any other key is an error (a typo would
    otherwise be a silently missing option).

``RESOURCE_SERVER_ROUTES``
    For ``ResourceServerMiddleware``: URL name (``"namespace:name"``) or route
    (``"orgs/<str:org>/reports/"``, as ``request.resolver_match.route`` spells it) → scope map,
    or ``{"scope_map": {...}, "org": "org_id"}`` for another org kwarg (``"org": None`` for a
    route that names no organization).

``RESOURCE_SERVER_PUBLIC``
    URL names, routes, or ``"namespace:*"``, of views public on purpose (``/health``, the
    admin, third-party views you cannot decorate with ``@public``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from policy import Actors, Roles, ScopeMap

from ..checks import check_scopes_granted
from ..dpop import DPoPVerifier
from ..viewer_context import ViewerContextVerifier
from ..wsgi import Route
from .server import ResourceServer

__all__ = ["PUBLIC", "ROUTES", "SETTING", "Config", "configure", "get_config", "get_resource_server"]

SETTING = "RESOURCE_SERVER"
ROUTES = "RESOURCE_SERVER_ROUTES"
PUBLIC = "RESOURCE_SERVER_PUBLIC"
_SETTINGS = frozenset({SETTING, ROUTES, PUBLIC})

_REQUIRED = ("VERIFIER", "ROLES", "MEMBERSHIP")
_KEYS = {
    "VERIFIER": "verifier",
    "ROLES": "roles",
    "MEMBERSHIP": "membership",
    "REALM": "realm",
    "RESOURCE": "resource",
    "AUTHORIZATION_SERVERS": "authorization_servers",
    "DPOP": "dpop",
    "DPOP_REQUIRED": "dpop_required",
    "CAPABILITIES": "capabilities",
    "VIEWER_CONTEXT": "viewer_context",
    "CACHE_SIZE": "cache_size",
    "USER_FOR": "user_for",
    "SESSION_SUBJECT": "session_subject",
    "ACTORS": "actors",
}


@dataclass(frozen=True)
class Config:
    """The adapter's validated configuration."""

    server: ResourceServer
    routes: Mapping[str, Route]
    public: frozenset[str]


_config: Config | None = None
_lock = threading.Lock()


def configure() -> Config:
    """Read the settings again (``AppConfig.ready()``; ``setting_changed``), validated."""
    global _config
    with _lock:
        _config = load()
    return _config


def get_config() -> Config:
    """The configuration ``AppConfig.ready()`` read."""
    if _config is None:
        raise ImproperlyConfigured(
            "resource_server.django is not configured: add 'resource_server.django' to "
            f"INSTALLED_APPS and set {SETTING}"
        )
    return _config


def get_resource_server() -> ResourceServer:
    """The project's :class:`~resource_server.django.ResourceServer` (from ``RESOURCE_SERVER``)."""
    return get_config().server


def reload_on_change(*, setting: str, **_: Any) -> None:
    """The ``setting_changed`` receiver (``override_settings`` in tests), as DRF has one."""
    if setting in _SETTINGS:
        configure()


def load() -> Config:
    value = getattr(settings, SETTING, None)
    if value is None:
        raise ImproperlyConfigured(f"{SETTING} is not set: the dotted path of a ResourceServer, or a dict")
    server = _server(value)
    return Config(server, _routes(server.roles), _public())


def _server(value: object) -> ResourceServer:
    if isinstance(value, Mapping):
        return _from_dict(value)
    found = _imported(SETTING, value) if isinstance(value, str) else value
    if not isinstance(found, ResourceServer) and callable(found):
        found = _called(SETTING, found)
    if not isinstance(found, ResourceServer):
        raise ImproperlyConfigured(
            f"{SETTING} must name a resource_server.django.ResourceServer or a zero-argument callable "
            f"returning one, not {type(found).__name__}"
        )
    return found


def _from_dict(value: Mapping[str, Any]) -> ResourceServer:
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise ImproperlyConfigured(f"{SETTING} has unknown keys {unknown}: the keys are {sorted(_KEYS)}")
    missing = [key for key in _REQUIRED if key not in value]
    if missing:
        raise ImproperlyConfigured(f"{SETTING} needs {', '.join(missing)}")
    arguments = {_KEYS[key]: _object(key, entry) for key, entry in value.items()}
    try:
        return ResourceServer(**arguments)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{SETTING}: {exc}") from exc


#: What each key's object must be: instances are used as they are, anything else callable is a
#: factory called with no arguments. Callables used as callables are imported and kept.
_INSTANCE_OF: dict[str, Callable[[Any], bool]] = {
    "VERIFIER": lambda found: not isinstance(found, type) and callable(getattr(found, "verify", None)),
    "ROLES": lambda found: isinstance(found, (Roles, Mapping)),
    "DPOP": lambda found: isinstance(found, DPoPVerifier),
    "CAPABILITIES": lambda found: not isinstance(found, type) and callable(getattr(found, "handles", None)),
    "VIEWER_CONTEXT": lambda found: isinstance(found, ViewerContextVerifier),
    "ACTORS": lambda found: isinstance(found, Actors),
}
_CALLABLES = frozenset({"MEMBERSHIP", "USER_FOR", "SESSION_SUBJECT"})


def _object(key: str, value: object) -> Any:
    where = f"{SETTING}[{key!r}]"
    if key in _INSTANCE_OF or key in _CALLABLES:
        if isinstance(value, str):
            value = _imported(where, value)
        if key in _INSTANCE_OF and value is not None and not _INSTANCE_OF[key](value):
            value = _called(where, value) if callable(value) else value
            if not _INSTANCE_OF[key](value):
                raise ImproperlyConfigured(f"{where} is not what it must be: got {type(value).__name__}")
        if key in _CALLABLES and value is not None and not callable(value):
            raise ImproperlyConfigured(f"{where} must be a callable or its dotted path")
    return value


def _imported(where: str, path: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{where}: {path!r} cannot be imported: {exc}") from exc


def _called(where: str, factory: Callable[[], Any]) -> Any:
    try:
        return factory()
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{where}: calling {factory!r} failed: {exc}") from exc


def _routes(roles: Roles) -> dict[str, Route]:
    value = getattr(settings, ROUTES, None) or {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{ROUTES} must be a dict of URL name or route -> scope map")
    routes = {}
    for key, entry in value.items():
        where = f"{ROUTES}[{key!r}]"
        if not isinstance(key, str) or not key:
            raise ImproperlyConfigured(f"{where}: keys are URL names or routes")
        try:
            if isinstance(entry, Route):
                routes[key] = entry
            elif isinstance(entry, Mapping) and "scope_map" in entry:
                extra = set(entry) - {"scope_map", "org"}
                if extra:
                    raise ValueError(f"unknown keys {sorted(extra)}: give scope_map and org")
                routes[key] = Route(entry["scope_map"], org=entry.get("org", "org"))
            elif isinstance(entry, (Mapping, ScopeMap)):
                routes[key] = Route(entry, org="org")
            else:
                raise ValueError("give a scope map, or {'scope_map': ..., 'org': ...}")
            check_scopes_granted(roles, [(where, routes[key].scope_map)])
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from exc
    return routes


def _public() -> frozenset[str]:
    value = getattr(settings, PUBLIC, None) or ()
    if isinstance(value, str) or not all(isinstance(entry, str) and entry for entry in value):
        raise ImproperlyConfigured(f"{PUBLIC} must be a list of URL names, routes or 'namespace:*'")
    return frozenset(value)
