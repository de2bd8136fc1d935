"""Plain Django: the decorator, the mixin and the middleware beyond the status table: first-party
sessions with Django's CSRF check (never weaker than DRF's), async views under Django's ASGI
handler with an ORM membership, the middleware's closed default, preflights, and routes that
cannot be checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from tests.django.conftest import PASSWORD
from tests.django.helpers import STYLES, assert_refused, bearer, token

SESSION_PATHS = [
    pytest.param("/plain/orgs/acme/projects", id="plain"),
    pytest.param("/async/orgs/acme/projects", id="async"),
    pytest.param("/cbv/orgs/acme/projects", id="mixin"),
]


def signed_in(username: str) -> tuple[Client, str]:
    """A client with a session of ``username`` (from the project's own login) and its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    answer = client.post("/login", {"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.content
    return client, answer.json()["csrf"]


@pytest.mark.parametrize("path", SESSION_PATHS)
def test_a_session_acts_with_its_role_and_unsafe_methods_need_csrf(path: str) -> None:
    client, csrf = signed_in("user-1")
    seen = client.get(path).json()
    assert (seen["subject"], seen["session"], seen["token"]) == ("user-1", True, None)
    assert seen["scopes"] == ["project:read", "project:write", "report:read", "team:write"]
    refused = client.post(path, "name=x", content_type="application/x-www-form-urlencoded")
    found = assert_refused(refused, 403, "forbidden", scheme=None)
    assert found["detail"].startswith("CSRF Failed")
    allowed = client.post(
        path, "name=x", content_type="application/x-www-form-urlencoded", HTTP_X_CSRFTOKEN=csrf
    )
    assert allowed.status_code == 200 and allowed.json()["session"] is True


@pytest.mark.parametrize("path", SESSION_PATHS)
def test_a_token_request_needs_no_csrf_token(path: str) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(path, "name=x", content_type="application/x-www-form-urlencoded", **bearer())
    assert response.status_code == 200 and response.json()["token"] == "user-1"


def test_a_members_session_is_held_to_its_role() -> None:
    client, csrf = signed_in("user-2")
    assert client.get("/plain/orgs/acme/projects").json()["scopes"] == ["project:read"]
    refused = client.post("/plain/orgs/acme/projects", {}, HTTP_X_CSRFTOKEN=csrf)
    assert_refused(refused, 403, "forbidden", scheme=None)
    assert_refused(client.get("/plain/orgs/globex/projects"), 403, "forbidden", scheme=None)


def test_sessions_can_be_refused_altogether() -> None:
    from tests.django.project import server

    client, _ = signed_in("user-1")
    with override_settings(RESOURCE_SERVER=lambda: server.build(session_subject=None)):
        assert_refused(client.get("/plain/orgs/acme/projects"), 401, "unauthorized")


# -- async views under Django's ASGI handler ---------------------------------------------------------


def run(call: Any) -> Any:
    return asyncio.run(call)


def test_async_views_run_the_orm_membership_off_the_loop() -> None:
    """membership and user_for query the ORM; Django refuses that on the event loop, so the
    adapter awaits them through sync_to_async (a SynchronousOnlyOperation would be a 500)."""
    client = AsyncClient()

    async def requests() -> list[Any]:
        return [
            await client.get("/async/orgs/acme/projects", headers={"Authorization": f"Bearer {token()}"}),
            await client.get("/acbv/orgs/acme/projects", headers={"Authorization": f"Bearer {token()}"}),
            await client.get(
                "/async/orgs/acme/projects", headers={"Authorization": f"Bearer {token(sub='user-3')}"}
            ),
            await client.get("/async/orgs/acme/projects"),
        ]

    granted, mixin, stranger, anonymous = run(requests())
    assert granted.status_code == 200 and granted.json()["user"] == "user-1"
    assert mixin.status_code == 200
    assert_refused(stranger, 403, "forbidden", scheme=None)
    assert_refused(anonymous, 401, "unauthorized")


def test_an_async_view_with_a_coroutine_membership() -> None:
    from tests.django.project import server

    async def membership(subject: str, org: str | None) -> str | None:
        from tests.django.project.models import Membership

        found = await Membership.objects.filter(subject=subject, org=org).afirst()
        return found.role if found is not None else None

    client = AsyncClient()
    with override_settings(RESOURCE_SERVER=lambda: server.build(membership=membership)):
        asynchronous = run(
            client.get("/async/orgs/acme/projects", headers={"Authorization": f"Bearer {token()}"})
        )
        synchronous = Client().get("/plain/orgs/acme/projects", **bearer(sub="user-2"))
    assert asynchronous.status_code == 200 and asynchronous.json()["scopes"][0] == "project:read"
    assert synchronous.status_code == 200 and synchronous.json()["scopes"] == ["project:read"]


def test_an_async_session_is_found_without_the_orm_on_the_loop() -> None:
    sync_client, _ = signed_in("user-2")
    client = AsyncClient()
    client.cookies = sync_client.cookies
    response = run(client.get("/async/orgs/acme/projects"))
    assert response.status_code == 200 and response.json()["session"] is True


# -- the middleware ---------------------------------------------------------------------------------


def test_the_middleware_is_closed_by_default() -> None:
    with override_settings(ROOT_URLCONF="tests.django.project.broken_urls"):
        found = assert_refused(Client().get("/open", **bearer()), 403, "forbidden", scheme=None)
        assert found["detail"] == "no access policy covers this path"
        assert Client().get("/health").status_code == 200  # RESOURCE_SERVER_PUBLIC
    assert Client().get("/login").status_code == 401  # @public: the view's own answer


def test_public_entries_may_name_a_namespace() -> None:
    with override_settings(
        ROOT_URLCONF="tests.django.project.broken_urls", RESOURCE_SERVER_PUBLIC=["health", "open"]
    ):
        assert Client().get("/open").status_code == 200


def test_the_middleware_adds_no_check_a_view_does_not_ask_for() -> None:
    """A view protecting itself passes the middleware untouched (checked once, by the view)."""
    response = Client().get("/plain/orgs/acme/projects", **bearer())
    assert response.status_code == 200


def test_a_route_without_its_org_kwarg_refuses_everything() -> None:
    """Fail closed: never the token's own org for a route that declared one."""
    with override_settings(ROOT_URLCONF="tests.django.project.broken_urls"):
        found = assert_refused(Client().get("/tenants/acme/audit", **bearer()), 403, "forbidden", scheme=None)
    assert found["detail"] == "this route is misconfigured"


def test_a_drf_view_without_a_scope_map_refuses_everything() -> None:
    with override_settings(ROOT_URLCONF="tests.django.project.broken_urls"):
        found = assert_refused(Client().get("/orgs/acme/mapless", **bearer()), 403, "forbidden", scheme=None)
    assert found["detail"] == "this route is misconfigured"


# -- preflights -------------------------------------------------------------------------------------


PREFLIGHT = {"HTTP_ORIGIN": "https://app.test", "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET"}
CLASS_BASED = ("drf", "drf-viewset", "mixin", "async-mixin")


@pytest.mark.parametrize(("style", "path"), [(style, path) for style, (path, _) in STYLES.items()])
def test_options_is_checked_and_only_a_class_based_view_answers_a_preflight(style: str, path: str) -> None:
    """A class-based view's options() runs no handler; a function view (and the middleware,
    whose views are any) would run the view itself for an OPTIONS: it is checked, always."""
    client = Client()
    assert_refused(client.options(path), 401, "unauthorized")
    assert_refused(client.options(path, **bearer()), 403, "forbidden", scheme=None)
    preflight = client.options(path, **PREFLIGHT)
    if style in CLASS_BASED:
        assert preflight.status_code == 200 and "WWW-Authenticate" not in preflight.headers
    else:
        assert_refused(preflight, 401, "unauthorized")


def test_a_preflight_gets_no_access() -> None:
    """What a preflight reaches holds no access: request.access is never set for it."""
    response = Client().options(
        "/cbv/orgs/acme/projects", HTTP_ORIGIN="https://app.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert response.status_code == 200 and response.headers["Allow"]
    assert json.loads(response.content or b"null") is None
