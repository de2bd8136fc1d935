"""Viewer context headers: a round trip works, and every forged, replayed, stale or misbound
context is refused as None without raising."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from resource_server import VerificationUnavailable
from resource_server.state import MemoryReplayCache
from resource_server.tokens.jws import b64encode, json_object
from resource_server.viewer_context import (
    ViewerContext,
    ViewerContextSigner,
    ViewerContextVerifier,
)
from tests.support import FakeClock

KEY = "k" * 32
OLD_KEY = "o" * 32
ISS = "https://front.test"
AUD = "https://inner.test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_900_000_000)


def signer(clock: FakeClock, *, keys: Any = None, kid: str | None = "k1", **kw: Any) -> ViewerContextSigner:
    keys = {"k1": KEY} if keys is None else keys
    return ViewerContextSigner(keys=keys, signing_kid=kid, issuer=ISS, audience=AUD, clock=clock, **kw)


def verifier(clock: FakeClock, *, keys: Any = None, **kw: Any) -> ViewerContextVerifier:
    keys = {"k1": KEY} if keys is None else keys
    return ViewerContextVerifier(keys=keys, audience=AUD, issuers=[ISS], clock=clock, **kw)


def mint(
    clock: FakeClock, method: str = "GET", path: str = "/items?x=1", body: bytes = b"", **kw: Any
) -> dict:
    kw.setdefault("user_id", "user-1")
    return signer(clock).headers(method=method, path=path, body=body, **kw)


def hand_sign(header_json: str, claims_json: str, secret: str = KEY) -> str:
    """A compact JWS built from raw JSON text with a real HMAC, so only the JSON can be wrong."""
    signing_input = f"{b64encode(header_json.encode())}.{b64encode(claims_json.encode())}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64encode(mac)}"


def good_claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock())
    claims = {
        "iss": ISS,
        "aud": AUD,
        "iat": now,
        "exp": now + 60,
        "jti": __import__("tests.support", fromlist=["next_jti"]).next_jti("j-"),  # fixed width, not uptime
        "htm": "GET",
        "htu": "/p",
        "bh": b64encode(hashlib.sha256(b"").digest()),
        "user_id": "user-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def forged(clock: FakeClock, header: dict | None = None, **overrides: Any) -> dict[str, str]:
    header = {"alg": "HS256", "typ": "viewer+jwt", "kid": "k1"} if header is None else header
    return {"X-Viewer-Context": hand_sign(json.dumps(header), json.dumps(good_claims(clock, **overrides)))}


def check(clock: FakeClock, headers: Any, method: str = "GET", path: str = "/p", body: bytes = b"") -> Any:
    return verifier(clock).verify(headers, method=method, path=path, body=body)


def test_round_trip(clock: FakeClock) -> None:
    headers = mint(clock, "post", "/items?x=1", b"{}", org_id="acme", scopes=["b:read", "a:write"])
    token = headers["X-Viewer-Context"]
    header = json_object(token.split(".")[0], "header")
    claims = json_object(token.split(".")[1], "payload")
    assert header == {"alg": "HS256", "typ": "viewer+jwt", "kid": "k1"}
    assert claims["htm"] == "POST" and claims["htu"] == "/items?x=1" and claims["scope"] == "a:write b:read"
    assert claims["exp"] - claims["iat"] == 60
    result = verifier(clock).verify(headers, method="POST", path="/items?x=1", body=b"{}")
    assert result == ViewerContext(
        user_id="user-1", org_id="acme", scopes=frozenset({"a:write", "b:read"}), issuer=ISS
    )


def test_optional_claims_omitted(clock: FakeClock) -> None:
    headers = signer(clock).headers(method="GET", path="/p")
    claims = json_object(headers["X-Viewer-Context"].split(".")[1], "payload")
    assert "user_id" not in claims and "org_id" not in claims and "scope" not in claims
    assert check(clock, headers) == ViewerContext(None, None, None, ISS)


def test_header_lookup_is_case_insensitive(clock: FakeClock) -> None:
    value = mint(clock, path="/p")["X-Viewer-Context"]
    assert check(clock, {"x-viewer-context": value}) is not None
    assert (
        check(clock, Headers([("X-VIEWER-CONTEXT", mint(clock, path="/p")["X-Viewer-Context"])])) is not None
    )


def test_replay_refused(clock: FakeClock) -> None:
    v = verifier(clock)
    headers = mint(clock, path="/p")
    assert v.verify(headers, method="GET", path="/p") is not None
    assert v.verify(headers, method="GET", path="/p") is None


def test_refused_context_does_not_burn_jti(clock: FakeClock) -> None:
    v = verifier(clock)
    headers = mint(clock, path="/p")
    assert v.verify(headers, method="DELETE", path="/p") is None
    assert v.verify(headers, method="GET", path="/p") is not None


def test_custom_replay_cache(clock: FakeClock) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def seen(self, jti: str, exp: int) -> bool:
            self.calls.append((jti, exp))
            return True

    cache = Recorder()
    assert verifier(clock, replay_cache=cache).verify(mint(clock, path="/p"), method="GET", path="/p") is None
    assert len(cache.calls) == 1


def test_memory_replay_cache_bounded_and_expiring(clock: FakeClock) -> None:
    cache = MemoryReplayCache(max_entries=2, clock=clock)
    now = int(clock())
    assert not cache.seen("a", now + 10)
    assert cache.seen("a", now + 10)
    assert not cache.seen("b", now + 10)
    with pytest.raises(VerificationUnavailable) as full:  # full of live entries: never evicted
        cache.seen("c", now + 10)
    assert full.value.retry_after == 10  # until the oldest entry expires
    assert cache.seen("a", now + 10)
    clock.advance(11)
    assert not cache.seen("c", now + 30)  # the old ones expired: room again
    assert not cache.seen("a", now + 30)


def test_tampered_payload_and_signature(clock: FakeClock) -> None:
    header, payload, signature = mint(clock, path="/p")["X-Viewer-Context"].split(".")
    claims = json_object(payload, "payload") | {"user_id": "admin"}
    evil_payload = b64encode(json.dumps(claims).encode())
    assert check(clock, {"X-Viewer-Context": f"{header}.{evil_payload}.{signature}"}) is None
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert check(clock, {"X-Viewer-Context": f"{header}.{payload}.{flipped}"}) is None


def test_time_checks(clock: FakeClock) -> None:
    now = int(clock())
    assert check(clock, forged(clock)) is not None
    assert check(clock, forged(clock, exp=now - 5)) is None  # expired past leeway
    assert check(clock, forged(clock, iat=now + 6, exp=now + 60)) is None  # future
    assert check(clock, forged(clock, iat=now - 301, exp=now + 10)) is None  # stale
    assert check(clock, forged(clock, iat=now, exp=now + 301)) is None  # lifetime cap
    assert check(clock, forged(clock, exp=True)) is None
    assert check(clock, forged(clock, iat=float(now))) is None
    assert check(clock, forged(clock, iat="now")) is None


def test_expired_after_clock_advance(clock: FakeClock) -> None:
    headers = mint(clock, path="/p")
    clock.advance(65)
    assert check(clock, headers) is None


def test_stale_with_small_max_age(clock: FakeClock) -> None:
    headers = mint(clock, path="/p")
    clock.advance(31)
    assert verifier(clock, max_age=30).verify(headers, method="GET", path="/p") is None


def test_identity_checks(clock: FakeClock) -> None:
    assert check(clock, forged(clock, iss="https://evil.test")) is None
    assert check(clock, forged(clock, aud="https://other.test")) is None
    assert check(clock, forged(clock, aud=[AUD, "https://other.test"])) is not None
    assert check(clock, forged(clock, aud=["https://other.test"])) is None
    assert check(clock, forged(clock, user_id="")) is None
    assert check(clock, forged(clock, org_id=7)) is None
    assert check(clock, forged(clock, scope="a  b")) is None
    assert check(clock, forged(clock, scope=["a"])) is None
    assert check(clock, forged(clock, jti="")) is None
    assert check(clock, forged(clock, jti="j" * 129)) is None
    assert check(clock, forged(clock, jti=5)) is None
    claims = good_claims(clock)
    del claims["jti"]
    header = json.dumps({"alg": "HS256", "typ": "viewer+jwt", "kid": "k1"})
    assert check(clock, {"X-Viewer-Context": hand_sign(header, json.dumps(claims))}) is None


def test_header_checks(clock: FakeClock) -> None:
    base = {"alg": "HS256", "typ": "viewer+jwt", "kid": "k1"}
    assert check(clock, forged(clock, base | {"alg": "HS512"})) is None
    assert check(clock, forged(clock, base | {"alg": "none"})) is None
    assert check(clock, forged(clock, base | {"typ": "JWT"})) is None
    assert check(clock, forged(clock, base | {"crit": ["x"], "x": 1})) is None
    assert check(clock, forged(clock, base | {"kid": "k2"})) is None
    assert check(clock, forged(clock, {"alg": "HS256", "typ": "viewer+jwt"})) is None


def test_wrong_key_refused(clock: FakeClock) -> None:
    headers = signer(clock, keys={"k1": OLD_KEY}).headers(method="GET", path="/p")
    assert check(clock, headers) is None


def test_key_rotation(clock: FakeClock) -> None:
    old = signer(clock, keys={"old": OLD_KEY}, kid="old").headers(method="GET", path="/p")
    new = signer(clock, keys={"old": OLD_KEY, "new": KEY}, kid="new").headers(method="GET", path="/p")
    both = verifier(clock, keys={"new": KEY, "old": OLD_KEY})
    assert both.verify(old, method="GET", path="/p") is not None
    assert both.verify(new, method="GET", path="/p") is not None
    only_new = verifier(clock, keys={"new": KEY})
    assert only_new.verify(old, method="GET", path="/p") is None


def test_request_binding(clock: FakeClock) -> None:
    headers = mint(clock, "GET", "/items/1", b"")
    assert check(clock, headers, "DELETE", "/items/1") is None
    assert check(clock, headers, "GET", "/items/2") is None
    assert check(clock, headers, "GET", "/items/1?admin=1") is None
    assert check(clock, headers, "GET", "/items/1", b"x") is None
    posted = mint(clock, "POST", "/items", b'{"a":1}')
    assert check(clock, posted, "POST", "/items", b'{"a":2}') is None
    assert check(clock, posted, "post", "/items", b'{"a":1}') is not None


def test_duplicate_json_keys(clock: FakeClock) -> None:
    header = json.dumps({"alg": "HS256", "typ": "viewer+jwt", "kid": "k1"})
    body = json.dumps(good_claims(clock))
    assert check(clock, {"X-Viewer-Context": hand_sign(header, body)}) is not None
    duplicated = body[:-1] + ', "user_id": "admin"}'
    assert check(clock, {"X-Viewer-Context": hand_sign(header, duplicated)}) is None
    dup_header = header[:-1] + ', "alg": "none"}'
    assert check(clock, {"X-Viewer-Context": hand_sign(dup_header, json.dumps(good_claims(clock)))}) is None


def test_oversized_header_refused_quickly(clock: FakeClock) -> None:
    huge = "a" * (5 * 1024 * 1024)
    started = time.thread_time()
    assert check(clock, {"X-Viewer-Context": huge}) is None
    assert check(clock, {"X-Viewer-Context": huge[:2_000_000] + "." + huge[:10] + ".x"}) is None
    # A hang guard, not a benchmark (CPU time of this thread, which load elsewhere does not
    # inflate): the size is checked first, so this takes microseconds.
    assert time.thread_time() - started < 2


def test_header_limit_is_configurable(clock: FakeClock) -> None:
    headers = mint(clock, path="/p")
    assert verifier(clock, max_header_bytes=50).verify(headers, method="GET", path="/p") is None


@pytest.mark.parametrize(
    "value", ["", "a.b", "a.b.c", "é.é.é", b"a.b.c", None, 7, ["a.b.c"], "a.b.c.d", " ", "..."]
)
def test_malformed_headers(clock: FakeClock, value: Any) -> None:
    assert check(clock, {"X-Viewer-Context": value}) is None


@pytest.mark.parametrize("headers", [{}, None, 7, "X-Viewer-Context", Headers()])
def test_missing_or_odd_header_containers(clock: FakeClock, headers: Any) -> None:
    assert check(clock, headers) is None


def test_bytes_of_a_valid_token_refused(clock: FakeClock) -> None:
    value = mint(clock, path="/p")["X-Viewer-Context"]
    assert check(clock, {"X-Viewer-Context": value.encode()}) is None


def test_short_secret_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        signer(clock, keys={"k1": "short"})
    with pytest.raises(ValueError):
        verifier(clock, keys={"k1": "k" * 31})
    with pytest.raises(ValueError):
        verifier(clock, keys={"k1": KEY, "k2": b"x"})


def test_signer_without_secret_warns_once(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    for keys, kid in [({}, "k1"), ({"k1": KEY}, None)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="resource_server"):
            s = signer(clock, keys=keys, kid=kid)
            assert s.headers(method="GET", path="/p", user_id="u") == {}
            assert s.headers(method="POST", path="/q") == {}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1


def test_refusals_are_logged_without_the_token(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    value = mint(clock, path="/p")["X-Viewer-Context"]
    with caplog.at_level(logging.DEBUG, logger="resource_server"):
        assert check(clock, {"X-Viewer-Context": value}, method="DELETE") is None
    assert caplog.records
    assert all(value not in r.getMessage() for r in caplog.records)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.text(alphabet="abcAB01-_.", max_size=200)))
def test_random_values_never_raise(value: Any) -> None:
    clock = FakeClock(1_900_000_000)
    assert check(clock, {"X-Viewer-Context": value}) is None


# -- identifiers: no control or invisible characters (shared with access tokens) -------------------


@pytest.mark.parametrize("claim", ["user_id", "org_id"])
@pytest.mark.parametrize(
    "hidden", ["\x00", "\n", "\x7f", "\x85", "\ud800", "\u2028", "\u202e", "\u200b"], ids=repr
)
def test_contexts_with_control_or_invisible_identifiers_are_refused(
    claim: str, hidden: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="resource_server"):
        assert check(clock, forged(clock, **{claim: f"user{hidden}1"})) is None
    assert any("control or invisible" in r.getMessage() for r in caplog.records)
    assert all(hidden not in r.getMessage() for r in caplog.records)


def test_contexts_with_visible_identifiers_of_any_script_verify(clock: FakeClock) -> None:
    context = check(clock, forged(clock, user_id="josé", org_id="用户-1"))
    assert context is not None and (context.user_id, context.org_id) == ("josé", "用户-1")


# -- the jti and bh: checked before any store or comparison sees them --------------------------------


class Recording:
    """An application's own replay cache: remembers every jti it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def seen(self, jti: str, exp: float) -> bool:
        self.asked.append(jti)
        return False


@pytest.mark.parametrize("jti", ["\ud800x", "a\nb", "\u202ejti", "\x00"], ids=repr)
def test_a_jti_that_cannot_be_stored_never_reaches_the_replay_cache(jti: str, clock: FakeClock) -> None:
    cache = Recording()
    assert verifier(clock, replay_cache=cache).verify(forged(clock, jti=jti), method="GET", path="/p") is None
    assert cache.asked == []
    # A visible jti of another script is a string RFC 7519 §4.1.7 allows: stored and accepted.
    assert verifier(clock, replay_cache=cache).verify(forged(clock, jti="jti-ü"), method="GET", path="/p")
    assert cache.asked == ["jti-ü"]


@pytest.mark.parametrize("bh", ["é" * 43, "\ud800" * 43, "A" * 42, 7], ids=repr)
def test_a_bh_that_is_not_a_sha256_in_base64url_is_refused_as_another_body(
    bh: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="resource_server"):
        assert check(clock, forged(clock, bh=bh)) is None
    assert [r.getMessage() for r in caplog.records] == ["viewer context refused: bound to another body"]


def test_a_replay_cache_that_raises_is_unavailable_not_a_refusal(clock: FakeClock) -> None:
    """Any exception from an application's cache: the context could not be checked (503),
    neither accepted nor refused as if it were bad."""

    class Broken:
        def seen(self, jti: str, exp: float) -> bool:
            raise RuntimeError("the application's store is down")

    with pytest.raises(VerificationUnavailable):
        verifier(clock, replay_cache=Broken()).verify(forged(clock), method="GET", path="/p")


# -- the memory replay cache sweeps by expiry ------------------------------------------------------


def test_a_long_lived_entry_in_front_does_not_keep_expired_ones(clock: FakeClock) -> None:
    cache = MemoryReplayCache(max_entries=3, clock=clock)
    now = int(clock())
    assert not cache.seen("long", now + 1000)
    assert not cache.seen("a", now + 10)
    assert not cache.seen("b", now + 10)
    clock.advance(11)
    assert not cache.seen("c", now + 30)  # a and b are dead: room, though "long" came first
    assert not cache.seen("d", now + 30)
    assert cache.seen("long", now + 1000)  # still remembered: no replay
    with pytest.raises(VerificationUnavailable):  # truly full of live entries: nothing evicted
        cache.seen("e", now + 30)
    assert len(cache._expiry) == len(cache._by_expiry) == 3  # memory holds the live ones only


def test_a_full_cache_frees_exactly_the_entries_that_expire(clock: FakeClock) -> None:
    cache = MemoryReplayCache(max_entries=3, clock=clock)
    now = int(clock())
    for jti, lifetime in [("x", 30), ("y", 20), ("z", 10)]:  # inserted latest-expiring first
        assert not cache.seen(jti, now + lifetime)
    with pytest.raises(VerificationUnavailable):
        cache.seen("new-1", now + 60)
    clock.advance(10)  # z expires (exp <= now)
    assert not cache.seen("new-1", now + 60)
    with pytest.raises(VerificationUnavailable):
        cache.seen("new-2", now + 60)
    assert cache.seen("x", now + 30) and cache.seen("y", now + 20)


def test_a_fresh_context_is_accepted_once_short_lived_ones_expire(clock: FakeClock) -> None:
    """The reported scenario end to end: one 300 s context in front, short ones behind it."""
    verify = verifier(clock, replay_cache=MemoryReplayCache(max_entries=3, clock=clock))
    long_lived = signer(clock, ttl=300).headers(method="GET", path="/p", user_id="u")
    short = signer(clock, ttl=10)
    contexts = [long_lived, short.headers(method="GET", path="/p"), short.headers(method="GET", path="/p")]
    assert all(verify.verify(c, method="GET", path="/p") is not None for c in contexts)
    clock.advance(16)  # past exp + leeway of the short ones
    fresh = signer(clock).headers(method="GET", path="/p", user_id="u")
    assert verify.verify(fresh, method="GET", path="/p") is not None
    assert verify.verify(long_lived, method="GET", path="/p") is None  # replay still refused


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.integers(0, 40)),
            st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 60)),
        ),
        max_size=60,
    ),
    st.integers(1, 5),
)
def test_the_cache_agrees_with_a_plain_model(steps: list[tuple[str, int]], size: int) -> None:
    """Whatever the order of insertion and expiry: remembered while alive, forgotten once dead,
    and unavailable (never "not seen") when the live entries fill it."""
    clock = FakeClock(1_900_000_000)
    cache = MemoryReplayCache(max_entries=size, clock=clock)
    alive: dict[str, float] = {}
    for what, amount in steps:
        if what == "advance":
            clock.advance(amount)
            continue
        now, exp = clock(), int(clock()) + amount
        alive = {jti: e for jti, e in alive.items() if e > now}
        if what not in alive and len(alive) >= size:
            with pytest.raises(VerificationUnavailable):
                cache.seen(what, exp)
            continue
        expected = what in alive
        if not expected:
            alive[what] = exp
        assert cache.seen(what, exp) is expected


def test_the_cache_is_thread_safe(clock: FakeClock) -> None:
    import threading

    cache = MemoryReplayCache(max_entries=10, clock=clock)
    now = int(clock())
    jtis = ["same"] * 16 + [f"jti-{n}" for n in range(24)]
    barrier = threading.Barrier(len(jtis))
    accepted: list[str] = []

    def record(jti: str) -> None:
        barrier.wait()
        try:
            if not cache.seen(jti, now + 60):
                accepted.append(jti)
        except VerificationUnavailable:
            pass  # full: unavailable, never accepted

    threads = [threading.Thread(target=record, args=(jti,)) for jti in jtis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(accepted) == 10  # the capacity, never more
    assert accepted.count("same") <= 1  # one jti, accepted at most once
