"""Helpers shared by the Django adapter's tests: tokens for the test project, and refusals read back."""

from __future__ import annotations

import json
from typing import Any

from policy import Challenge, parse_challenges
from tests.django.project.keys import SIGNER
from tests.support import NOW

RESOURCE_METADATA = "https://api.test/.well-known/oauth-protected-resource"

#: One read path per way the adapter protects a view (GET needs project:read on each), and
#: whether the same path maps POST to project:write.
STYLES = {
    "drf": ("/orgs/acme/projects", True),
    "drf-viewset": ("/orgs/acme/vs/projects/", True),
    "plain": ("/plain/orgs/acme/projects", True),
    "async": ("/async/orgs/acme/projects", True),
    "mixin": ("/cbv/orgs/acme/projects", True),
    "async-mixin": ("/acbv/orgs/acme/projects", False),
    "method-decorator": ("/decorated/orgs/acme/projects", False),
    "middleware": ("/orgs/acme/reports", False),
}


def token(**claims: Any) -> str:
    """An access token of the test issuer for user-1 in acme (claims override)."""
    claims.setdefault("scope", "project:read project:write team:write report:read")
    return SIGNER.token(now=NOW, **claims)


def bearer(**claims: Any) -> dict[str, str]:
    """Test-client keyword arguments carrying a token in the Authorization header."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token(**claims)}"}


def challenge(response: Any) -> Challenge | None:
    """The one challenge of the response, parsed back (None when it has none)."""
    value = response.headers.get("WWW-Authenticate")
    if value is None:
        return None
    found = parse_challenges(value)
    assert len(found) == 1, value
    return found[0]


def body(response: Any) -> dict[str, Any]:
    """The JSON body of a refusal, which carries DRF's detail and RFC 6750's error alike."""
    found = json.loads(response.content)
    assert set(found) == {"detail", "error", "error_description"}, found
    assert found["detail"] == found["error_description"]
    return found  # type: ignore[no-any-return]


def assert_refused(
    response: Any,
    status: int,
    code: str,
    /,
    *,
    scheme: str | None = "Bearer",
    realm: str = "api",
    **params: str,
) -> dict[str, Any]:
    """``response`` is the refusal of the status table: its status, body, ``no-store``, and its
    challenge (``scheme=None``: none), the given parameters in it."""
    assert response.status_code == status, response.content
    found = body(response)
    assert found["error"] == code
    assert response.headers["Cache-Control"] == "no-store"
    parsed = challenge(response)
    if scheme is None:
        assert parsed is None, response.headers.get("WWW-Authenticate")
        return found
    assert parsed is not None and parsed.scheme == scheme
    assert parsed.params["realm"] == realm
    for name, value in params.items():
        assert parsed.params.get(name) == value, (name, parsed.params)
    return found
