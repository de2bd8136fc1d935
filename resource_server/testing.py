"""A pytest plugin (registered through the ``pytest11`` entry point) for testing protected APIs
without an authorization server.

Fixtures:

``token_issuer``   a session-wide :class:`TestTokenIssuer`: a real ES256 key that mints RFC 9068
                   access tokens; ``token_issuer.verifier()`` is a :class:`JWTVerifier` trusting it.
``make_token``     ``make_token(subject="user-1", org="acme", scopes={"project:read"})`` → a token.
``assert_insufficient_scope``  ``assert_insufficient_scope(response, {"project:write"})`` checks a
                   403 whose Bearer challenge advertises exactly those scopes (Flask, httpx or
                   requests responses).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from policy import format_scope, parse_challenges, parse_scope

from .tokens import JWTVerifier

__all__ = ["TestTokenIssuer", "assert_insufficient_scope"]


class TestTokenIssuer:
    """Mints real, signed RFC 9068 tokens for tests. Never use it outside tests."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, *, issuer: str = "https://issuer.test", audience: str = "https://api.test") -> None:
        self.issuer = issuer
        self.audience = audience
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.jwks = {"keys": [{**public, "kid": "test-1", "use": "sig", "alg": "ES256"}]}

    def verifier(self, **options: Any) -> JWTVerifier:
        """A :class:`JWTVerifier` that trusts this issuer's key (pass it to your app in tests)."""
        return JWTVerifier(issuer=self.issuer, audience=self.audience, jwks=self.jwks, **options)

    def mint(
        self,
        subject: str = "user-1",
        *,
        org: str | None = None,
        scopes: Iterable[str] | str = (),
        lifetime: int = 300,
        client_id: str = "test-client",
        **claims: Any,
    ) -> str:
        """A token for ``subject``, bound to ``org`` when given, carrying ``scopes``."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": scopes if isinstance(scopes, str) else format_scope(scopes),
        }
        if org is not None:
            payload["org_id"] = org
        payload.update(claims)
        return jwt.encode(payload, self._key, "ES256", headers={"kid": "test-1", "typ": "at+jwt"})


def _status_and_challenges(response: Any) -> tuple[int, list[str]]:
    status = response.status_code
    headers = response.headers
    getlist = getattr(headers, "getlist", None) or getattr(headers, "get_list", None)
    values = getlist("WWW-Authenticate") if getlist else [headers.get("WWW-Authenticate")]
    return int(status), [v for v in values if v]


def assert_insufficient_scope(response: Any, scopes: Iterable[str] | str) -> None:
    """Assert a ``403`` whose Bearer challenge is ``insufficient_scope`` advertising ``scopes``."""
    expected = parse_scope(scopes) if isinstance(scopes, str) else frozenset(scopes)
    status, values = _status_and_challenges(response)
    assert status == 403, f"expected 403 insufficient_scope, got {status}"
    bearer = [c for c in parse_challenges(values) if c.is_scheme("Bearer")]
    assert bearer, f"no Bearer challenge in WWW-Authenticate: {values!r}"
    params = bearer[0].params
    assert params.get("error") == "insufficient_scope", f"the challenge's error is {params.get('error')!r}"
    advertised = parse_scope(params.get("scope", ""))
    assert advertised == expected, f"the challenge advertises {sorted(advertised)}, not {sorted(expected)}"


@pytest.fixture(scope="session")
def token_issuer() -> TestTokenIssuer:
    return TestTokenIssuer()


@pytest.fixture
def make_token(token_issuer: TestTokenIssuer) -> Callable[..., str]:
    return token_issuer.mint


@pytest.fixture(name="assert_insufficient_scope")
def assert_insufficient_scope_fixture() -> Callable[[Any, Iterable[str] | str], None]:
    return assert_insufficient_scope
