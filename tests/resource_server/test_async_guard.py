"""The async pipeline: cached tokens and new ones whose keys are in hand decided on the loop,
verification that may wait on the network in a thread (a JWKS that takes seconds does not stall other requests), coroutine membership."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from policy import Roles, ScopeMap
from resource_server import JWTVerifier
from resource_server.async_guard import AsyncGuard
from resource_server.guard import Denial, Granted, Guard
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, JWKSServer, Signer, SlowJWKS, jwks

ROLES = Roles({"admin": ["project:read"]})
READ = ScopeMap({"GET": "project:read"})


@pytest.fixture
def slow(es: Signer) -> Iterator[SlowJWKS]:
    server = SlowJWKS(jwks(es), delay=60.0)  # held until released: the delay only ends a failing run
    yield server
    server.close()


def guard(verifier: Any, membership: Any) -> AsyncGuard:
    return AsyncGuard(Guard(verifier=verifier, roles=ROLES, membership=membership))


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_slow_jwks_does_not_stall_other_requests(es: Signer, slow: SlowJWKS) -> None:
    clock = FakeClock(NOW)
    remote = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=slow.url, clock=clock)
    local = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    waiting, quick = guard(remote, lambda s, o: "admin"), guard(local, lambda s, o: "admin")

    async def scenario() -> Any:
        cold = asyncio.create_task(
            waiting.authorize(
                authorization=bearer(es.token()),
                token_elsewhere=False,
                method="GET",
                scope_map=READ,
                org="acme",
            )
        )
        assert await asyncio.to_thread(slow.asked.wait, 10)  # the slow fetch is under way
        for _ in range(20):  # new tokens each: verified (in a thread), never waiting on the JWKS
            outcome = await quick.authorize(
                authorization=bearer(es.token()),
                token_elsewhere=False,
                method="GET",
                scope_map=READ,
                org="acme",
            )
            assert isinstance(outcome, Granted)
        # Twenty answers while the cold one still waits for its keys, held until released: no
        # clock decides it. Had its fetch blocked the loop, these would have come after it.
        assert not cold.done()
        slow.release.set()
        return await cold

    assert isinstance(asyncio.run(scenario()), Granted)


def recording(verifier: JWTVerifier) -> list[tuple[str, bool]]:
    """(thread, wait) of each verification the guard asks ``verifier`` for."""
    calls: list[tuple[str, bool]] = []
    original = verifier.verify_uncached

    def verify(token: str, *, wait: bool = True) -> Any:
        calls.append((threading.current_thread().name, wait))
        return original(token, wait=wait)

    verifier.verify_uncached = verify  # type: ignore[method-assign]
    return calls


def test_cached_tokens_are_decided_on_the_loop(es: Signer) -> None:
    clock = FakeClock(NOW)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    calls = recording(verifier)
    async_guard = guard(verifier, lambda s, o: "admin")
    header = bearer(es.token())

    async def twice() -> str:
        for _ in range(3):
            outcome = await async_guard.authorize(
                authorization=header, token_elsewhere=False, method="GET", scope_map=READ, org="acme"
            )
            assert isinstance(outcome, Granted)
        return threading.current_thread().name

    loop_thread = asyncio.run(twice())
    # Its keys in hand (a JWK Set in memory), a new token cannot wait: verified once, on the
    # loop (a thread hop costs as much as the signature), then served from the cache.
    assert calls == [(loop_thread, False)]


def test_a_new_token_goes_to_a_thread_only_when_its_verification_may_wait(es: Signer) -> None:
    clock = FakeClock(NOW)
    with JWKSServer(jwks(es)).running() as server:
        verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=clock)
        calls = recording(verifier)
        async_guard = guard(verifier, lambda s, o: "admin")

        async def one(token: str) -> str:
            outcome = await async_guard.authorize(
                authorization=bearer(token), token_elsewhere=False, method="GET", scope_map=READ, org="acme"
            )
            assert isinstance(outcome, Granted)
            return threading.current_thread().name

        # The set never fetched: tried on the loop without waiting, then fetched in a thread.
        loop_thread = asyncio.run(one(es.token(now=NOW)))
        assert calls[0] == (loop_thread, False)
        assert len(calls) == 2 and calls[1][0] != loop_thread and calls[1][1] is True
        assert server.requests == 1
        # The set in hand and fresh: the next new token is verified on the loop, nothing fetched.
        calls.clear()
        loop_thread = asyncio.run(one(es.token(now=NOW)))
        assert calls == [(loop_thread, False)] and server.requests == 1
        # The set stale (past its max_age): a fetch is due, so off the loop again.
        calls.clear()
        clock.advance(301)
        loop_thread = asyncio.run(one(es.token(now=int(clock.now))))
        assert [wait for _, wait in calls] == [False, True] and calls[1][0] != loop_thread
        assert server.requests == 2


def test_membership_may_be_a_coroutine_function(es: Signer) -> None:
    clock = FakeClock(NOW)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    asked: list[tuple[str, str | None]] = []

    async def membership(subject: str, org: str | None) -> str | None:
        asked.append((subject, org))
        await asyncio.sleep(0)
        return "admin" if org == "acme" else None

    async_guard = guard(verifier, membership)
    header = bearer(es.token())

    async def run() -> tuple[Any, Any]:
        allowed = await async_guard.authorize(
            authorization=header, token_elsewhere=False, method="GET", scope_map=READ, org="acme"
        )
        other = await async_guard.authorize(
            authorization=bearer(es.token(org_id="globex")),
            token_elsewhere=False,
            method="GET",
            scope_map=READ,
            org="globex",
        )
        return allowed, other

    allowed, other = asyncio.run(run())
    assert isinstance(allowed, Granted) and allowed.access.scopes == {"project:read"}
    assert isinstance(other, Denial) and other.status == 403
    assert asked == [("user-1", "acme"), ("user-1", "globex")]


def test_no_credentials_and_bad_tokens_are_refused_as_by_the_sync_guard(es: Signer) -> None:
    clock = FakeClock(NOW)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    async_guard = guard(verifier, lambda s, o: "admin")

    async def run(header: str | None) -> Any:
        return await async_guard.authorize(
            authorization=header, token_elsewhere=False, method="GET", scope_map=READ, org="acme"
        )

    assert asyncio.run(run(None)).status == 401
    assert asyncio.run(run("Bearer not-a-jwt")).error == "invalid_token"
    assert asyncio.run(run("Bearer a b")).status == 400
