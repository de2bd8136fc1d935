"""Step-up clients against the demo's real authorization server and API, over loopback HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from resource_server.client import InsufficientScope, RequestsStepUpAuth, StepUpAuth, insufficient_scope

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import Demo, demo_servers
from demo_auth_server import PASSWORDS, fetch_token_with_code


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running:
        yield running


class Provider:
    """Gets real tokens from the demo authorization server, counting the calls."""

    def __init__(self, demo: Demo, username: str = "user-admin", first: str | None = None) -> None:
        self.demo, self.username, self.first = demo, username, first
        self.asked: list[frozenset[str] | None] = []

    def __call__(self, scopes: frozenset[str] | None) -> str:
        self.asked.append(scopes)
        if self.first is not None and len(self.asked) == 1:
            return self.first
        with httpx.Client(timeout=10) as http:
            return fetch_token_with_code(
                self.demo.issuer,
                username=self.username,
                password=PASSWORDS[self.username],
                org="acme",
                scope=" ".join(sorted(scopes or {"project:read"})),
                client=http,
            )["access_token"]


def test_httpx_steps_up_once_and_keeps_its_scopes(demo: Demo) -> None:
    provider = Provider(demo)
    with httpx.Client(base_url=demo.resource, auth=StepUpAuth(provider, scopes={"project:read"})) as client:
        assert client.get("/orgs/acme/projects").status_code == 200
        created = client.post("/orgs/acme/projects", json={"name": "from-httpx"})
        assert (created.status_code, created.json()["name"]) == (201, "from-httpx")  # the body was replayed
        assert client.post("/orgs/acme/projects", json={"name": "again"}).status_code == 201
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]


def test_requests_steps_up_too(demo: Demo) -> None:
    provider = Provider(demo)
    with requests.Session() as session:
        session.auth = RequestsStepUpAuth(provider, scopes={"project:read"})
        created = session.post(f"{demo.resource}/orgs/acme/projects", json={"name": "from-requests"})
        assert (created.status_code, created.json()["name"]) == (201, "from-requests")
        assert [r.status_code for r in created.history] == [403]
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]


def test_async_client_with_an_async_provider(demo: Demo) -> None:
    provider = Provider(demo)

    async def provide(scopes: frozenset[str] | None) -> str:
        return await asyncio.to_thread(provider, scopes)

    async def run() -> int:
        auth = StepUpAuth(provide, scopes={"project:read"})
        async with httpx.AsyncClient(base_url=demo.resource, auth=auth) as client:
            return (await client.post("/orgs/acme/projects", json={"name": "from-async"})).status_code

    assert asyncio.run(run()) == 201
    assert len(provider.asked) == 2


def test_no_loop_when_the_new_token_still_falls_short(demo: Demo) -> None:
    """A member's role caps the token at project:read, so the retry gets 403 again: returned."""
    provider = Provider(demo, username="user-member")
    with httpx.Client(
        base_url=demo.resource, auth=StepUpAuth(provider, scopes={"project:read"}, max_retries=3)
    ) as client:
        response = client.post("/orgs/acme/projects", json={"name": "x"})
    assert response.status_code == 403
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]
    denied = insufficient_scope(response.status_code, response.headers.get_list("www-authenticate"))
    assert isinstance(denied, InsufficientScope) and denied.scope == {"project:write"}
    assert denied.resource_metadata == f"{demo.resource}/.well-known/oauth-protected-resource"


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_invalid_token_gets_one_fresh_token(demo: Demo, library: str) -> None:
    provider = Provider(demo, first="expired-or-revoked")
    url = f"{demo.resource}/orgs/acme/projects"
    if library == "httpx":
        status = httpx.get(url, auth=StepUpAuth(provider)).status_code
    else:
        status = requests.get(url, auth=RequestsStepUpAuth(provider), timeout=10).status_code
    assert status == 200
    assert provider.asked == [None, None]


def test_requests_does_not_retry_a_body_it_cannot_replay(demo: Demo) -> None:
    provider = Provider(demo)
    chunks = iter([b'{"name": ', b'"streamed"}'])
    response = requests.post(
        f"{demo.resource}/orgs/acme/projects",
        data=chunks,
        headers={"Content-Type": "application/json"},
        auth=RequestsStepUpAuth(provider, scopes={"project:read"}),
        timeout=10,
    )
    assert response.status_code == 403
    assert len(provider.asked) == 1


@pytest.mark.parametrize(
    "values",
    [
        ['Basic realm="x"', 'Bearer realm="api", error="insufficient_scope", scope="a:b c:d"'],
        ['DPoP algs="ES256", Bearer error="insufficient_scope", scope="a:b c:d"'],
        ['Bearer error="insufficient_scope", scope="a:b c:d", Basic realm="x, y"'],
    ],
)
def test_the_bearer_challenge_is_picked_among_others(values: list[str]) -> None:
    denied = insufficient_scope(403, values)
    assert denied is not None and denied.scope == {"a:b", "c:d"}


@pytest.mark.parametrize(
    ("status", "values"),
    [
        (403, []),
        (403, ['Bearer error="invalid_token"']),
        (403, ['Basic realm="x"']),
        (403, ['Bearer error="insufficient_scope", scope="bad\u00a0scope"']),
        (403, ['Bearer error="insufficient_scope", scope="unterminated']),
        (401, ['Bearer error="insufficient_scope", scope="a"']),
    ],
)
def test_no_usable_insufficient_scope(status: int, values: list[str]) -> None:
    denied = insufficient_scope(status, values)
    assert denied is None or not denied.scope
