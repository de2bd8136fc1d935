"""OpenAPI security requirements for a Flask app's protected routes (OpenAPI 3.0 and 3.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

from ..openapi import CONDITIONS, conditions, security_scheme, with_scopes
from .routes import CONVERTER, Route, protected_routes

if TYPE_CHECKING:
    from . import ResourceServer

__all__ = ["openapi_security"]

# werkzeug converter → OpenAPI schema of the path parameter
_PARAMETER_SCHEMA = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}


def openapi_security(
    app: Flask,
    rs: ResourceServer,
    *,
    token_url: str | None = None,
    authorization_url: str | None = None,
    openid_connect_url: str | None = None,
    scheme: str = "oauth2",
) -> dict[str, Any]:
    """An OpenAPI 3.0/3.1 fragment to merge into a document as is::

        {"components": {"securitySchemes": {scheme: {...}}},
         "paths": {path: {"parameters": [...], method: {"security": [...], "responses": {...}}}}}

    The scheme is chosen by :func:`resource_server.openapi.security_scheme` from the endpoints
    given, never guessed: ``oauth2`` with ``token_url`` (and ``authorization_url`` for the code
    flow), ``openIdConnect`` at ``openid_connect_url`` or at the discovery document of a verifier
    that discovers its issuer, else ``http`` bearer (whose requirements list the scopes as
    OpenAPI 3.1 role names: for an OpenAPI 3.0 document, give one of the others).

    Each alternative of a scope map is its own security requirement (OpenAPI: any one of the
    listed requirements satisfies the operation; the scopes inside one must all be held). Routes
    any member may call (the agent endpoints) require the scheme with no scopes; routes declared
    public carry ``security: []``. A method a route accepts but its scope map lacks is left out
    (every request to it is refused; ``flask scopes check`` reports it): ``security: []`` would
    say "public". Undeclared and resource-token routes are left out too. Every operation lists
    the 401 and 403 responses of the status table, which also makes it valid in OpenAPI 3.0.
    An operation whose alternatives ask more than scopes (a :class:`policy.Requirement`) lists
    them in ``x-authorization-conditions`` (:data:`resource_server.openapi.CONDITIONS`).
    """
    described = security_scheme(
        rs.verifier,
        token_url=token_url,
        authorization_url=authorization_url,
        openid_connect_url=openid_connect_url,
        authorization_servers=rs._state(app).authorization_servers,
        dpop_required=rs.dpop_required,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in protected_routes(app, rs):
        operations = _operations(route, scheme) if route.endpoint != "static" else {}  # not the API
        if operations:
            item = paths.setdefault(CONVERTER.sub(r"{\2}", route.rule), {})
            parameters = _path_parameters(route.rule)
            if parameters:
                item["parameters"] = parameters
            item.update(operations)
    return {
        "components": {"securitySchemes": {scheme: with_scopes(described, rs.scopes_supported)}},
        "paths": paths,
    }


#: The 401 row of the status table, with RFC 9470's: a refusal that names what the client lacks.
_UNAUTHORIZED = (
    "no, malformed or invalid credentials (RFC 6750 §3.1), or the person must authenticate again "
    "(insufficient_user_authentication with acr_values and max_age, RFC 9470 §3: see "
    "x-authorization-conditions); see WWW-Authenticate"
)
_REFUSALS = {
    "401": {
        "description": _UNAUTHORIZED,
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": {
        "description": "forbidden; with a Bearer insufficient_scope challenge naming the scope a new "
        "token needs when one would help (RFC 6750 §3.1)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
}
_PUBLIC_RESPONSES = {"default": {"description": "the view's own response"}}


def _operations(route: Route, scheme: str) -> dict[str, Any]:
    if route.kind == "public":
        return {m.lower(): {"security": [], "responses": _PUBLIC_RESPONSES} for m in route.methods}
    if route.kind == "authenticated":
        return {m.lower(): {"security": [{scheme: []}], "responses": _REFUSALS} for m in route.methods}
    if route.kind != "scope map" or route.scope_map is None:
        return {}
    operations = {}
    for method in route.methods:
        alternatives = route.scope_map.alternatives(method)
        if alternatives:  # an unmapped method is refused to everyone: no requirement describes it
            operation: dict[str, Any] = {
                "security": [{scheme: sorted(alt)} for alt in alternatives],
                "responses": _REFUSALS,
            }
            conditional = conditions([route.scope_map], method)
            if conditional:
                operation[CONDITIONS] = conditional
            operations[method.lower()] = operation
    return operations


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    """OpenAPI path parameters for the rule's variables (every templated name must be declared)."""
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PARAMETER_SCHEMA.get(converter, {"type": "string"}),
        }
        for converter, name in CONVERTER.findall(rule)
    ]
