"""``manage.py scopes``: the ``flask scopes`` commands for Django, with the same output and JSON.

``manage.py scopes routes [--json]``   URL pattern x method x required scopes, and the roles
                                       reaching each
``manage.py scopes check [--json]``    exit 1 for a pattern without the org kwarg its protection
                                       reads, a method a scope map misses, a scope no role grants,
                                       or a view neither protected nor declared public
``manage.py scopes explain --token T [--json] METHOD PATH``   the status, ``WWW-Authenticate``
                                       and body the server would send, and why
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....tooling import format_explanation, format_problems, format_route_table, route_problems, route_table
from ...checks import WORDING
from ...conf import get_config
from ...explain import ExplainError, explain
from ...routes import project_routes


class Command(BaseCommand):
    help = "Inspect and check the scope maps of this API."
    requires_system_checks = ()  # it reports the route problems itself, as data

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        routes = actions.add_parser(
            "routes", help="URL pattern x method x required scopes, and which roles can reach each"
        )
        check = actions.add_parser("check", help="exit 1 when a route is misconfigured or undeclared")
        explained = actions.add_parser(
            "explain", help="what the server would answer METHOD PATH with a token"
        )
        for sub in (routes, check, explained):
            sub.add_argument("--json", action="store_true", dest="as_json", help="machine-readable output")
        explained.add_argument("--token", required=True, help="the access token to explain")
        explained.add_argument("method")
        explained.add_argument("path")

    def handle(self, *args: Any, action: str, as_json: bool, **options: Any) -> None:
        config = get_config()
        if action == "routes":
            rows = route_table([route for route, _ in project_routes(config)], config.server.roles)
            self._emit(rows, as_json, format_route_table(rows))
        elif action == "check":
            found = self.problems(config)
            self._emit({"problems": found}, as_json, format_problems(found))
            if found:
                raise CommandError(f"{len(found)} problem(s) found", returncode=1)
        else:
            try:
                result = explain(
                    config, method=options["method"], path=options["path"], token=options["token"]
                )
            except ExplainError as exc:
                raise CommandError(str(exc)) from None
            self._emit(result, as_json, format_explanation(result))

    @staticmethod
    def problems(config: Any) -> list[str]:
        described = project_routes(config)
        invalid = [protection.error for _, protection in described if protection.error]
        return invalid + route_problems([route for route, _ in described], config.server.roles, WORDING)

    def _emit(self, data: Any, as_json: bool, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2) if as_json else text)
