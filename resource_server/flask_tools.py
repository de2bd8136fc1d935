"""Tooling for an API team: the ``flask scopes`` commands and OpenAPI security requirements.

``flask scopes routes``   rule x method x required scopes, and which roles can reach each
``flask scopes check``    non-zero exit for a method a scope map misses, a scope no role grants,
                          or an unprotected route among protected ones
``flask scopes explain --token T METHOD PATH``   the decision and its reason for that request
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException

from policy import ScopeMap, decide

from .guard import Denial

if TYPE_CHECKING:
    from .flask import ResourceServer

__all__ = ["Route", "openapi_security", "protected_routes", "scopes_cli"]

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # HEAD follows GET; OPTIONS is answered by Flask
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass(frozen=True)
class Route:
    """One URL rule as the extension sees it. ``kind``: "scope map", "authenticated" (any member,
    such as the agent endpoints), "resource token", "public" (the metadata document, static) or
    "unprotected"."""

    rule: str
    endpoint: str
    methods: tuple[str, ...]
    kind: str
    scope_map: ScopeMap | None = None
    org: str | None = None


def _extension(app: Flask) -> ResourceServer:
    state = app.extensions.get("resource_server")
    if state is None:
        raise click.ClickException("no ResourceServer is bound to this app (call init_app)")
    return state.server


def protected_routes(app: Flask, rs: ResourceServer) -> list[Route]:
    """Every URL rule of ``app`` with what protects it, sorted by rule."""
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        methods = tuple(sorted(set(rule.methods or ()) - _IGNORED_METHODS))
        blueprint = rule.endpoint.rpartition(".")[0]
        if getattr(view, "_resource_server_scope_map", None) is not None:
            route = Route(
                rule.rule,
                rule.endpoint,
                methods,
                "scope map",
                view._resource_server_scope_map,
                view._resource_server_org,
            )  # type: ignore[union-attr]
        elif blueprint in rs.blueprint_maps:
            scope_map, org = rs.blueprint_maps[blueprint]
            route = Route(rule.rule, rule.endpoint, methods, "scope map", scope_map, org)
        elif getattr(view, "_resource_server_authenticated", False):
            route = Route(rule.rule, rule.endpoint, methods, "authenticated")
        elif getattr(view, "_resource_server_resource_token", False):
            route = Route(rule.rule, rule.endpoint, methods, "resource token")
        elif rule.endpoint in ("static", "resource_server_metadata"):
            route = Route(rule.rule, rule.endpoint, methods, "public")
        else:
            route = Route(rule.rule, rule.endpoint, methods, "unprotected")
        routes.append(route)
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
        if route.scope_map is None:
            continue
        for method in route.methods:
            if route.scope_map.rule(method) is None:
                found.append(f"{route.rule} accepts {method}, which its scope map does not cover")
        for scope in sorted(route.scope_map.scopes - granted):
            found.append(f"{route.rule} requires {scope}, which no role grants")
    if any(r.kind != "unprotected" and r.kind != "public" for r in routes):
        found += [
            f"{r.rule} ({r.endpoint}) has no protection while other routes do"
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
    """``{"securitySchemes": {...}, "paths": {path: {method: [requirement, ...]}}}`` for OpenAPI 3.

    Each alternative of a scope map is its own requirement object (OpenAPI: any one of the listed
    requirements satisfies the operation; the scopes inside one must all be held)."""
    scopes = {scope: "" for scope in rs.scopes_supported}
    if authorization_url:
        flows = {
            "authorizationCode": {
                "authorizationUrl": authorization_url,
                "tokenUrl": token_url,
                "scopes": scopes,
            }
        }
    else:
        flows = {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}}
    paths: dict[str, dict[str, list[dict[str, list[str]]]]] = {}
    for route in protected_routes(app, rs):
        if route.scope_map is None:
            continue
        path = _CONVERTER.sub(r"{\1}", route.rule)
        for method in route.methods:
            alternatives = route.scope_map.alternatives(method) or ()
            paths.setdefault(path, {})[method.lower()] = [{scheme: sorted(alt)} for alt in alternatives]
    return {"securitySchemes": {scheme: {"type": "oauth2", "flows": flows}}, "paths": paths}


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
    """Why METHOD PATH with this token would be allowed or denied, and what would fix it."""
    app, rs = current_app, _extension(current_app)
    method = method.upper()
    try:
        endpoint, args = app.url_map.bind("localhost").match(path, method=method)
    except HTTPException as exc:
        raise click.ClickException(f"{method} {path} matches no route ({exc.code})") from None
    route = next((r for r in protected_routes(app, rs) if r.endpoint == endpoint), None)
    if route is None or route.scope_map is None:
        raise click.ClickException(f"{path} is not protected by a scope map")
    org = str(args[route.org]) if route.org and route.org in args else None
    guard = app.extensions["resource_server"].guard
    granted = guard.authenticate(authorization=f"Bearer {token}", token_elsewhere=False, org=org)
    if isinstance(granted, Denial):
        result = {
            "status": granted.status,
            "reason": granted.description,
            "www_authenticate": granted.www_authenticate,
        }
    else:
        decision = decide(granted.access, route.scope_map, method, realm=guard.realm)
        result = {
            "status": decision.status,
            "reason": decision.reason,
            "www_authenticate": decision.www_authenticate,
        }
    _emit(
        result,
        as_json,
        f"{result['status']}: {result['reason']}"
        + (f"\nWWW-Authenticate: {result['www_authenticate']}" if result["www_authenticate"] else ""),
    )
