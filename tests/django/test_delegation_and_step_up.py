"""Delegation (RFC 8693) and step-up authentication (RFC 9470) through the Django adapter, every way
it protects a view (DRF's classes, ``@require`` sync and async, ``ScopeMapMixin``, and
``ResourceServerMiddleware`` with a ``Requirement`` in ``RESOURCE_SERVER_ROUTES``), configured in
the settings' dict form with ``ACTORS``: the table every adapter is held to
(``tests/resource_server/delegation_scenario.py``), through Django's test client and over
uvicorn; a signed-in session asked for a stronger sign-in is 403 without a challenge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

from policy import Actors
from resource_server.django import get_resource_server
from resource_server.openapi import CONDITIONS
from tests.django.conftest import PASSWORD
from tests.django.project.delegation import RESOURCE_SERVER as DELEGATION
from tests.django.project.keys import SIGNER
from tests.django.test_servers import uvicorn_server
from tests.resource_server import delegation_scenario as scenario

METADATA = "https://api.test/.well-known/oauth-protected-resource"
STYLES = ("drf", "plain", "async", "mixin", "middleware")


@pytest.fixture(autouse=True)
def delegation_settings() -> Iterator[None]:
    with override_settings(
        ROOT_URLCONF="tests.django.project.delegation_urls",
        RESOURCE_SERVER=DELEGATION,
        RESOURCE_SERVER_ROUTES={"middleware": scenario.SCOPE_MAP},
        RESOURCE_SERVER_PUBLIC=[],
    ):
        yield


def test_the_actors_setting_is_the_guards() -> None:
    assert get_resource_server().guard.actors is scenario.ACTORS
    assert isinstance(scenario.ACTORS, Actors)


def client_sender(style: str) -> scenario.Send:
    def send(method: str, token: str) -> tuple[int, list[str], Any]:
        response = Client().generic(
            method,
            f"/{style}{scenario.PATH}",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_ACCEPT="application/json",
        )
        challenge = response.headers.get("WWW-Authenticate")
        return response.status_code, [] if challenge is None else [challenge], json.loads(response.content)

    return send


@pytest.mark.parametrize("style", STYLES)
def test_each_style_through_the_test_client(style: str) -> None:
    scenario.run(client_sender(style), SIGNER, resource_metadata=METADATA)


def test_each_style_over_uvicorn() -> None:
    with uvicorn_server() as (host, port), httpx.Client(timeout=20) as http:
        for style in STYLES:

            def send(method: str, token: str, style: str = style) -> tuple[int, list[str], Any]:
                response = http.request(
                    method,
                    f"http://{host}:{port}/{style}{scenario.PATH}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                return response.status_code, response.headers.get_list("www-authenticate"), response.json()

            scenario.run(send, SIGNER, resource_metadata=METADATA)


@pytest.mark.parametrize("style", ["drf", "plain", "mixin"])
def test_a_session_cannot_step_up_so_it_is_403_without_a_challenge(style: str) -> None:
    client = Client()
    assert client.login(username="user-1", password=PASSWORD)  # user-1 is the scenario's admin
    path = f"/{style}{scenario.PATH}"
    seen = client.get(path, HTTP_ACCEPT="application/json")
    assert seen.status_code == 200 and seen.json()["actor"] is None
    refused = client.delete(path, HTTP_ACCEPT="application/json")  # the test client skips CSRF
    assert refused.status_code == 403, refused.content
    assert "WWW-Authenticate" not in refused.headers
    assert refused.json()["error"] == "forbidden"


# -- manage.py scopes and drf-spectacular ------------------------------------------------------------


def scopes(*args: str) -> str:
    out = StringIO()
    call_command("scopes", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("person, password only", "DELETE"),  # 401 insufficient_user_authentication
        ("person", "DELETE"),  # allowed: a second factor ten seconds ago
        ("reporting agent", "POST"),  # the actor's ceiling: 403, no challenge
        ("deploy agent for the chat agent", "PUT"),  # the person only: 403, no challenge
    ],
)
def test_explain_prints_exactly_what_the_server_sends(style: str, name: str, method: str) -> None:
    raw = scenario.tokens(SIGNER)[name]
    path = f"/{style}{scenario.PATH}"
    sent = Client().generic(method, path, HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT="application/json")
    explained = json.loads(scopes("explain", "--token", raw, "--json", method, path))
    assert explained["status"] == sent.status_code
    assert explained["www_authenticate"] == sent.headers.get("WWW-Authenticate")
    assert explained["body"] == (json.loads(sent.content) if sent.status_code != 200 else None)
    if sent.status_code == 401:
        assert "the person must authenticate again for project:admin" in explained["reason"]
    elif sent.status_code == 403:
        assert "'agent:" in explained["reason"]  # the actor the refusal is about


def test_routes_list_the_conditions() -> None:
    rows = [row for row in json.loads(scopes("routes", "--json")) if row["rule"].startswith("/drf/")]
    by_method = {row["method"]: row["requirements"] for row in rows}
    assert by_method["DELETE"] == [
        {"scopes": ["project:admin"], "acr_values": ["mfa", "hwk"], "max_age": 300}
    ]
    assert by_method["PUT"] == [{"scopes": ["project:write"], "actors": []}]
    assert "project:admin (acr mfa or hwk; authenticated within 300 s)" in scopes("routes")


def test_spectacular_describes_the_conditions_with_its_schema_class() -> None:
    from drf_spectacular.generators import SchemaGenerator
    from openapi_spec_validator import OpenAPIV30SpecValidator

    rest = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "resource_server.django.spectacular.AutoSchema",
    }
    with override_settings(REST_FRAMEWORK=rest):
        document = SchemaGenerator().get_schema(request=None, public=True)
    OpenAPIV30SpecValidator(document).validate()
    operations = document["paths"]["/drf/orgs/{org}/projects"]
    assert operations["delete"]["security"][0] == {"oauth2": ["project:admin"]}
    assert operations["delete"][CONDITIONS] == [
        {"scopes": ["project:admin"], "acr_values": ["mfa", "hwk"], "max_age": 300}
    ]
    assert operations["put"][CONDITIONS] == [{"scopes": ["project:write"], "actors": []}]
    assert CONDITIONS not in operations["get"]
    # drf-spectacular's own schema class describes the same requirements without their conditions.
    plain = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/drf/orgs/{org}/projects"]
    assert (
        plain["delete"]["security"][0] == {"oauth2": ["project:admin"]} and CONDITIONS not in plain["delete"]
    )
