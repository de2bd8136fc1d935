"""drf-spectacular: the security scheme of ``BearerTokenAuthentication`` and, per operation and
method, one security requirement per alternative of the view's scope map (OpenAPI: any one of the
listed requirements satisfies the operation; the scopes inside one must all be held). Registered
by the app when drf-spectacular is installed (``pip install 'scoped-resource-server[spectacular]'``).

The scheme is chosen by :func:`resource_server.openapi.security_scheme` from
``RESOURCE_SERVER_OPENAPI`` and never guessed::

    RESOURCE_SERVER_OPENAPI = {
        "SCHEME_NAME": "oauth2",                              # the securitySchemes key
        "TOKEN_URL": "https://as.example.com/token",          # an oauth2 scheme ...
        "AUTHORIZATION_URL": "https://as.example.com/authorize",  # ... with the code flow
        # or "OPENID_CONNECT_URL": "https://as.example.com/.well-known/openid-configuration"
    }

Without endpoints it is an ``openIdConnect`` scheme for a verifier that discovers its issuer, else
``http`` bearer (``DPoP`` when DPoP is required). A method a view serves but its map lacks gets
no requirement from this scheme (every such request is refused; the system checks report it),
never ``security: []``; views any member may call (``OrgMemberPermission``) require the scheme
with no scopes.

What an alternative asks beyond scopes (a :class:`policy.Requirement`: ``acr``, ``max_age``,
``actors``) is the operation extension ``x-authorization-conditions``
(:data:`resource_server.openapi.CONDITIONS`). drf-spectacular lets only the schema class add an
operation's extensions, so set ``DEFAULT_SCHEMA_CLASS`` to :class:`AutoSchema`, drf-spectacular's
own with that one addition; with drf-spectacular's, the requirements are described without their
conditions.
"""

from __future__ import annotations

from typing import Any

try:
    from drf_spectacular import openapi as spectacular_openapi
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("spectacular", "resource_server.django.spectacular", exc) from exc

from django.conf import settings

from ..openapi import CONDITIONS, conditions, security_scheme, with_scopes
from .conf import get_config
from .routes import class_protection, project_routes

__all__ = ["SETTING", "AutoSchema", "BearerTokenScheme"]

SETTING = "RESOURCE_SERVER_OPENAPI"
_ENDPOINTS = {
    "TOKEN_URL": "token_url",
    "AUTHORIZATION_URL": "authorization_url",
    "OPENID_CONNECT_URL": "openid_connect_url",
}


def _options() -> dict[str, Any]:
    options = dict(getattr(settings, SETTING, None) or {})
    unknown = set(options) - {"SCHEME_NAME", *_ENDPOINTS}
    if unknown:
        raise ValueError(f"{SETTING} has unknown keys {sorted(unknown)}")
    return options


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular's __init_subclass__ (which registers it) is unannotated
    """The OpenAPI description of :class:`~resource_server.django.rest_framework.BearerTokenAuthentication`."""

    target_class = "resource_server.django.rest_framework.BearerTokenAuthentication"

    @property
    def name(self) -> str:  # type: ignore[override]  # drf-spectacular only reads it; a property follows settings changes
        return str(_options().get("SCHEME_NAME", "oauth2"))

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        config = get_config()
        server = config.server
        options = _options()
        scheme = security_scheme(
            server.verifier,
            **{argument: options.get(key) for key, argument in _ENDPOINTS.items()},
            authorization_servers=server.authorization_servers,
            dpop_required=server.guard.dpop_required,
        )
        scopes = {
            scope
            for route, _ in project_routes(config)
            if route.scope_map
            for scope in route.scope_map.scopes
        }
        return with_scopes(scheme, sorted(scopes))

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        protection = class_protection(type(auto_schema.view))
        if protection.kind == "authenticated":
            return [{self.name: []}]
        if protection.kind != "scope map" or protection.scope_map is None:
            return [{self.name: []}]  # a token is what this authenticator reads, scopes unknown
        alternatives = protection.scope_map.alternatives(auto_schema.method) or ()
        return [{self.name: sorted(alternative)} for alternative in alternatives]


class AutoSchema(spectacular_openapi.AutoSchema):
    """drf-spectacular's ``AutoSchema``, adding ``x-authorization-conditions`` to an operation
    whose scope-map alternatives ask more than scopes (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] =
    "resource_server.django.spectacular.AutoSchema"``)."""

    def get_extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = super().get_extensions()
        protection = class_protection(type(self.view))
        if protection.kind == "scope map" and protection.scope_map is not None:
            conditional = conditions([protection.scope_map], self.method)
            if conditional:
                extensions = {**extensions, CONDITIONS: conditional}
        return extensions
