"""The ``flask scopes`` commands, for an API team.

``flask scopes routes``   rule x method x required scopes, and which roles can reach each
``flask scopes check``    non-zero exit for a route serving the function ``@rs.require``
                          wrapped (the decorator above ``@app.route``), a method a scope map
                          misses, a rule without its declared org variable, a scope no role
                          grants, or a route neither protected nor declared public
``flask scopes explain --token T METHOD PATH``   the status, ``WWW-Authenticate`` and body the
                          server would send, built by the server's own code path, and the reason
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException

from ..guard import Denial, Granted
from ..tooling import (
    check_explained_token,
    explanation,
    format_explanation,
    format_problems,
    format_route_table,
)
from .routes import problems, protected_routes, route_table

if TYPE_CHECKING:
    from . import ResourceServer
    from .guarded import AppState

__all__ = ["explain", "scopes_cli"]


def _extension(app: Flask) -> ResourceServer:
    state: AppState | None = app.extensions.get("resource_server")
    if state is None:
        raise click.ClickException("no ResourceServer is bound to this app (call init_app)")
    return state.server


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
    _emit(rows, as_json, format_route_table(rows))


@scopes_cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@with_appcontext
def check_command(as_json: bool) -> None:
    """Exit 1 when a route serves the function @rs.require wrapped, a scope map misses a method, a
    scope is granted by no role, or a route is neither protected nor declared public."""
    found = problems(current_app, _extension(current_app))
    _emit({"problems": found}, as_json, format_problems(found))
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
    _emit(result, as_json, format_explanation(result))


def explain(app: Flask, rs: ResourceServer, *, method: str, path: str, token: str) -> dict[str, Any]:
    """Run the request through the extension's own per-request code in a test request context
    (the view is never called), so what this says is what the server sends."""
    method = method.upper()
    try:
        check_explained_token(token)  # no header could carry it
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
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
        if isinstance(outcome, (Denial, Granted)):
            now = rs._state(app).guard.clock()
            return explanation(outcome, method=method, scope_map=route.scope_map, now=now)
    return {
        "status": 200,
        "reason": f"{method} is answered by Flask itself",
        "www_authenticate": None,
        "body": None,
    }
