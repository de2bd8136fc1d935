"""The agent endpoints as DRF views, with the ORM grants store: an agent mints a de-escalated
capability token, is refused a write with a challenge, its person approves the write in a
first-party session (CSRF checked), and the next capability carries it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient, APIRequestFactory

from resource_server.django.agents import AgentApprovalView, AgentTokenView
from tests.django.conftest import PASSWORD
from tests.django.helpers import assert_refused, bearer

_sessions = itertools.count()


def session_id() -> str:
    """A fresh agent session per test: the grants table outlives each test."""
    return f"agent-session-{next(_sessions)}"


def mint(client: APIClient, body: Any, *, org: str = "acme", prefix: str = "", **headers: Any) -> Any:
    return client.post(f"{prefix}/orgs/{org}/agent-token", body, format="json", **headers)


def signed_in(username: str) -> tuple[APIClient, str]:
    client = APIClient(enforce_csrf_checks=True)
    csrf = client.post("/login", {"username": username, "password": PASSWORD}).json()["csrf"]
    return client, csrf


def test_the_agent_loop() -> None:
    agent, sid = APIClient(), session_id()
    capability = mint(agent, {"sessionId": sid}, **bearer()).json()
    assert capability["scopes"] == ["project:read"] and capability["token"].startswith("cap_")
    cap = {"HTTP_AUTHORIZATION": f"Bearer {capability['token']}"}
    assert agent.get("/orgs/acme/projects", **cap).status_code == 200
    refused = agent.post("/orgs/acme/projects", {}, format="json", **cap)
    assert_refused(refused, 403, "insufficient_scope", scope="project:write")

    person, csrf = signed_in("user-1")
    approved = person.post(
        "/orgs/acme/agent-approvals",
        {"sessionId": sid, "scopes": ["project:write"]},
        format="json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert approved.status_code == 201, approved.content
    assert approved.json()["scopes"] == ["project:write"] and isinstance(approved.json()["expires_at"], int)

    again = mint(agent, {"sessionId": sid}, **bearer()).json()
    assert again["scopes"] == ["project:read", "project:write"]
    written = agent.post(
        "/orgs/acme/projects", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {again['token']}"
    )
    assert written.status_code == 201 and written.json()["subject"] == "user-1"


def test_requested_scopes_only_narrow() -> None:
    answer = mint(
        APIClient(),
        {"sessionId": session_id(), "requestedScopes": ["project:read", "team:write"]},
        **bearer(),
    )
    assert answer.json()["scopes"] == ["project:read"]


def test_a_token_cannot_approve_and_a_session_needs_its_csrf_token() -> None:
    body = {"sessionId": session_id(), "scopes": ["project:write"]}
    by_token = APIClient().post("/orgs/acme/agent-approvals", body, format="json", **bearer())
    assert by_token.status_code == 403 and by_token.json()["error"] == "forbidden"
    assert by_token.json()["detail"] == by_token.json()["error_description"]
    person, _ = signed_in("user-1")
    without_csrf = person.post("/orgs/acme/agent-approvals", body, format="json")
    assert without_csrf.status_code == 403 and "CSRF" in without_csrf.json()["detail"]


def test_approval_is_capped_at_the_approvers_own_scopes() -> None:
    person, csrf = signed_in("user-2")  # a member: project:read only
    body = {"sessionId": session_id(), "scopes": ["project:write"]}
    refused = person.post("/orgs/acme/agent-approvals", body, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert refused.status_code == 403 and "yours to approve" in refused.json()["detail"]


def test_a_capability_cannot_mint_capabilities() -> None:
    capability = mint(APIClient(), {"sessionId": session_id()}, **bearer()).json()["token"]
    again = mint(APIClient(), {"sessionId": session_id()}, HTTP_AUTHORIZATION=f"Bearer {capability}")
    assert again.status_code == 403 and again.json()["error"] == "forbidden"


def test_an_anonymous_caller_gets_the_challenge_before_any_body_check() -> None:
    response = APIClient().post("/orgs/acme/agent-token", "not json", content_type="text/plain")
    assert_refused(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        ("sessionId=x", "application/x-www-form-urlencoded", 415, "invalid_request"),
        ('{"sessionId": 1}', "application/json", 400, "invalid_request"),
        ('{"sessionId": "a\\u0000b"}', "application/json", 400, "invalid_request"),
        ('{"sessionId": "x", "sessionId": "y"}', "application/json", 400, "invalid_request"),
        ('{"sessionId": "x", "requestedScopes": {"a": 1}}', "application/json", 400, "invalid_request"),
        ("[1]", "application/json", 400, "invalid_request"),
    ],
)
def test_mint_bodies(body: str, content_type: str, status: int, error: str) -> None:
    response = APIClient().post("/orgs/acme/agent-token", body, content_type=content_type, **bearer())
    assert response.status_code == status, response.content
    found = response.json()
    assert found["error"] == error and found["detail"] == found["error_description"]


def test_minting_needs_a_member_of_the_urls_org() -> None:
    assert_refused(
        mint(APIClient(), {"sessionId": "s"}, **bearer(sub="user-3")), 403, "forbidden", scheme=None
    )
    assert_refused(mint(APIClient(), {"sessionId": "s"}, org="globex", **bearer()), 401, "invalid_token")


def test_a_grants_database_that_cannot_answer_is_503() -> None:
    minted = mint(APIClient(), {"sessionId": session_id()}, prefix="/unreachable", **bearer())
    assert_refused(minted, 503, "temporarily_unavailable", scheme=None)
    assert minted.headers["Retry-After"]
    person, csrf = signed_in("user-1")
    body = {"sessionId": session_id(), "scopes": ["project:write"]}
    approved = person.post(
        "/unreachable/orgs/acme/agent-approvals", body, format="json", HTTP_X_CSRFTOKEN=csrf
    )
    assert_refused(approved, 503, "temporarily_unavailable", scheme=None)


@pytest.mark.parametrize(
    ("view", "needs"), [(AgentTokenView, "issuer="), (AgentApprovalView, "grants=")], ids=["mint", "approve"]
)
def test_a_view_mounted_without_its_store_is_a_misconfigured_route(
    view: Any, needs: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``agent_urls`` always gives the views what they need; one mounted by hand without it
    refuses every request as a misconfigured route (403, logged), never a 500."""
    body = {"sessionId": session_id(), "scopes": ["project:write"]}
    if view is AgentTokenView:
        request = APIRequestFactory().post("/orgs/acme/agent-token", body, format="json", **bearer())
    else:  # only a first-party session gets as far as the store
        request = APIRequestFactory().post("/orgs/acme/agent-approvals", body, format="json")
        request.user = get_user_model().objects.get(username="user-1")  # as a signed-in session
    response = view.as_view()(request, org="acme").render()
    found = assert_refused(response, 403, "forbidden", scheme=None)
    assert found["error_description"] == "this route is misconfigured"
    assert f"{view.__name__}.as_view() needs {needs}" in caplog.text
