"""The DRF classes through DRF's APIClient: scope-map alternatives, the org kwarg, sessions with
DRF's own CSRF check, ``user_for``, DRF's body parsing after the form check, a project exception
handler, and the headers DRF #8263 would lose."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import exception_handler

from tests.django.conftest import PASSWORD
from tests.django.helpers import RESOURCE_METADATA, assert_refused, bearer, body, token


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def test_request_auth_is_the_token_and_request_user_the_users_user(api: APIClient) -> None:
    api.credentials(**bearer(scope="project:read"))
    seen = api.get("/orgs/acme/projects").json()
    assert (seen["auth"], seen["user"], seen["session"]) == ("user-1", "user-1", False)


def test_a_subject_with_no_account_is_401(api: APIClient) -> None:
    """user_for maps the subject to no user: the token is refused, nobody is created."""
    api.credentials(**bearer(sub="ghost"))
    assert_refused(api.get("/orgs/acme/projects"), 401, "invalid_token", error="invalid_token")
    assert not get_user_model().objects.filter(username="ghost").exists()


def test_without_user_for_the_user_is_a_token_principal(api: APIClient) -> None:
    from tests.django.project import server

    with override_settings(RESOURCE_SERVER=lambda: server.build(user_for=None)):
        api.credentials(**bearer(sub="user-2"))
        seen = api.get("/orgs/acme/projects").json()
    assert seen["user"] == "user-2" and seen["auth"] == "user-2"


@pytest.mark.parametrize(
    ("method", "scope", "status", "step_up"),
    [
        ("get", "project:read", 200, None),
        ("get", "team:write", 200, None),  # either alternative
        ("get", "report:read", 403, "project:read"),  # the first alternative the role holds
        ("put", "project:write team:write", 200, None),
        ("put", "project:write", 403, "project:write team:write"),  # all of one alternative
    ],
)
def test_alternatives_and_the_org_url_kwarg(
    api: APIClient, method: str, scope: str, status: int, step_up: str | None
) -> None:
    """Teams reads its org from the ``tenant`` kwarg (org_url_kwarg)."""
    api.credentials(**bearer(scope=scope))
    response = getattr(api, method)("/tenants/acme/teams")
    if step_up is None:
        assert response.status_code == status and response.json()["org"] == "acme"
    else:
        assert_refused(response, 403, "insufficient_scope", scope=step_up)


def test_another_orgs_token_is_401_on_the_org_kwarg_it_names(api: APIClient) -> None:
    api.credentials(**bearer(org_id="globex"))
    assert_refused(api.get("/tenants/acme/teams"), 401, "invalid_token", error="invalid_token")


def test_a_route_naming_no_org_asks_about_the_tokens_own(api: APIClient) -> None:
    api.credentials(**bearer(org_id="globex", scope="project:read"))
    seen = api.get("/me").json()
    assert seen["org"] == "globex"  # user-1 is a member there: the member role's project:read


def test_drf_parses_the_body_after_the_form_check(api: APIClient) -> None:
    api.credentials(**bearer())
    form = api.post("/orgs/acme/projects", "a=1&b=two", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 201 and form.json()["data"] == {"a": "1", "b": "two"}
    json_body = api.post("/orgs/acme/projects", {"a": [1, 2]}, format="json")
    assert json_body.status_code == 201 and json_body.json()["data"] == {"a": [1, 2]}


def test_a_viewset_maps_each_method(api: APIClient) -> None:
    api.credentials(**bearer(scope="project:read"))
    assert api.get("/orgs/acme/vs/projects/").status_code == 200
    assert_refused(api.post("/orgs/acme/vs/projects/", {}), 403, "insufficient_scope", scope="project:write")


# -- first-party sessions, CSRF exactly as DRF checks it ---------------------------------------------


@pytest.fixture
def signed_in() -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="user-2", password=PASSWORD)
    return client


def test_a_session_acts_with_the_member_roles_scopes(signed_in: APIClient) -> None:
    seen = signed_in.get("/orgs/acme/projects").json()
    assert (seen["subject"], seen["session"], seen["scopes"], seen["auth"]) == (
        "user-2",
        True,
        ["project:read"],
        None,
    )


def test_a_session_outside_its_org_and_beyond_its_role_is_403_without_a_challenge(
    signed_in: APIClient,
) -> None:
    assert_refused(signed_in.get("/orgs/globex/projects"), 403, "forbidden", scheme=None)
    member = APIClient(enforce_csrf_checks=True)
    csrf = member.post("/login", {"username": "user-2", "password": PASSWORD}).json()["csrf"]
    refused = member.post("/orgs/acme/projects", {"a": 1}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert_refused(refused, 403, "forbidden", scheme=None)


def test_an_unsafe_session_request_needs_the_csrf_token(signed_in: APIClient) -> None:
    refused = signed_in.post("/orgs/acme/projects", {"a": 1}, format="json")
    assert refused.status_code == 403 and "CSRF Failed" in refused.json()["detail"]
    admin = APIClient(enforce_csrf_checks=True)
    signed = admin.post("/login", {"username": "user-1", "password": PASSWORD})
    csrf = signed.json()["csrf"]
    allowed = admin.post("/orgs/acme/projects", {"a": 1}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert allowed.status_code == 201 and allowed.json()["session"] is True
    assert admin.post("/orgs/acme/projects", {"a": 1}, format="json").status_code == 403


def test_a_token_wins_over_a_session(signed_in: APIClient) -> None:
    """No CSRF check for a token request (it carries no cookie authority), and the token's
    subject and scopes, not the session's."""
    seen = signed_in.post("/orgs/acme/projects", {"a": 1}, format="json", **bearer(scope="project:write"))
    assert seen.status_code == 201 and (seen.json()["subject"], seen.json()["session"]) == ("user-1", False)


def test_basic_authentication_counts_as_no_credentials(api: APIClient) -> None:
    """Another authentication class's user is not a session of this site's: the request carries
    no credentials this server takes (the status table's "another scheme")."""
    api.credentials(HTTP_AUTHORIZATION="Basic " + b64encode(f"user-1:{PASSWORD}".encode()).decode())
    assert_refused(
        api.get("/basic/orgs/acme/projects"), 401, "unauthorized", resource_metadata=RESOURCE_METADATA
    )
    api.credentials(**bearer())
    assert api.get("/basic/orgs/acme/projects").status_code == 200


# -- DRF #8263 and the project's exception handler ------------------------------------------------


def reshaping_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """A typical project handler: DRF's response, its data wrapped."""
    response = exception_handler(exc, context)
    if response is not None:
        response.data = {"errors": [response.data]}
    return response


def test_refusals_keep_their_headers_through_a_project_exception_handler(api: APIClient) -> None:
    with override_settings(REST_FRAMEWORK={"EXCEPTION_HANDLER": "tests.django.test_drf.reshaping_handler"}):
        api.credentials(**bearer(scope="team:write"))
        response = api.get("/orgs/acme/projects")
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api", error="insufficient_scope"')
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["errors"][0]["error"] == "insufficient_scope"


def test_drfs_own_401s_carry_the_challenge(api: APIClient) -> None:
    """A 401 DRF raises itself (NotAuthenticated, from IsAuthenticated) uses the first
    authentication class's header: BearerTokenAuthentication's is the status table's."""
    response = api.get("/whoami")
    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"] == f'Bearer realm="api", resource_metadata="{RESOURCE_METADATA}"'
    )
    api.credentials(**bearer())
    assert api.get("/whoami").json() == {"user": "user-1"}


def test_an_invalid_token_is_refused_before_drf_runs_the_view(api: APIClient) -> None:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token(exp=1)}")
    found = body(api.post("/orgs/acme/projects", {"a": 1}, format="json"))
    assert found["error"] == "invalid_token"
