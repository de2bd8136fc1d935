"""Resource-scoped read tokens: minted only for readers, bound to one prefix and to GET/HEAD."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from policy import assemble_access
from resource_server import InvalidToken
from resource_server.flask import current_resource_token, resource_token_required
from resource_server.resource_tokens import ResourceTokenIssuer, ResourceTokenVerifier
from resource_server.tokens.jws import hs256_sign
from tests.support import FakeClock

KEY, OLD = "r" * 32, "o" * 32
NOW = 1_900_000_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def issuer(clock: FakeClock) -> ResourceTokenIssuer:
    return ResourceTokenIssuer(keys={"r1": KEY}, audience="files", clock=clock)


@pytest.fixture
def verifier(clock: FakeClock) -> ResourceTokenVerifier:
    return ResourceTokenVerifier(keys={"r1": KEY, "r0": OLD}, audience="files", clock=clock)


def reader(org: str = "acme", scopes: frozenset[str] = frozenset({"project:read"})):
    return assemble_access(subject="user-1", role_scopes=scopes, token_scopes=None, request_org=org)


def test_round_trip_and_prefix_rules(issuer: ResourceTokenIssuer, verifier: ResourceTokenVerifier) -> None:
    token = issuer.mint(org="acme", project="site", usecase="attachments", access=reader())
    grant = verifier.verify(token, method="GET", usecase="attachments", org="acme", project="site")
    assert (grant.subject, grant.org, grant.project, grant.expires_at) == (
        "user-1",
        "acme",
        "site",
        NOW + 300,
    )
    assert verifier.verify(token, method="head", usecase="attachments", org="acme", project="site")
    whole_org = issuer.mint(org="acme", usecase="attachments", access=reader())
    assert verifier.verify(whole_org, method="GET", usecase="attachments", org="acme", project="any")


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"method": "POST"},
        {"method": "DELETE"},
        {"method": "PUT"},
        {"usecase": "avatars"},
        {"org": "globex"},
        {"project": "other"},
        {"project": None},  # a project token does not cover the whole org
    ],
    ids=repr,
)
def test_mismatches_are_invalid(
    issuer: ResourceTokenIssuer, verifier: ResourceTokenVerifier, request_kwargs: dict[str, Any]
) -> None:
    token = issuer.mint(org="acme", project="site", usecase="attachments", access=reader())
    kwargs = {"method": "GET", "usecase": "attachments", "org": "acme", "project": "site", **request_kwargs}
    with pytest.raises(InvalidToken):
        verifier.verify(token, **kwargs)


def test_expiry_and_rotation(
    issuer: ResourceTokenIssuer, verifier: ResourceTokenVerifier, clock: FakeClock
) -> None:
    old = ResourceTokenIssuer(keys={"r0": OLD}, audience="files", clock=clock)
    token = old.mint(org="acme", usecase="u", access=reader())
    assert verifier.verify(token, method="GET", usecase="u", org="acme")  # the old key verifies until removed
    retired = ResourceTokenVerifier(keys={"r1": KEY}, audience="files", clock=clock)
    with pytest.raises(InvalidToken):
        retired.verify(token, method="GET", usecase="u", org="acme")
    clock.advance(305)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token, method="GET", usecase="u", org="acme")


def test_minting_needs_the_read_scope_in_that_org(issuer: ResourceTokenIssuer) -> None:
    with pytest.raises(PermissionError):
        issuer.mint(org="acme", usecase="u", access=reader(scopes=frozenset({"team:read"})))
    with pytest.raises(PermissionError):
        issuer.mint(org="globex", usecase="u", access=reader("acme"))
    for bad in ({"org": "a/b"}, {"usecase": ""}, {"project": "x/../y"}, {"org": 5}):
        with pytest.raises(ValueError):
            issuer.mint(**{"org": "acme", "usecase": "u", "access": reader(), **bad})


def forged(claims: dict[str, Any], *, typ: str = "res+jwt", key: str = KEY) -> str:
    return hs256_sign({"alg": "HS256", "typ": typ, "kid": "r1"}, claims, key.encode())


def good(**overrides: Any) -> dict[str, Any]:
    claims = {
        "aud": "files",
        "sub": "user-1",
        "org_id": "acme",
        "usecase": "u",
        "project": None,
        "htm": ["GET", "HEAD"],
        "jti": "j",
        "iat": NOW,
        "exp": NOW + 300,
        **overrides,
    }
    return claims


@pytest.mark.parametrize(
    "token",
    [
        forged(good(htm=["GET", "HEAD", "POST"])),
        forged(good(aud="agent-api")),
        forged(good(exp=NOW + 3000)),
        forged(good(sub=5)),
        forged(good(project=7)),
        forged(good(exp="soon")),
        forged(good(), typ="cap+jwt"),  # a capability is not a resource token
        forged(good(), key="w" * 32),
        "not-a-token",
        "a" * 5000,
    ],
)
def test_hostile_tokens(verifier: ResourceTokenVerifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(token, method="GET", usecase="u", org="acme")


def test_the_forging_helper_makes_valid_tokens(verifier: ResourceTokenVerifier) -> None:
    """The control for the hostile cases: unaltered, a forged token verifies."""
    assert verifier.verify(forged(good()), method="GET", usecase="u", org="acme").subject == "user-1"


def make_app(verifier: ResourceTokenVerifier) -> Flask:
    app = Flask(__name__)

    @app.route("/files/<org>/<project>/<name>", methods=["GET", "POST"])
    @resource_token_required(verifier, usecase="attachments", project="project")
    def read_file(org: str, project: str, name: str) -> dict[str, str]:
        return {"name": name, "reader": current_resource_token.subject}

    return app


def test_flask_helper_reads_the_query_parameter_only(
    issuer: ResourceTokenIssuer, verifier: ResourceTokenVerifier
) -> None:
    client = make_app(verifier).test_client()
    token = issuer.mint(org="acme", project="site", usecase="attachments", access=reader())
    ok = client.get(f"/files/acme/site/logo.png?X-Os-Auth={token}")
    assert ok.status_code == 200 and ok.json == {"name": "logo.png", "reader": "user-1"}
    assert ok.headers["Referrer-Policy"] == "no-referrer"
    assert client.get(f"/files/acme/other/logo.png?X-Os-Auth={token}").status_code == 403
    assert client.post(f"/files/acme/site/logo.png?X-Os-Auth={token}").status_code == 403
    assert (
        client.get("/files/acme/site/logo.png", headers={"Authorization": f"Bearer {token}"}).status_code
        == 403
    )
    assert client.get(f"/files/acme/site/logo.png?X-Os-Auth={token}&X-Os-Auth={token}").status_code == 403
    refused = client.get("/files/acme/site/logo.png?X-Os-Auth=garbage")
    assert refused.status_code == 403 and set(refused.json) == {"error", "error_description"}


def test_a_route_without_the_declared_variables_fails_closed(
    issuer: ResourceTokenIssuer, verifier: ResourceTokenVerifier
) -> None:
    """The org (or project) variable the helper reads must exist on the route. A missing one used
    to compare as the string "None", so a token minted for an org named "None" opened the route."""
    app = Flask(__name__)

    @app.route("/files/<tenant>/<name>")
    @resource_token_required(verifier, usecase="attachments")  # reads "org", which the rule lacks
    def read_file(tenant: str, name: str) -> str:
        return "the file"

    token = issuer.mint(org="None", usecase="attachments", access=reader(org="None"))
    refused = app.test_client().get(f"/files/x/logo.png?X-Os-Auth={token}")
    assert refused.status_code == 403
    assert refused.json == {"error": "forbidden", "error_description": "this route is misconfigured"}
