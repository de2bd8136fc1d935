"""The Django example, started with one command: the demo's authorization server and this Django
REST Framework API, protected by ``resource_server.django``, on loopback, until Ctrl-C.

    python examples/django_api/serve.py                          # API on 8000, authorization server on 8001
    python examples/django_api/serve.py --port 0 --as-port 0     # ports the OS picks (printed)

Nothing else to start: the authorization server is the demo's (``examples/demo_auth_server.py``:
Authlib, ES256 JWT access tokens bound to an organization), the API fetches its keys from its JWK
Set, and both keep their data in SQLite files in a new temporary directory, migrated and seeded
here (acme and globex, their people and roles, a project each), removed when it stops. Before
serving it runs Django's system checks, which fail on any route left unprotected. It prints the
two URLs, two tokens it asked the authorization server for (user-admin in acme, first with
``project:read`` alone, then with ``project:write`` too; valid 10 minutes), and curl commands,
each with the answer it gets.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the library, when not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the demo's authorization server
sys.path.insert(0, str(Path(__file__).resolve().parent))  # this project: api_site, projects

from demo_auth_server import MEMBERSHIPS, PASSWORDS, create_auth_server, fetch_token_with_code

READY = "Ctrl-C stops the servers."


class Late:
    """A WSGI app filled in once both servers have bound their ports: each needs the other's URL."""

    app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


def start_django(issuer: str, resource: str, database: str) -> Callable[..., Any]:
    """Configure the API for these URLs, migrate and seed its database, run the system checks
    (any problem stops here), and return its WSGI application."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="api_site.settings",
        DJANGO_API_ISSUER=issuer,
        DJANGO_API_RESOURCE=resource,
        DJANGO_API_DB=database,
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from projects.seed import seed

    seed(MEMBERSHIPS)
    call_command("check", fail_level="WARNING")  # resource_server.W010: a view left open
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def commands(api: str, reader: str, writer: str) -> list[str]:
    """What to paste, each command with the answer it gets."""
    read = f'-H "Authorization: Bearer $READER" {api}/orgs/acme/projects'
    body = """-H "Content-Type: application/json" -d '{"name": "docs"}'"""
    return [
        "# user-admin, an admin in acme, with project:read only:",
        f"READER={reader}",
        "# the same person, with project:read and project:write:",
        f"WRITER={writer}",
        "",
        f"curl -s {api}/health   # 200",
        f"curl -s -i {api}/orgs/acme/projects   # 401 + challenge with resource_metadata",
        f"curl -s {read}   # 200",
        f"curl -s -i -X POST {body} {read}   # 403 + challenge "
        'error="insufficient_scope": the role holds project:write, the token does not',
        f'curl -s -X POST {body} -H "Authorization: Bearer $WRITER" {api}/orgs/acme/projects   # 201',
        f'curl -s -i -X DELETE -H "Authorization: Bearer $WRITER" {api}/orgs/acme/projects/1'
        "   # 403, no challenge: only an owner may delete, no token can help",
        f'curl -s -i -H "Authorization: Bearer $WRITER" {api}/orgs/globex/projects'
        '   # 401 + challenge error="invalid_token": the token is bound to acme',
        f'curl -s -H "Authorization: Bearer $READER" {api}/me   # 200',
        f"curl -s {api}/.well-known/oauth-protected-resource   # 200",
    ]


def stop_on_sigterm() -> None:
    """SIGTERM (a service manager, a test) stops the servers as Ctrl-C does."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8000, help="the API's port (0: any free one)")
    parser.add_argument("--as-port", type=int, default=8001, help="the authorization server's port")
    args = parser.parse_args()
    stop_on_sigterm()
    late_as, late_api = Late(), Late()
    servers: list[BaseWSGIServer] = [
        make_server("127.0.0.1", args.as_port, late_as, threaded=True),
        make_server("127.0.0.1", args.port, late_api, threaded=True),
    ]
    issuer, api = (f"http://127.0.0.1:{server.server_port}" for server in servers)
    with tempfile.TemporaryDirectory(prefix="django-api-") as directory:
        late_api.app = start_django(issuer, api, f"{directory}/api.sqlite3")
        late_as.app = create_auth_server(issuer=issuer, db_path=f"{directory}/auth.sqlite3", resource=api)
        for server in servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            with httpx.Client(timeout=30) as http:
                tokens = [
                    fetch_token_with_code(
                        issuer,
                        username="user-admin",
                        password=PASSWORDS["user-admin"],
                        org="acme",
                        scope=scope,
                        client=http,
                    )["access_token"]
                    for scope in ("project:read", "project:read project:write")
                ]
            print(f"API (Django REST Framework):  {api}", flush=True)
            print(f"authorization server:         {issuer}", flush=True)
            print("\n".join(commands(api, *tokens)), flush=True)
            print(READY, flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
            from django.db import connections

            connections.close_all()


if __name__ == "__main__":
    main()
