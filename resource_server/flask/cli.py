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

from policy import decide

from ..guard import Denial, Granted
from .responses import denial_response
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
    """Exit 1 when a route serves the function @rs.require wrapped, a scope map misses a method, a
    scope is granted by no role, or a route is neither protected nor declared public."""
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
        if type(outcome) is Denial:
            response = denial_response(outcome)
            return {
                "status": response.status_code,
                "reason": outcome.reason,
                "www_authenticate": response.headers.get("WWW-Authenticate"),
                "body": None if method == "HEAD" else response.get_json(),  # HEAD has no content
            }
        if type(outcome) is Granted:
            reason = decide(outcome.access, route.scope_map, method).reason
            return {"status": 200, "reason": reason, "www_authenticate": None, "body": None}
    return {
        "status": 200,
        "reason": f"{method} is answered by Flask itself",
        "www_authenticate": None,
        "body": None,
    }
