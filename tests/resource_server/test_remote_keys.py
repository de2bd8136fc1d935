"""A ``jwks_uri`` fetched over a real loopback HTTP server: caching, refresh, cooldown, failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from resource_server import InvalidToken, JWTVerifier
from tests.support import AUDIENCE, ISSUER, FakeClock, JWKSServer, Signer, es256, jwks, rs256


@pytest.fixture(scope="module")
def es() -> Signer:
    return es256()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(es: Signer) -> Iterator[JWKSServer]:
    with JWKSServer(jwks(es)).running() as running:
        yield running


def remote(server: JWKSServer, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=clock)


def test_keys_are_fetched_once_and_cached(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server, clock)
    for _ in range(5):
        assert verifier.verify(es.token()).subject == "user-1"
    assert server.requests == 1


def test_unknown_kid_refreshes_at_most_once_per_cooldown(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server, clock)
    verifier.verify(es.token())
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(es.token(headers={"kid": "rotated-0"}))
    assert server.requests == 1  # the first fetch started the cooldown too (as PyJWKClient does)
    clock.advance(30)
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(es.token(headers={"kid": "rotated-1"}))
    assert server.requests == 2
    for kid in ("rotated-2", "rotated-3", "../../etc/passwd", "https://evil.test/k"):
        with pytest.raises(InvalidToken):
            verifier.verify(es.token(headers={"kid": kid}))
    assert server.requests == 2  # inside the 30 s cooldown: no more fetches
    clock.advance(30)
    with pytest.raises(InvalidToken):
        verifier.verify(es.token(headers={"kid": "rotated-4"}, now=int(clock.now)))
    assert server.requests == 3


def test_key_rotation_is_picked_up(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server, clock)
    verifier.verify(es.token())
    clock.advance(31)
    new = rs256("rotated")
    server.document = jwks(es, new)
    assert verifier.verify(new.token()).subject == "user-1"
    assert server.requests == 2


def break_server(server: JWKSServer, failure: str) -> None:
    if failure == "500":
        server.status = 500
    elif failure == "garbage":
        server.body_override = b"<html>oops"
    elif failure == "not an object":
        server.body_override = b"[1, 2]"
    elif failure == "no usable key":
        server.document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}


@pytest.mark.parametrize("failure", ["500", "garbage", "not an object", "no usable key", "down"])
def test_a_failed_refresh_keeps_the_cached_set(failure: str, es: Signer, clock: FakeClock) -> None:
    with JWKSServer(jwks(es)).running() as server:
        verifier = remote(server, clock)
        verifier.verify(es.token())
        break_server(server, failure)
        if failure != "down":
            clock.advance(301)  # the cache is stale, the refresh fails, the last good set serves on
            assert verifier.verify(es.token(now=int(clock.now))).subject == "user-1"
            assert server.requests == 2
    if failure == "down":  # the server has stopped: connection refused
        clock.advance(301)
        assert verifier.verify(es.token(now=int(clock.now))).subject == "user-1"


def test_server_down_at_first_use_is_an_invalid_token(es: Signer, clock: FakeClock) -> None:
    server = JWKSServer(jwks(es))
    server._server.server_close()  # the port is closed: connection refused
    with pytest.raises(InvalidToken, match="unknown key"):
        remote(server, clock).verify(es.token())


def test_one_bad_key_in_a_fetched_set_does_not_spoil_the_others(es: Signer, clock: FakeClock) -> None:
    document = {
        "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, {**es.jwk, "d": "AAAA", "kid": "p"}, es.jwk]
    }
    with JWKSServer(document).running() as server:
        assert remote(server, clock).verify(es.token()).subject == "user-1"


def test_no_fetch_storm_under_concurrent_unknown_kids(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server, clock)
    verifier.verify(es.token())
    tokens = [es.token(headers={"kid": f"made-up-{i}"}) for i in range(50)]
    errors: list[BaseException] = []

    def attempt(token: str) -> None:
        try:
            verifier.verify(token)
        except InvalidToken:
            pass
        except BaseException as exc:  # anything else is a failure of the test
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert server.requests <= 2


def test_only_http_uris_are_accepted() -> None:
    with pytest.raises(Exception, match="scheme"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri="file:///etc/passwd")
