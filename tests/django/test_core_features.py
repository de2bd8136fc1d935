"""What lives in the shared core works through the Django adapter unchanged: DPoP (with nonces),
introspection (RFC 7662), several issuers (TrustedIssuers) and a replay cache in Redis, one test
each, through DRF and plain views."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from policy import parse_challenges
from resource_server import JWTVerifier, TrustedIssuers
from resource_server.dpop import DPoPNonces, DPoPVerifier
from resource_server.state import RedisReplayCache
from tests.django.helpers import assert_refused
from tests.django.project import server
from tests.django.project.keys import SIGNER
from tests.resource_server.test_introspection import (
    CLIENT_ID,
    CLIENT_SECRET,
    IntrospectionServer,
    active,
    opaque,
)
from tests.support import AUDIENCE, ISSUER, NOW, dpop_key, es256, jwks

PATHS = ["/orgs/acme/projects", "/plain/orgs/acme/projects", "/async/orgs/acme/projects"]


def schemes(response: Any) -> dict[str, Any]:
    return {c.scheme: c for c in parse_challenges(response.headers["WWW-Authenticate"])}


@pytest.mark.parametrize("path", PATHS)
def test_dpop_with_nonces(path: str) -> None:
    nonces = DPoPNonces(b"n" * 32)
    key = dpop_key("ES256")
    token = SIGNER.token(now=NOW, cnf={"jkt": key.jkt}, scope="project:read")
    url = f"https://api.test{path}"
    client = Client()
    with override_settings(
        RESOURCE_SERVER=lambda: server.build(dpop=DPoPVerifier(clock=server.CLOCK, nonces=nonces))
    ):
        offered = client.get(path)
        assert set(schemes(offered)) == {"Bearer", "DPoP"}  # no credentials: both schemes offered
        asked = client.get(
            path, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=key.proof("GET", url, access_token=token)
        )
        assert_refused(asked, 401, "use_dpop_nonce", scheme="DPoP", error="use_dpop_nonce")
        nonce = asked.headers["DPoP-Nonce"]
        proof = key.proof("GET", url, access_token=token, nonce=nonce)
        granted = client.get(path, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
        assert granted.status_code == 200 and granted.json()["subject"] == "user-1"
        replayed = client.get(path, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
        assert_refused(replayed, 401, "invalid_dpop_proof", scheme="DPoP")
        as_bearer = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert_refused(as_bearer, 401, "invalid_token", error="invalid_token")
        narrow = SIGNER.token(now=NOW, cnf={"jkt": key.jkt}, scope="team:write")
        wants_more = client.get(
            path,
            HTTP_AUTHORIZATION=f"DPoP {narrow}",
            HTTP_DPOP=key.proof("GET", url, access_token=narrow, nonce=nonce),
        )
        assert_refused(wants_more, 403, "insufficient_scope", scheme="DPoP", scope="project:read")


@pytest.mark.parametrize("path", ["/drf/orgs/acme/reports", "/plain/orgs/acme/projects"])
def test_one_proof_is_checked_once_per_request(path: str) -> None:
    """A DRF view behind ResourceServerMiddleware authenticates with the token the middleware
    verified, and a view that protects itself is not checked twice: a DPoP proof is spent once."""
    key = dpop_key("ES256")
    token = SIGNER.token(now=NOW, cnf={"jkt": key.jkt}, scope="project:read report:read")
    routes = {
        "reports": {"GET": "report:read"},
        "drf-reports": {"GET": "report:read"},
        "plain-projects": {"GET": "report:read"},
    }
    with override_settings(
        RESOURCE_SERVER=lambda: server.build(dpop=DPoPVerifier(clock=server.CLOCK)),
        RESOURCE_SERVER_ROUTES=routes,
    ):
        proof = key.proof("GET", f"https://api.test{path}", access_token=token)
        response = Client().get(path, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
    assert response.status_code == 200, response.content
    assert response.json()["subject"] == "user-1"


@pytest.fixture
def introspection() -> Iterator[IntrospectionServer]:
    running = IntrospectionServer()
    running.start()
    yield running
    running.stop()


@pytest.mark.parametrize("path", PATHS)
def test_introspection(path: str, introspection: IntrospectionServer) -> None:
    from resource_server import IntrospectionVerifier

    verifier = IntrospectionVerifier(
        endpoint=introspection.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audience=AUDIENCE,
        issuer=ISSUER,
        clock=server.CLOCK,
        timeout=2.0,
    )
    good, revoked = opaque(), opaque()
    introspection.answers[good] = active(scope="project:read")
    client = Client()
    with override_settings(RESOURCE_SERVER=lambda: server.build(verifier=verifier)):
        granted = client.get(path, HTTP_AUTHORIZATION=f"Bearer {good}")
        assert granted.status_code == 200 and granted.json()["scopes"] == ["project:read"]
        assert_refused(client.get(path, HTTP_AUTHORIZATION=f"Bearer {revoked}"), 401, "invalid_token")
        introspection.behaviour = "not http"
        assert_refused(
            client.get(path, HTTP_AUTHORIZATION=f"Bearer {opaque()}"),
            503,
            "temporarily_unavailable",
            scheme=None,
        )


@pytest.mark.parametrize("path", PATHS)
def test_trusted_issuers(path: str) -> None:
    other = es256("other-1")
    trusted = TrustedIssuers(
        [
            server.verifier(),
            JWTVerifier(issuer="https://other.test", audience=AUDIENCE, jwks=jwks(other), clock=server.CLOCK),
        ]
    )
    client = Client()
    with override_settings(RESOURCE_SERVER=lambda: server.build(verifier=trusted)):
        for signer, issuer in ((SIGNER, ISSUER), (other, "https://other.test")):
            raw = signer.token(now=NOW, iss=issuer, scope="project:read")
            assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
        crossed = other.token(now=NOW, iss=ISSUER)  # the other key, claiming the first issuer
        assert_refused(client.get(path, HTTP_AUTHORIZATION=f"Bearer {crossed}"), 401, "invalid_token")
        document = client.get("/.well-known/oauth-protected-resource").json()
        assert document["authorization_servers"] == [ISSUER, "https://other.test"]


def test_a_replay_cache_in_redis(redis_url: str) -> None:
    """Two workers' ResourceServers share one Redis: a proof one accepted, the other refuses;
    a Redis that cannot answer is 503, never "not seen"."""
    key = dpop_key("ES256")
    token = SIGNER.token(now=NOW, cnf={"jkt": key.jkt}, scope="project:read")
    path = "/async/orgs/acme/projects"
    proof = key.proof("GET", f"https://api.test{path}", access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}

    def worker(url: str) -> Any:
        cache = RedisReplayCache(url, clock=server.CLOCK)
        return lambda: server.build(dpop=DPoPVerifier(clock=server.CLOCK, replay_cache=cache))

    with override_settings(RESOURCE_SERVER=worker(redis_url)):
        assert asyncio.run(AsyncClient().get(path, headers=headers)).status_code == 200
    with override_settings(RESOURCE_SERVER=worker(redis_url)):  # another worker, the same Redis
        assert_refused(
            asyncio.run(AsyncClient().get(path, headers=headers)), 401, "invalid_dpop_proof", scheme="DPoP"
        )
    fresh = {**headers, "DPoP": key.proof("GET", f"https://api.test{path}", access_token=token)}
    with override_settings(RESOURCE_SERVER=worker("unix:///nonexistent/redis.sock")):
        unavailable = asyncio.run(AsyncClient().get(path, headers=fresh))
    assert_refused(unavailable, 503, "temporarily_unavailable", scheme=None)
