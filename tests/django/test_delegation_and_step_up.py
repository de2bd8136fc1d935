"""Delegation (RFC 8693) and step-up authentication (RFC 9470) through the Django adapter, every way
it protects a view (DRF's classes, ``@require`` sync and async, ``ScopeMapMixin``, and
``ResourceServerMiddleware`` with a ``Requirement`` in ``RESOURCE_SERVER_ROUTES``), configured in
the settings' dict form with ``ACTORS``: the table every adapter is held to
(``tests/resource_server/delegation_scenario.py``), through Django's test client and over
uvicorn; a signed-in session asked for a stronger sign-in is 403 without a challenge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

from policy import Actors
from resource_server.django import get_resource_server
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
