"""Every row of the status table (README "Status and header contract"), through every way the
Django adapter protects a view: DRF's classes (APIView and ViewSet), the decorator on sync and
async function views, the class-based mixin (sync and async), ``method_decorator`` and the
middleware. Each challenge is parsed back with ``policy.parse_challenges``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings

from tests.django.helpers import RESOURCE_METADATA, STYLES, assert_refused, bearer, body, token
from tests.django.project.keys import SIGNER
from tests.support import AUDIENCE, NOW, JWKSServer, jwks

PATHS = [pytest.param(path, id=style) for style, (path, _) in STYLES.items()]
WRITABLE = [pytest.param(path, id=style) for style, (path, writes) in STYLES.items() if writes]


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.parametrize("path", PATHS)
def test_a_granted_request_reaches_the_view_with_its_access(client: Client, path: str) -> None:
    response = client.get(path, **bearer(scope="project:read report:read"))
    assert response.status_code == 200, response.content
    seen = response.json()
    assert (seen["subject"], seen["org"], seen["token"], seen["user"]) == (
        "user-1",
        "acme",
        "user-1",
        "user-1",
    )
    assert seen["scopes"] == ["project:read", "report:read"]  # the token's, within the admin role


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Negotiate abc"])
def test_no_credentials_or_another_scheme_is_401_with_the_plain_challenge(
    client: Client, path: str, authorization: str | None
) -> None:
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    found = assert_refused(
        client.get(path, **extra), 401, "unauthorized", resource_metadata=RESOURCE_METADATA
    )
    assert found["detail"] == "bearer credentials are required"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer a b", "Bearer ä", "Bearer x, Bearer y", "DPoP"], ids=repr
)
def test_malformed_bearer_credentials_are_400_invalid_request(
    client: Client, path: str, authorization: str
) -> None:
    response = client.get(path, HTTP_AUTHORIZATION=authorization)
    assert_refused(response, 400, "invalid_request", error="invalid_request")


@pytest.mark.parametrize("path", PATHS)
def test_a_token_sent_two_ways_is_400(client: Client, path: str) -> None:
    query = urlencode({"access_token": token()})
    assert_refused(client.get(f"{path}?{query}", **bearer()), 400, "invalid_request", error="invalid_request")
    assert_refused(client.get(f"{path}?{query}"), 400, "invalid_request", error="invalid_request")


@pytest.mark.parametrize("path", PATHS)
def test_a_token_in_a_form_body_is_400_and_the_body_stays_readable(client: Client, path: str) -> None:
    form = urlencode({"access_token": token(), "name": "x"})
    response = client.post(path, form, content_type="application/x-www-form-urlencoded")
    assert_refused(response, 400, "invalid_request", error="invalid_request")
    assert (
        "more than one way"
        in body(client.post(path, form, content_type="application/x-www-form-urlencoded", **bearer()))[
            "detail"
        ]
    )


@pytest.mark.parametrize("path", WRITABLE)
def test_a_form_without_a_token_reaches_the_view_whole(client: Client, path: str) -> None:
    """The body read to look for a token is put back: Django's forms and DRF's parsers read it."""
    form = urlencode({"name": "x" * 100, "access": "token"})
    response = client.post(path, form, content_type="application/x-www-form-urlencoded", **bearer())
    assert response.status_code in (200, 201), response.content
    seen = response.json()
    assert seen.get("data", seen.get("posted", {"name": "x" * 100})) in (
        {"name": "x" * 100, "access": "token"},
        {"name": ["x" * 100], "access": ["token"]},
        {"name": "x" * 100},  # the views that do not echo their body
    )


BAD_TOKENS = {
    "expired": {"exp": NOW - 60},
    "wrong audience": {"aud": "https://elsewhere.test"},
    "wrong issuer": {"iss": "https://evil.test"},
    "another org": {"org_id": "globex"},
    "bound to what cannot be checked": {"cnf": {"x5t#S256": "a" * 43}},
    "no subject": {"sub": 42},
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("claims", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_a_bad_token_is_401_invalid_token_with_a_description(client: Client, path: str, claims: dict) -> None:
    found = assert_refused(client.get(path, **bearer(**claims)), 401, "invalid_token", error="invalid_token")
    assert found["error_description"]


@pytest.mark.parametrize("path", PATHS)
def test_a_token_signed_by_another_key_or_with_a_wrong_type_is_401(client: Client, path: str) -> None:
    forged = SIGNER.token(now=NOW, headers={"typ": "JWT"})
    assert_refused(client.get(path, HTTP_AUTHORIZATION=f"Bearer {forged}"), 401, "invalid_token")
    assert_refused(client.get(path, HTTP_AUTHORIZATION="Bearer not.a.jwt"), 401, "invalid_token")


@pytest.mark.parametrize("path", PATHS)
def test_a_token_lacking_a_scope_the_role_holds_is_403_naming_it(client: Client, path: str) -> None:
    """user-1 is an admin of acme: a token with only team:write can step up to the route's scope."""
    wanted = "report:read" if "reports" in path else "project:read"
    response = client.get(path, **bearer(scope="team:write"))
    assert_refused(
        response,
        403,
        "insufficient_scope",
        error="insufficient_scope",
        scope=wanted,
        resource_metadata=RESOURCE_METADATA,
    )


@pytest.mark.parametrize("path", PATHS)
def test_no_token_could_help_a_non_member_403_without_a_challenge(client: Client, path: str) -> None:
    found = assert_refused(client.get(path, **bearer(sub="user-3")), 403, "forbidden", scheme=None)
    assert found["detail"] == "not a member of this organization"


@pytest.mark.parametrize("path", WRITABLE)
def test_a_role_lacking_the_scope_is_403_without_a_challenge(client: Client, path: str) -> None:
    """user-2 is a member of acme: no token can give a member project:write."""
    response = client.post(path, {}, content_type="application/json", **bearer(sub="user-2"))
    found = assert_refused(response, 403, "forbidden", scheme=None)
    assert found["detail"] == "the member's role does not permit this request"


@pytest.mark.parametrize("path", PATHS)
def test_an_unmapped_method_is_403_without_a_challenge(client: Client, path: str) -> None:
    found = assert_refused(client.delete(path, **bearer()), 403, "forbidden", scheme=None)
    assert found["detail"] == "this method is not permitted on this route"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("host", ["bad host", "a/b", "x:99999", "[::zz]", "h\u00e9"])
def test_a_bad_host_is_400_without_a_challenge(client: Client, path: str, host: str) -> None:
    assert_refused(client.get(path, HTTP_HOST=host, **bearer()), 400, "invalid_request", scheme=None)


@pytest.mark.parametrize("path", WRITABLE)
def test_a_form_body_cut_before_its_content_length_is_400(client: Client, path: str) -> None:
    response = client.generic(
        "POST",
        path,
        b"name=x",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH="60",
        **bearer(),
    )
    assert_refused(response, 400, "invalid_request", scheme=None)


@pytest.fixture
def failing_jwks() -> Iterator[JWKSServer]:
    server = JWKSServer(jwks(SIGNER))
    server.status = 500
    with server.running():
        yield server


@pytest.mark.parametrize("path", PATHS)
def test_an_authorization_server_that_cannot_answer_is_503_with_retry_after(
    client: Client, path: str, failing_jwks: JWKSServer
) -> None:
    from resource_server import JWTVerifier
    from tests.django.project import server
    from tests.support import ISSUER

    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=failing_jwks.url, clock=server.CLOCK)
    with override_settings(RESOURCE_SERVER=lambda: server.build(verifier=verifier)):
        response = client.get(path, **bearer())
    found = assert_refused(response, 503, "temporarily_unavailable", scheme=None)
    assert int(response.headers["Retry-After"]) >= 1
    assert "retry" in found["detail"]


def test_no_refusal_carries_the_token(client: Client) -> None:
    for claims in BAD_TOKENS.values():
        raw = token(**claims)
        for path, _ in STYLES.values():
            response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
            assert raw not in response.content.decode() and raw not in str(response.headers)
