"""The pytest plugin's fixtures, used the way an application's test suite would use them."""

from __future__ import annotations

import pytest
from flask import Flask

from policy import Roles
from resource_server.flask import ResourceServer
from resource_server.testing import TestTokenIssuer


@pytest.fixture
def client(token_issuer: TestTokenIssuer):
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=token_issuer.verifier(),
        roles=Roles({"admin": ["project:read", "project:write"]}),
        membership=lambda subject, org: "admin",
    )
    app.add_url_rule(
        "/orgs/<org>/projects",
        "p",
        rs.require({"GET": "project:read", "POST": "project:write"})(lambda org: "ok"),
        methods=["GET", "POST"],
    )
    return app.test_client()


def test_make_token_and_assert_insufficient_scope(client, make_token, assert_insufficient_scope) -> None:
    token = make_token(subject="user-1", org="acme", scopes={"project:read"})
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    assert_insufficient_scope(client.post("/orgs/acme/projects", headers=headers), {"project:write"})
    assert client.get("/orgs/globex/projects", headers=headers).status_code == 401  # org-bound


def test_assert_insufficient_scope_fails_loudly(client, make_token, assert_insufficient_scope) -> None:
    headers = {"Authorization": f"Bearer {make_token(scopes='project:read')}"}
    response = client.post("/orgs/acme/projects", headers=headers)
    with pytest.raises(AssertionError, match="advertises"):
        assert_insufficient_scope(response, {"project:admin"})
    with pytest.raises(AssertionError, match="expected 403"):
        assert_insufficient_scope(client.get("/orgs/acme/projects", headers=headers), {"project:read"})


def test_the_plugin_is_registered_by_the_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("resource_server")
