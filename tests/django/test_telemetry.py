"""The Django adapter records what the other adapters do, from the same guard: each way it
protects a view (DRF's classes, the decorator, the mixins, the middleware) is sent the rows of
the status table and read back from the OpenTelemetry SDK's in-memory metric reader and the
audit logger, with Django's route template (``ResolverMatch.route``) as ``http.route``."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.django.helpers import STYLES, token
from tests.otel import key, recording
from tests.support import ISSUER, NOW

#: Each style's read path and the route template Django resolves for it.
ROUTES = {
    "drf": "orgs/<str:org>/projects",
    "drf-viewset": "orgs/<str:org>/vs/projects/$",  # a router's pattern is a regular expression
    "plain": "plain/orgs/<str:org>/projects",
    "async": "async/orgs/<str:org>/projects",
    "mixin": "cbv/orgs/<str:org>/projects",
    "async-mixin": "acbv/orgs/<str:org>/projects",
    "method-decorator": "decorated/orgs/<str:org>/projects",
    "middleware": "orgs/<str:org>/reports",
}


@pytest.mark.parametrize("style", list(STYLES))
def test_every_row_is_recorded_with_the_route_template(style: str) -> None:
    path = STYLES[style][0]
    route = ROUTES[style]
    client = Client()
    # The middleware's route asks for report:read, the others for project:read.
    lacking = "team:write" if style != "middleware" else "project:read"
    rows: list[tuple[dict[str, Any], int]] = [
        ({}, 401),
        ({"HTTP_AUTHORIZATION": "Bearer a b"}, 400),
        ({"HTTP_AUTHORIZATION": f"Bearer {token(exp=NOW - 3600, iat=NOW - 4200)}"}, 401),
        ({"HTTP_AUTHORIZATION": f"Bearer {token(org_id='globex')}"}, 401),
        ({"HTTP_AUTHORIZATION": f"Bearer {token(scope=lacking)}"}, 403),
        ({"HTTP_AUTHORIZATION": f"Bearer {token()}"}, 200),
    ]
    with recording() as recorded:
        assert [client.get(path, **headers).status_code for headers, _ in rows] == [
            status for _, status in rows
        ]
        refused = {"http.route": route}
        issuer = {"resource_server.issuer": ISSUER}
        assert recorded.points("resource_server.refusals") == {
            key({"http.response.status_code": 401, "error.type": "unauthorized", **refused}): 1,
            key({"http.response.status_code": 400, "error.type": "invalid_request", **refused}): 1,
            key({"http.response.status_code": 401, "error.type": "invalid_token", **issuer, **refused}): 2,
            key(
                {"http.response.status_code": 403, "error.type": "insufficient_scope", **issuer, **refused}
            ): 1,
        }
        assert recorded.points("resource_server.authorization.attempts") == {
            key(
                {
                    "http.route": route,
                    "http.request.method": "GET",
                    "resource_server.authorization.result": result,
                }
            ): 1
            for result in ("success", "failure")
        }
        decisions = recorded.events("decision")
        assert [(event["status"], event["error"]) for event in decisions] == [
            (401, "unauthorized"),
            (400, "invalid_request"),
            (401, "invalid_token"),
            (401, "invalid_token"),
            (403, "insufficient_scope"),
        ]
        assert {(event["route"], event["method"]) for event in decisions} == {(route, "GET")}
        (violation,) = recorded.events("org_binding_violation")
        assert (violation["org"], violation["token_org"], violation["route"]) == ("acme", "globex", route)
