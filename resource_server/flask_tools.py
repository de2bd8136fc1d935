"""Tooling for an API team: the ``flask scopes`` commands and OpenAPI security requirements.

``flask scopes routes``   rule x method x required scopes, and which roles can reach each
``flask scopes check``    non-zero exit for a method a scope map misses, a rule without its
                          declared org variable, a scope no role grants, or a route that is
                          unprotected among protected ones without being declared public
``flask scopes explain --token T METHOD PATH``   the status, ``WWW-Authenticate`` and body the
                          server would send, built by the server's own code path, and the reason
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException

from policy import ScopeMap, decide

from .flask import denial_response
from .guard import Denial, Granted

if TYPE_CHECKING:
    from .flask import ResourceServer

__all__ = ["Route", "openapi_security", "protected_routes", "scopes_cli"]

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # HEAD follows GET; OPTIONS is answered by Flask
_CONVERTER = re.compile(r"<(?:([^:<>(]+)(?:\([^<>]*\))?:)?([^<>:]+)>")
# werkzeug converter → OpenAPI schema of the path parameter
_PARAMETER_SCHEMA = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}


@dataclass(frozen=True)
class Route:
    """One URL rule as the extension sees it. ``kind``: "scope map", "authenticated" (any member,
    such as the agent endpoints), "resource token", "public" (the metadata document, static, and
    views declared with ``@rs.public`` or in ``RESOURCE_SERVER_PUBLIC_ENDPOINTS``) or
    "unprotected". ``org`` is the URL variable the protection reads the organization from;
    ``arguments`` are the variables the rule has."""

    rule: str
    endpoint: str
    methods: tuple[str, ...]
    kind: str
    scope_map: ScopeMap | None = None
    org: str | None = None
    arguments: frozenset[str] = frozenset()


def _extension(app: Flask) -> ResourceServer:
    state = app.extensions.get("resource_server")
    if state is None:
        raise click.ClickException("no ResourceServer is bound to this app (call init_app)")
    return state.server


def protected_routes(app: Flask, rs: ResourceServer) -> list[Route]:
    """Every URL rule of ``app`` with what protects it, sorted by rule."""
    public_endpoints = {
        "static",
        "resource_server_metadata",
        *app.config.get("RESOURCE_SERVER_PUBLIC_ENDPOINTS", ()),
    }
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        methods = tuple(sorted(set(rule.methods or ()) - _IGNORED_METHODS))
        blueprint = rule.endpoint.rpartition(".")[0]
        # The variables a request can supply: those in the pattern, and defaults that are values
        # (werkzeug counts defaults as arguments, a None default too).
        defaults = {name for name, value in (rule.defaults or {}).items() if value is not None}
        arguments = frozenset(name for _, name in _CONVERTER.findall(rule.rule)) | defaults

        def route(kind: str, scope_map: ScopeMap | None = None, org: str | None = None) -> Route:
            return Route(rule.rule, rule.endpoint, methods, kind, scope_map, org, arguments)  # noqa: B023

        if getattr(view, "_resource_server_scope_map", None) is not None:
            routes.append(route("scope map", view._resource_server_scope_map, view._resource_server_org))  # type: ignore[union-attr]
        elif blueprint in rs.blueprint_maps:
            routes.append(route("scope map", *rs.blueprint_maps[blueprint]))
        elif getattr(view, "_resource_server_authenticated", False):
            routes.append(route("authenticated", org=getattr(view, "_resource_server_org", None)))
        elif getattr(view, "_resource_server_resource_token", False):
            routes.append(route("resource token", org=getattr(view, "_resource_server_org", None)))
        elif rule.endpoint in public_endpoints or getattr(view, "_resource_server_public", False):
            routes.append(route("public"))
        else:
            routes.append(route("unprotected"))
    return sorted(routes, key=lambda r: (r.rule, r.endpoint))


def _roles_reaching(rs: ResourceServer, alternatives: tuple[frozenset[str], ...]) -> list[str]:
    return [name for name, scopes in rs.roles.items() if any(alt <= scopes for alt in alternatives)]


def route_table(app: Flask, rs: ResourceServer) -> list[dict[str, Any]]:
    rows = []
    for route in protected_routes(app, rs):
        for method in route.methods or ("-",):
            alternatives = route.scope_map.alternatives(method) if route.scope_map else None
            rows.append(
                {
                    "rule": route.rule,
                    "method": method,
                    "protection": route.kind,
                    "scopes": [sorted(a) for a in alternatives] if alternatives else None,
                    "roles": _roles_reaching(rs, alternatives) if alternatives else None,
                }
            )
    return rows


def problems(app: Flask, rs: ResourceServer) -> list[str]:
    """What ``flask scopes check`` fails on."""
    found = []
    granted = rs.roles.all_scopes
    routes = protected_routes(app, rs)
    for route in routes:
        if route.org is not None and route.org not in route.arguments:
            found.append(
                f"{route.rule} ({route.endpoint}) reads the organization from the URL variable "
                f"{route.org!r}, which the rule does not have: every request gets 403 (use org=None "
                "for a route that names no organization)"
            )
        if route.org is None and route.kind == "scope map" and "org" in route.arguments:
            found.append(
                f"{route.rule} ({route.endpoint}) declares org=None but has the URL variable 'org': "
                "its requests are checked in the token's own organization, not the URL's"
            )
        if route.scope_map is None:
            continue
        for method in route.methods:
            if route.scope_map.rule(method) is None:
                found.append(f"{route.rule} accepts {method}, which its scope map does not cover")
        for scope in sorted(route.scope_map.scopes - granted):
            found.append(f"{route.rule} requires {scope}, which no role grants")
    if any(r.kind not in ("unprotected", "public") for r in routes):
        found += [
            f"{r.rule} ({r.endpoint}) has no protection while other routes do; declare it with "
            "@rs.public or RESOURCE_SERVER_PUBLIC_ENDPOINTS if it is public on purpose"
            for r in routes
            if r.kind == "unprotected"
        ]
    return found


def openapi_security(
    app: Flask,
    rs: ResourceServer,
    *,
    token_url: str,
    authorization_url: str | None = None,
    scheme: str = "oauth2",
) -> dict[str, Any]:
    """An OpenAPI 3.0/3.1 fragment to merge into a document as is::

        {"components": {"securitySchemes": {scheme: {...}}},
         "paths": {path: {"parameters": [...], method: {"security": [...], "responses": {...}}}}}

    Each alternative of a scope map is its own security requirement (OpenAPI: any one of the
    listed requirements satisfies the operation; the scopes inside one must all be held). Routes
    any member may call (the agent endpoints) require the scheme with no scopes; routes declared
    public carry ``security: []``. A method a route accepts but its scope map lacks is left out
    (every request to it is refused; ``flask scopes check`` reports it): ``security: []`` would
    say "public". Undeclared and resource-token routes are left out too. Every operation lists
    the 401 and 403 responses of the status table, which also makes it valid in OpenAPI 3.0.
    """
    scopes = {scope: "" for scope in rs.scopes_supported}
    if authorization_url:
        flows: dict[str, Any] = {
            "authorizationCode": {
                "authorizationUrl": authorization_url,
                "tokenUrl": token_url,
                "scopes": scopes,
            }
        }
    else:
        flows = {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}}
    paths: dict[str, dict[str, Any]] = {}
    for route in protected_routes(app, rs):
        operations = _operations(route, scheme) if route.endpoint != "static" else {}  # not the API
        if operations:
            item = paths.setdefault(_CONVERTER.sub(r"{\2}", route.rule), {})
            parameters = _path_parameters(route.rule)
            if parameters:
                item["parameters"] = parameters
            item.update(operations)
    return {
        "components": {"securitySchemes": {scheme: {"type": "oauth2", "flows": flows}}},
        "paths": paths,
    }


_REFUSALS = {
    "401": {
        "description": "no, malformed or invalid credentials (RFC 6750 §3.1); see WWW-Authenticate",
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
            operations[method.lower()] = {
                "security": [{scheme: sorted(alt)} for alt in alternatives],
                "responses": _REFUSALS,
            }
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
        for converter, name in _CONVERTER.findall(rule)
    ]


def _emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


@click.group("scopes")
def scopes_cli() -> None:
    """Inspect and check the scope maps of this API."""


@scopes_cli.command("routes")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@with_appcontext
def routes_command(as_json: bool) -> None:
    """Rule x method x required scopes, and which roles can reach each."""
    rows = route_table(current_app, _extension(current_app))
    lines = [
        f"{r['rule']:<40} {r['method']:<7} "
        + (" | ".join(" ".join(a) for a in r["scopes"]) if r["scopes"] else f"({r['protection']})")
        + (f"   roles: {', '.join(r['roles']) or 'none'}" if r["roles"] is not None else "")
        for r in rows
    ]
    _emit(rows, as_json, "\n".join(lines))


@scopes_cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@with_appcontext
def check_command(as_json: bool) -> None:
    """Exit 1 when a scope map misses a method, a scope is granted by no role, or a route is unprotected."""
    found = problems(current_app, _extension(current_app))
    _emit({"problems": found}, as_json, "\n".join(found) or "scope maps OK")
    if found:
        sys.exit(1)


@scopes_cli.command("explain")
@click.option("--token", required=True, help="the access token to explain")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.argument("method")
@click.argument("path")
@with_appcontext
def explain_command(token: str, as_json: bool, method: str, path: str) -> None:
    """What the server would answer to METHOD PATH with this token (status, WWW-Authenticate and
    body), and why."""
    result = explain(current_app, _extension(current_app), method=method, path=path, token=token)
    text = f"{result['status']}: {result['reason']}"
    if result["www_authenticate"]:
        text += f"\nWWW-Authenticate: {result['www_authenticate']}"
    if result["body"] is not None:
        text += f"\n{json.dumps(result['body'])}"
    _emit(result, as_json, text)


def explain(app: Flask, rs: ResourceServer, *, method: str, path: str, token: str) -> dict[str, Any]:
    """Run the request through the extension's own per-request code in a test request context
    (the view is never called), so what this says is what the server sends."""
    method = method.upper()
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in token):  # no header could carry it
        raise click.ClickException("the token holds spaces, control characters or non-ASCII")
    target = urlsplit(path)
    try:
        endpoint, _ = app.url_map.bind("localhost").match(target.path, method=method)
    except HTTPException as exc:
        raise click.ClickException(f"{method} {path} matches no route ({exc.code})") from None
    route = next((r for r in protected_routes(app, rs) if r.endpoint == endpoint), None)
    if route is None or route.scope_map is None:
        raise click.ClickException(f"{path} is not protected by a scope map")
    with app.test_request_context(path, method=method, headers={"Authorization": f"Bearer {token}"}):
        outcome = rs._outcome(route.scope_map, route.org)
        if isinstance(outcome, Denial):
            response = denial_response(outcome)
            return {
                "status": response.status_code,
                "reason": outcome.reason,
                "www_authenticate": response.headers.get("WWW-Authenticate"),
                "body": None if method == "HEAD" else response.get_json(),  # HEAD has no content
            }
        if isinstance(outcome, Granted):
            reason = decide(outcome.access, route.scope_map, method).reason
            return {"status": 200, "reason": reason, "www_authenticate": None, "body": None}
    return {
        "status": 200,
        "reason": f"{method} is answered by Flask itself",
        "www_authenticate": None,
        "body": None,
    }
