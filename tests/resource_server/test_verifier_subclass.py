"""A verifier an application subclasses to add a check of its own is asked through its
``verify``: the guard's shortcut past the JWT verifiers' caches (``verify_uncached``, one cache
entry per token) and its on-the-event-loop verification must never skip what the subclass adds,
through the WSGI and the ASGI middleware, alone or behind ``TrustedIssuers``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from werkzeug.test import Client

from policy import Roles
from resource_server import InvalidToken, JWTVerifier, TrustedIssuers, VerifiedToken
from resource_server.asgi import BearerMiddleware as AsgiMiddleware
from resource_server.tokens.issuers import uncached_verify
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

SIGNER = es256("subclass")
ROLES = Roles({"admin": ["project:read"]})


class OneClientOnly(JWTVerifier):
    """An application's extra rule: only one client's tokens are accepted."""

    def verify(self, token: str) -> VerifiedToken:
        verified = super().verify(token)
        if verified.client_id != "trusted-client":
            raise InvalidToken("this client is not accepted here")
        return verified


def strict() -> OneClientOnly:
    return OneClientOnly(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW))


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


VERIFIERS = {
    "the subclass": strict,
    "the subclass behind TrustedIssuers": lambda: TrustedIssuers([strict()]),
}


@pytest.mark.parametrize("make", VERIFIERS.values(), ids=VERIFIERS.keys())
def test_wsgi_asks_the_subclass(make: Any) -> None:
    app = BearerMiddleware(
        wsgi_app,
        verifier=make(),
        roles=ROLES,
        membership=lambda subject, org: "admin",
        routes={"/orgs/<org>/p": {"GET": "project:read"}},
    )
    client = Client(app)
    for client_id, status in (("other-client", 401), ("trusted-client", 200)):
        token = SIGNER.token(client_id=client_id)
        assert client.get("/orgs/acme/p", headers={"Authorization": f"Bearer {token}"}).status_code == status


@pytest.mark.parametrize("make", VERIFIERS.values(), ids=VERIFIERS.keys())
def test_asgi_asks_the_subclass(make: Any) -> None:
    app = AsgiMiddleware(
        asgi_app,
        verifier=make(),
        roles=ROLES,
        membership=lambda subject, org: "admin",
        routes={"/orgs/{org}/p": {"GET": "project:read"}},
    )

    async def statuses() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            answers = []
            for client_id in ("other-client", "trusted-client"):
                token = SIGNER.token(client_id=client_id)
                answer = await client.get("/orgs/acme/p", headers={"Authorization": f"Bearer {token}"})
                answers.append(answer.status_code)
            return answers

    assert asyncio.run(statuses()) == [401, 200]


def test_the_library_s_own_verifiers_keep_the_shortcut() -> None:
    plain = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW))
    assert uncached_verify(plain) is not None
    assert uncached_verify(TrustedIssuers([plain])) is not None
    assert uncached_verify(strict()) is None
