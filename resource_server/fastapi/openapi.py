"""FastAPI's OpenAPI document with this server's security: the security scheme
(:mod:`resource_server.openapi`), each operation's scope alternatives per method, and the
refusals of the status table."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from ..openapi import CONDITIONS, conditions, with_scopes
from .routes import requirements_of, routes_of, solve_order

if TYPE_CHECKING:
    from . import ResourceServer
    from .dependencies import Requirement

__all__ = ["describe_in_openapi"]

_PATH_PARAMETER = re.compile(r"{([^}:]+)")


def describe_in_openapi(
    server: ResourceServer, app: FastAPI, security_scheme: dict[str, Any], scheme: str
) -> None:
    """Wrap ``app.openapi`` (FastAPI's documented way to customise the document) so that the
    document it builds, once, carries this server's security."""
    previous = app.openapi
    described: list[dict[str, Any]] = []  # the document described last, held
    app.openapi_schema = None  # built again, with the security in it

    def openapi() -> dict[str, Any]:
        document = previous()
        if not described or document is not described[0]:
            describe(server, app, document, security_scheme, scheme)
            described[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend its schema


def describe(
    server: ResourceServer,
    app: FastAPI,
    document: dict[str, Any],
    security_scheme: dict[str, Any],
    scheme: str,
) -> None:
    """Each alternative of a scope map is its own security requirement (OpenAPI: any one of
    the listed requirements satisfies the operation; the scopes inside one must all be held),
    per method. A method a map lacks is left without a requirement rather than described as
    public (``check_routes`` refuses such routes anyway). Alternatives that ask more than scopes
    are listed in ``x-authorization-conditions`` (:data:`resource_server.openapi.CONDITIONS`)."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[scheme] = with_scopes(
        security_scheme, server.scopes_supported
    )
    _refusal_components(components)
    paths = document.get("paths", {})
    for route in routes_of(app, APIRoute):
        item = paths.get(route.path_format) if route.include_in_schema else None
        if not item:
            continue
        requirements = requirements_of(solve_order(route.dependant), server)
        for method in sorted(route.methods or ()) if requirements else ():
            operation = item.get(method.lower())
            alternatives = _alternatives(requirements, method)
            if operation is None or not alternatives:
                continue
            # Requirements the app declared itself (another scheme) must hold as well: AND.
            existing = [
                {k: v for k, v in other.items() if k != scheme} for other in operation.get("security") or [{}]
            ]
            operation["security"] = [{**other, scheme: alt} for other in existing for alt in alternatives]
            conditional = conditions((requirement.scope_map for requirement in requirements), method)
            if conditional:
                operation[CONDITIONS] = conditional
            responses = operation.setdefault("responses", {})
            for status, (name, _) in _REFUSALS.items():
                responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
            _declare_path_parameters(operation, route.path_format)


def _alternatives(requirements: list[Requirement], method: str) -> list[list[str]]:
    """The alternatives of several requirements that must all hold: one union per combination,
    less those that hold another whole (holding the smaller one suffices)."""
    each: list[tuple[frozenset[str], ...]] = []
    for requirement in requirements:
        alternatives = requirement.scope_map.alternatives(method)
        if alternatives is None:
            return []  # refused to everyone: no requirement describes it
        each.append(alternatives)
    unions = list(dict.fromkeys(frozenset[str]().union(*parts) for parts in itertools.product(*each)))
    return [sorted(one) for one in unions if not any(other < one for other in unions)]


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error", "error_description"],
}


_REFUSALS = {
    "401": (
        "BearerUnauthorized",
        "no, malformed or invalid credentials (RFC 6750 §3.1), or the person must authenticate again "
        "(insufficient_user_authentication with acr_values and max_age, RFC 9470 §3: see "
        "x-authorization-conditions); see WWW-Authenticate",
    ),
    "403": (
        "BearerForbidden",
        "forbidden; with a Bearer insufficient_scope challenge naming the scope a new token needs "
        "when one would help (RFC 6750 §3.1)",
    ),
}


def _refusal_components(components: dict[str, Any]) -> None:
    components.setdefault("schemas", {})["BearerError"] = _ERROR_SCHEMA
    responses = components.setdefault("responses", {})
    for name, description in _REFUSALS.values():
        responses[name] = {
            "description": description,
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BearerError"}}},
        }


def _declare_path_parameters(operation: dict[str, Any], path: str) -> None:
    """Declare the templated names the endpoint itself does not (the org is read by the
    dependency, so the endpoint need not name it): OpenAPI requires every one declared."""
    parameters = operation.setdefault("parameters", [])
    declared = {p.get("name") for p in parameters if p.get("in") == "path"}
    for name in _PATH_PARAMETER.findall(path):
        if name not in declared:
            parameters.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
