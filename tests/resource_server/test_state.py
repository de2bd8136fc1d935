"""Replay caches shared by every worker: a real Redis server (tests/conftest.py starts one on a
Unix socket), real threads, and the viewer-context verifier on top."""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import pytest
import redis

from resource_server import VerificationUnavailable
from resource_server.state import MemoryReplayCache, RedisReplayCache, ReplayCache
from resource_server.viewer_context import ViewerContextSigner, ViewerContextVerifier
from tests.support import NOW, FakeClock

#: An expiry an hour after the caches' clock (the entries' time to live is measured on it).
FAR = NOW + 3600
_prefixes = itertools.count()


@pytest.fixture
def cache(redis_url: str) -> RedisReplayCache:
    """A cache with a prefix of its own, so tests never see each other's entries, on the
    tests' clock (its expiries are measured against it, never against Redis's)."""
    return RedisReplayCache(redis_url, prefix=f"test:{os.getpid()}:{next(_prefixes)}:", clock=FakeClock(NOW))


def test_both_caches_are_replay_caches(cache: RedisReplayCache) -> None:
    assert isinstance(cache, ReplayCache) and isinstance(MemoryReplayCache(), ReplayCache)


def test_a_jti_is_seen_the_second_time(cache: RedisReplayCache, redis_url: str) -> None:
    assert cache.seen("jti-1", FAR) is False
    assert cache.seen("jti-1", FAR) is True
    assert cache.seen("jti-2", FAR) is False
    client = redis.Redis.from_url(redis_url)
    # One key per jti, living exactly until the credential could no longer be accepted: an
    # hour on the cache's clock (less the moments this test took on Redis's).
    assert 3_590_000 < client.pttl(f"{cache.prefix}jti-1") <= 3_600_000
    assert cache.seen("jti-3", NOW + 0.0004) is False  # rounded up, never down
    assert client.pttl(f"{cache.prefix}jti-3") in (0, 1)


def test_an_entry_past_its_expiry_is_not_kept(cache: RedisReplayCache, redis_url: str) -> None:
    assert cache.seen("old", NOW - 1) is False  # already expired: nothing could be replayed
    assert redis.Redis.from_url(redis_url).exists(f"{cache.prefix}old") == 0
    assert cache.seen("old", FAR) is False


@pytest.mark.parametrize("behind", [70.0, 600.0, 10**9])
def test_an_application_clock_behind_redis_never_reopens_a_replay(redis_url: str, behind: float) -> None:
    """The entry's life is measured on the application's clock: with its host behind the Redis
    host's (by more than a proof lives, or by decades), an absolute expiry (PXAT) was already in
    Redis's past, the key was never kept, and every replay was accepted."""
    clock = FakeClock(NOW - behind)  # Redis's clock is the machine's: well after this
    cache = RedisReplayCache(redis_url, prefix=f"skew:{os.getpid()}:{next(_prefixes)}:", clock=clock)
    assert cache.seen("proof", clock() + 65) is False
    assert cache.seen("proof", clock() + 65) is True


def test_prefixes_keep_caches_apart(redis_url: str) -> None:
    one = RedisReplayCache(redis_url, prefix=f"a:{os.getpid()}:")
    other = RedisReplayCache(redis_url, prefix=f"b:{os.getpid()}:")
    assert one.seen("same", FAR) is False
    assert other.seen("same", FAR) is False


def test_exactly_one_of_many_concurrent_checks_wins(cache: RedisReplayCache) -> None:
    barrier = threading.Barrier(50)
    answers: list[bool] = []

    def check() -> None:
        barrier.wait()
        answers.append(cache.seen("contended", FAR))

    threads = [threading.Thread(target=check) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] + [True] * 49


def test_any_jti_string_is_a_key_never_an_encoding_error(cache: RedisReplayCache) -> None:
    """redis-py encodes a str key as strict UTF-8 and raised UnicodeEncodeError (a 500) for a
    lone surrogate. Keys are bytes now, one per distinct string: a surrogate pair written out is
    not the character it would stand for."""
    for jti in ("\ud800x", "\udfff", "é", "\ud83d\ude00", "\U0001f600"):
        assert cache.seen(jti, FAR) is False
        assert cache.seen(jti, FAR) is True


def test_a_dpop_proof_over_redis_is_checked_before_the_store(cache: RedisReplayCache) -> None:
    """The verifier refuses a jti that cannot be stored before Redis sees it (401, never a 500),
    and one key's share holds over Redis too."""
    from resource_server.dpop import DPoPVerifier, InvalidDPoPProof
    from tests.support import dpop_key

    clock = FakeClock(NOW)
    verifier = DPoPVerifier(clock=clock, replay_cache=cache, max_proofs_per_key=3)
    url = "https://api.test/x"
    key, other = dpop_key("ES256"), dpop_key("ES256")
    with pytest.raises(InvalidDPoPProof, match="jti"):
        verifier.verify(key.proof("GET", url, jti="\ud800x"), method="GET", url=url, access_token=None)
    for _ in range(3):
        verifier.verify(key.proof("GET", url), method="GET", url=url, access_token=None)
    with pytest.raises(VerificationUnavailable):
        verifier.verify(key.proof("GET", url), method="GET", url=url, access_token=None)
    verifier.verify(other.proof("GET", url), method="GET", url=url, access_token=None)


def test_an_unreachable_redis_fails_closed(tmp_path: Any) -> None:
    nowhere = RedisReplayCache(f"unix://{tmp_path}/no.sock", timeout=0.2)
    with pytest.raises(VerificationUnavailable):
        nowhere.seen("jti", FAR)


def test_configuration_is_checked(redis_url: str) -> None:
    with pytest.raises(TypeError):
        RedisReplayCache(object())
    with pytest.raises(ValueError):
        RedisReplayCache(redis_url, prefix="")
    client = redis.Redis.from_url(redis_url)
    assert RedisReplayCache(client).prefix == "resource_server:replay:"


# -- the viewer context across workers ------------------------------------------------------------

KEY, ISS, AUD = "k" * 32, "https://front.test", "https://inner.test"


def worker(clock: FakeClock, replay_cache: ReplayCache) -> ViewerContextVerifier:
    """What one gunicorn worker builds at start-up."""
    return ViewerContextVerifier(
        keys={"k1": KEY}, audience=AUD, issuers=[ISS], clock=clock, replay_cache=replay_cache
    )


def context(clock: FakeClock) -> dict[str, str]:
    signer = ViewerContextSigner(keys={"k1": KEY}, signing_kid="k1", issuer=ISS, audience=AUD, clock=clock)
    return signer.headers(method="GET", path="/items", body=b"", user_id="user-1")


def test_a_context_replayed_to_another_worker_is_refused_with_redis(redis_url: str) -> None:
    clock = FakeClock(NOW)
    prefix = f"viewer:{os.getpid()}:{next(_prefixes)}:"
    first, second = (worker(clock, RedisReplayCache(redis_url, prefix=prefix, clock=clock)) for _ in range(2))
    headers = context(clock)
    assert first.verify(headers, method="GET", path="/items") is not None
    assert second.verify(headers, method="GET", path="/items") is None  # the replay, elsewhere
    assert first.verify(headers, method="GET", path="/items") is None


def test_with_memory_caches_each_worker_accepts_the_replay_once() -> None:
    """Why several workers need a shared store: this is the gap Redis closes."""
    clock = FakeClock(NOW)
    first, second = (
        worker(clock, MemoryReplayCache(clock=clock)),
        worker(clock, MemoryReplayCache(clock=clock)),
    )
    headers = context(clock)
    assert first.verify(headers, method="GET", path="/items") is not None
    assert second.verify(headers, method="GET", path="/items") is not None
    assert first.verify(headers, method="GET", path="/items") is None


def test_a_viewer_context_is_never_accepted_unchecked_when_redis_is_down(tmp_path: Any) -> None:
    clock = FakeClock(NOW)
    verifier = worker(clock, RedisReplayCache(f"unix://{tmp_path}/no.sock", timeout=0.2))
    with pytest.raises(VerificationUnavailable):
        verifier.verify(context(clock), method="GET", path="/items")


def test_the_flask_extension_answers_503_when_the_replay_cache_is_down(tmp_path: Any, es: Any) -> None:
    from flask import Flask

    from policy import Roles
    from resource_server import JWTVerifier
    from resource_server.flask import ResourceServer, current_access
    from tests.support import AUDIENCE, ISSUER, jwks

    clock = FakeClock(NOW)
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=Roles({"admin": ["project:read"]}),
        membership=lambda subject, org: "admin",
        viewer_context=worker(clock, RedisReplayCache(f"unix://{tmp_path}/no.sock", timeout=0.2)),
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"}, viewer_context=True)
    def projects(org: str) -> dict[str, Any]:
        return {"subject": current_access.subject}

    signer = ViewerContextSigner(keys={"k1": KEY}, signing_kid="k1", issuer=ISS, audience=AUD, clock=clock)
    headers = signer.headers(method="GET", path="/orgs/acme/projects", body=b"", user_id="user-1")
    response = app.test_client().get("/orgs/acme/projects", headers=headers)
    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) >= 1 and "WWW-Authenticate" not in response.headers
