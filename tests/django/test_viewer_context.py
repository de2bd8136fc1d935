"""ViewerContextMiddleware: signed service-to-service viewer contexts, verified before normal
authentication as the source system's middleware does, with the shared core's verifier: issuer
→ secret with rotation, bound to the request, used once; unknown issuers and bad signatures fall
through to normal authentication (logged, never an error)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from resource_server.viewer_context import ViewerContextSigner, ViewerContextVerifier
from tests.django.helpers import assert_refused, bearer
from tests.django.project import server
from tests.django.project.keys import VIEWER_KEYS


def signer(kid: str = "new", issuer: str = "gateway", key: str | None = None) -> ViewerContextSigner:
    keys = {kid: key or VIEWER_KEYS.get(kid, "x" * 32)}
    return ViewerContextSigner(
        keys=keys, signing_kid=kid, issuer=issuer, audience=server.RESOURCE, clock=server.CLOCK
    )


def context(
    method: str, path: str, body: bytes = b"", *, user: str = "user-1", **options: Any
) -> dict[str, str]:
    """Test-client keyword arguments carrying a viewer context for this very request."""
    minted = signer(**options).headers(
        user_id=user, org_id=options.pop("org", None), method=method, path=path, body=body
    )
    return {"HTTP_X_VIEWER_CONTEXT": minted["X-Viewer-Context"]}


PATHS = ["/plain/orgs/acme/projects", "/orgs/acme/projects", "/cbv/orgs/acme/projects", "/orgs/acme/reports"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kid", ["old", "new"])
def test_a_verified_context_is_the_caller_with_its_members_role(path: str, kid: str) -> None:
    response = Client().get(path, **context("GET", path, kid=kid))
    assert response.status_code == 200, response.content
    seen = response.json()
    assert (seen["subject"], seen["token"]) == ("user-1", None)


def test_the_context_scope_narrows_the_role_and_org_binding_applies() -> None:
    path = "/plain/orgs/acme/projects"
    minted = signer().headers(
        user_id="user-1", org_id="acme", scopes=["project:read"], method="POST", path=path
    )
    refused = Client().post(
        path, b"", content_type="text/plain", HTTP_X_VIEWER_CONTEXT=minted["X-Viewer-Context"]
    )
    assert_refused(refused, 403, "insufficient_scope", scope="project:write")
    other = signer().headers(user_id="user-1", org_id="globex", method="GET", path=path)
    assert_refused(Client().get(path, HTTP_X_VIEWER_CONTEXT=other["X-Viewer-Context"]), 401, "invalid_token")


@pytest.mark.parametrize(
    "forged",
    [
        {"issuer": "stranger"},  # an issuer nobody configured
        {"kid": "new", "key": "f" * 32},  # a signature by another secret
        {"kid": "gone", "key": "g" * 32},  # a kid no longer in the rotation
    ],
    ids=["unknown issuer", "bad signature", "retired key"],
)
def test_a_bad_context_falls_through_to_normal_authentication(
    forged: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    path = "/plain/orgs/acme/projects"
    header = signer(**forged).headers(user_id="user-1", method="GET", path=path)["X-Viewer-Context"]
    with caplog.at_level(logging.INFO, logger="resource_server"):
        assert_refused(Client().get(path, HTTP_X_VIEWER_CONTEXT=header), 401, "unauthorized")
        assert Client().get(path, HTTP_X_VIEWER_CONTEXT=header, **bearer()).json()["token"] == "user-1"
        assert Client().get("/viewer", HTTP_X_VIEWER_CONTEXT=header).json() is None
    assert any("viewer context refused" in record.getMessage() for record in caplog.records)


def test_a_context_is_bound_to_its_request_and_used_once() -> None:
    path = "/plain/orgs/acme/projects"
    header = context("GET", path)
    assert Client().get(path, **header).status_code == 200
    assert_refused(Client().get(path, **header), 401, "unauthorized")  # replayed
    assert_refused(Client().get("/plain/orgs/globex/projects", **context("GET", path)), 401, "unauthorized")
    body = b"name=x"
    bound = context("POST", path, body)
    tampered = Client().post(path, b"name=y", content_type="application/x-www-form-urlencoded", **bound)
    assert_refused(tampered, 401, "unauthorized")
    sent = Client().post(
        path, body, content_type="application/x-www-form-urlencoded", **context("POST", path, body)
    )
    assert sent.status_code == 200 and sent.json()["posted"] == {"name": "x"}  # the body, still readable


def test_a_token_wins_and_the_view_never_sees_the_context_beside_it() -> None:
    path = "/plain/orgs/acme/projects"
    response = Client().get(path, **bearer(sub="user-2"), **context("GET", path))
    assert response.json()["subject"] == "user-2"
    assert Client().get("/viewer", **context("GET", "/viewer")).json() == {
        "user_id": "user-1",
        "issuer": "gateway",
    }


def test_an_async_view_takes_a_context() -> None:
    path = "/async/orgs/acme/projects"
    minted = signer().headers(user_id="user-1", method="GET", path=path)
    response = asyncio.run(AsyncClient().get(path, headers=minted))
    assert response.status_code == 200 and response.json()["subject"] == "user-1"


def test_a_replay_cache_that_cannot_answer_is_503() -> None:
    from resource_server.state import RedisReplayCache

    unreachable = ViewerContextVerifier(
        keys=VIEWER_KEYS,
        audience=server.RESOURCE,
        issuers=["gateway"],
        clock=server.CLOCK,
        replay_cache=RedisReplayCache("unix:///nonexistent/redis.sock", clock=server.CLOCK),
    )
    path = "/plain/orgs/acme/projects"
    with override_settings(RESOURCE_SERVER=lambda: server.build(viewer_context=unreachable)):
        response = Client().get(path, **context("GET", path))
    assert_refused(response, 503, "temporarily_unavailable", scheme=None)
    assert response.headers["Retry-After"]


def test_a_body_that_cannot_be_read_for_the_binding_is_400() -> None:
    path = "/plain/orgs/acme/projects"
    response = Client().generic(
        "POST",
        path,
        b"name=x",
        content_type="text/plain",
        CONTENT_LENGTH="80",
        **context("POST", path, b"name=x"),
    )
    assert_refused(response, 400, "invalid_request", scheme=None)
