"""Verification keys: load_key and KeySet on real JWKs, RemoteKeySet over a real loopback server.

The ``jwks_uri`` tests drive the key set through ``JWTVerifier`` (its only caller) and count the
requests the server really receives; time moves only through ``FakeClock``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from resource_server import InvalidToken, JWTVerifier, KeySetError, VerificationUnavailable
from resource_server.tokens.keys import ASYMMETRIC_ALGORITHMS, KeySet, RemoteKeySet, VerificationKey, load_key
from tests.support import AUDIENCE, DROP, ISSUER, FakeClock, JWKSServer, Signer, b64url, jwks, rs256

NOW = 1_900_000_000
DEFAULT = frozenset({"RS256", "ES256", "EdDSA"})
EVERY = frozenset({"RS256", "PS256", "ES256", "ES384", "EdDSA"})


@pytest.fixture(scope="module")
def p384_jwk() -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)), "kid": "es384"}


def without(jwk: dict[str, Any], *members: str) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in members}


def strip(jwk: dict[str, Any]) -> dict[str, Any]:
    """The bare public key: no alg, use or key_ops, so the algorithm must be inferred."""
    return without(jwk, "alg", "use", "key_ops")


# -- load_key --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jwk_of", "expected"),
    [
        (lambda r: r.getfixturevalue("rs").jwk, "RS256"),
        (lambda r: r.getfixturevalue("es").jwk, "ES256"),
        (lambda r: r.getfixturevalue("ed").jwk, "EdDSA"),
        (lambda r: r.getfixturevalue("p384_jwk"), "ES384"),
    ],
    ids=["RSA -> RS256", "P-256 -> ES256", "Ed25519 -> EdDSA", "P-384 -> ES384"],
)
def test_the_algorithm_is_implied_by_the_key(jwk_of: Any, expected: str, request: Any) -> None:
    key = load_key(strip(jwk_of(request)), EVERY)
    assert key.algorithm == expected
    assert isinstance(key, VerificationKey)


def test_an_explicit_alg_member_is_the_key_algorithm(rs: Signer) -> None:
    assert load_key({**strip(rs.jwk), "alg": "PS256"}, EVERY).algorithm == "PS256"
    assert load_key(rs.jwk, EVERY).kid == "rs-1"


@pytest.mark.parametrize("signer_name", ["rs", "es", "ed"], ids=["RS256", "ES256", "EdDSA"])
def test_a_loaded_key_checks_real_signatures(signer_name: str, request: Any) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    key = load_key(signer.jwk, DEFAULT)
    message = b"header.payload"
    signature = jwt.get_algorithm_by_name(signer.algorithm).sign(message, signer.private_key)
    assert key.verify(message, signature) is True
    assert key.verify(message + b"x", signature) is False
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert key.verify(message, flipped) is False
    for wrong_length in (b"", signature[:-1], signature + b"\x00"):
        assert key.verify(message, wrong_length) is False


def _private_key_for(algorithm: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if algorithm[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curves = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
    if algorithm in curves:
        return ec.generate_private_key(curves[algorithm]())
    return ed25519.Ed25519PrivateKey.generate()


@pytest.mark.parametrize("algorithm", [*sorted(ASYMMETRIC_ALGORITHMS), "EdDSA/Ed448"])
def test_every_accepted_algorithm_checks_signatures_made_by_pyjwt(algorithm: str) -> None:
    """The signature check calls ``cryptography`` directly; PyJWT's signer is the reference, so
    the two agree on encodings (raw R || S, PSS salt length, Ed448)."""
    from cryptography.hazmat.primitives.asymmetric import ed448

    name = algorithm.split("/")[0]
    private = ed448.Ed448PrivateKey.generate() if algorithm.endswith("Ed448") else _private_key_for(name)
    implementation = jwt.get_algorithm_by_name(name)
    jwk = {**json.loads(implementation.to_jwk(private.public_key())), "alg": name, "kid": "k"}
    key = load_key(jwk, ASYMMETRIC_ALGORITHMS)
    message = b"header.payload"
    signature = implementation.sign(message, private)
    assert key.verify(message, signature) is True
    assert key.verify(message + b"x", signature) is False
    assert key.verify(message, signature[:-1] + bytes([signature[-1] ^ 1])) is False
    for wrong_length in (b"", signature[:-1], signature + b"\x00"):
        assert key.verify(message, wrong_length) is False
    if name.startswith("ES"):  # R or S zero, or the order-sized all-ones value: not a signature
        half = len(signature) // 2
        for forged in (bytes(2 * half), signature[:half] + bytes(half), b"\xff" * (2 * half)):
            assert key.verify(message, forged) is False


REFUSED_JWKS: dict[str, Any] = {
    "not an object": lambda es, rs, ed: ["kty", "EC"],
    "null": lambda es, rs, ed: None,
    "oct": lambda es, rs, ed: {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
    "private d": lambda es, rs, ed: {**es.jwk, "d": "AAAA"},
    "private p": lambda es, rs, ed: {**rs.jwk, "p": "AAAA"},
    "private q": lambda es, rs, ed: {**rs.jwk, "q": "AAAA"},
    "private dp": lambda es, rs, ed: {**rs.jwk, "dp": "AAAA"},
    "private dq": lambda es, rs, ed: {**rs.jwk, "dq": "AAAA"},
    "private qi": lambda es, rs, ed: {**rs.jwk, "qi": "AAAA"},
    "private oth": lambda es, rs, ed: {**rs.jwk, "oth": []},
    "symmetric k member": lambda es, rs, ed: {**es.jwk, "k": "AAAA"},
    "kid empty": lambda es, rs, ed: {**es.jwk, "kid": ""},
    "kid a number": lambda es, rs, ed: {**es.jwk, "kid": 7},
    "alg not a string": lambda es, rs, ed: {**es.jwk, "alg": ["ES256"]},
    "alg HS256 on an RSA key": lambda es, rs, ed: {**rs.jwk, "alg": "HS256"},
    "alg none": lambda es, rs, ed: {**rs.jwk, "alg": "none"},
    "alg ES384 on a P-256 key": lambda es, rs, ed: {**es.jwk, "alg": "ES384"},
    "alg RS256 on an EC key": lambda es, rs, ed: {**es.jwk, "alg": "RS256"},
    "unknown kty": lambda es, rs, ed: {"kty": "XYZ", "kid": "x"},
    "EC on an unknown curve": lambda es, rs, ed: {**strip(es.jwk), "crv": "P-192"},
    "OKP X25519 (not a signature curve)": lambda es, rs, ed: {**strip(ed.jwk), "crv": "X25519"},
}


@pytest.mark.parametrize("case", list(REFUSED_JWKS))
def test_unsafe_or_unusable_jwks_are_refused(case: str, es: Signer, rs: Signer, ed: Signer) -> None:
    with pytest.raises(KeySetError):
        load_key(REFUSED_JWKS[case](es, rs, ed), DEFAULT)


def test_a_key_for_an_algorithm_not_accepted_is_refused(rs: Signer) -> None:
    with pytest.raises(KeySetError, match="not an accepted algorithm"):
        load_key(rs.jwk, frozenset({"ES256"}))


def test_an_rsa_key_under_2048_bits_is_refused() -> None:
    weak = Signer("weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(KeySetError, match="2048"):
        load_key(weak.jwk, DEFAULT)


#: Public JWKs that are simply broken. They must be refused as KeySetError (a ValueError), the
#: package's configuration error, so that start-up fails cleanly and a fetched set can skip them.
MALFORMED_PUBLIC_JWKS: dict[str, Any] = {
    "kty missing (alg present)": lambda es, rs, ed: without(rs.jwk, "kty"),
    "RSA key with alg ES256": lambda es, rs, ed: {**rs.jwk, "alg": "ES256"},
    "OKP key with alg RS256": lambda es, rs, ed: {**ed.jwk, "alg": "RS256"},
    "OKP X25519 with alg EdDSA": lambda es, rs, ed: {**ed.jwk, "crv": "X25519"},
    "RSA without e": lambda es, rs, ed: without(rs.jwk, "e"),
    "RSA n not base64url": lambda es, rs, ed: {**rs.jwk, "n": "!!!"},
    "EC without x": lambda es, rs, ed: without(es.jwk, "x"),
    "EC point not on the curve": lambda es, rs, ed: {**es.jwk, "x": es.jwk["y"]},
    "EC x a number": lambda es, rs, ed: {**es.jwk, "x": 5},
    "Ed25519 x too short": lambda es, rs, ed: {**ed.jwk, "x": "AAAA"},
}


@pytest.mark.parametrize("case", list(MALFORMED_PUBLIC_JWKS))
def test_malformed_public_keys_are_a_key_set_error(case: str, es: Signer, rs: Signer, ed: Signer) -> None:
    with pytest.raises(KeySetError):
        load_key(MALFORMED_PUBLIC_JWKS[case](es, rs, ed), DEFAULT)


def test_a_malformed_configured_key_is_a_value_error_at_start_up(es: Signer) -> None:
    broken = {**es.jwk, "kid": "broken", "x": es.jwk["y"]}  # a point that is not on P-256
    with pytest.raises(ValueError):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [es.jwk, broken]})


# -- KeySet ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [None, [], "keys", {}, {"keys": {}}, {"keys": "x"}, {"keys": []}],
    ids=["null", "array", "string", "no keys", "keys an object", "keys a string", "keys empty"],
)
def test_a_jwk_set_must_be_an_object_with_keys(document: Any) -> None:
    with pytest.raises(KeySetError):
        KeySet.from_jwks(document, DEFAULT)


def test_find_by_kid(es: Signer, rs: Signer, ed: Signer) -> None:
    keys = KeySet.from_jwks(jwks(es, rs, ed), DEFAULT)
    assert len(keys) == 3
    assert {keys.find(s.kid).algorithm for s in (es, rs, ed)} == {"ES256", "RS256", "EdDSA"}
    assert keys.find("missing") is None
    assert keys.find("") is None
    assert keys.find(None) is None  # several keys: a token without kid is not matched by guessing


def test_a_lone_key_answers_for_a_missing_kid(es: Signer) -> None:
    keys = KeySet.from_jwks(jwks(es), DEFAULT)
    assert keys.find(None) is keys.find(es.kid)
    assert len(keys) == 1
    anonymous = KeySet.from_jwks({"keys": [without(es.jwk, "kid")]}, DEFAULT)
    assert anonymous.find(None) is not None
    assert anonymous.find("es-1") is None


@pytest.mark.parametrize(
    "extra",
    [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": ["wrapKey", "encrypt"]}],
    ids=["use enc", "key_ops encrypt", "key_ops wrapKey+encrypt"],
)
def test_encryption_keys_are_skipped(extra: dict[str, Any], es: Signer, rs: Signer) -> None:
    encryption = {**strip(rs.jwk), "kid": "enc", **extra}
    keys = KeySet.from_jwks({"keys": [encryption, es.jwk]}, DEFAULT)
    assert keys.find("enc") is None
    assert keys.find(es.kid) is not None
    with pytest.raises(KeySetError, match="no usable"):
        KeySet.from_jwks({"keys": [encryption]}, DEFAULT)


def test_strict_refuses_the_whole_set_over_one_bad_key(es: Signer) -> None:
    with pytest.raises(KeySetError):
        KeySet.from_jwks({"keys": [es.jwk, {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, DEFAULT)


def test_lenient_loading_skips_bad_keys(es: Signer, rs: Signer) -> None:
    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {**rs.jwk, "kid": "private", "d": "AAAA"},
            {**rs.jwk, "kid": "hmac", "alg": "HS256"},
            "not a key",
            es.jwk,
        ]
    }
    keys = KeySet.from_jwks(document, DEFAULT, strict=False)
    assert len(keys) == 1
    assert keys.find(es.kid) is not None
    assert all(keys.find(kid) is None for kid in ("h", "private", "hmac"))


def test_duplicate_kids(es: Signer, rs: Signer) -> None:
    twin = Signer(es.kid, "ES256", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeySetError, match="share"):
        KeySet.from_jwks(jwks(es, twin), DEFAULT)
    lenient = KeySet.from_jwks(jwks(es, twin, rs), DEFAULT, strict=False)
    assert lenient.find(es.kid) is None  # ambiguous: neither twin is used
    assert lenient.find(rs.kid) is not None


#: A few malformed keys, one per failure path, for the tests that load whole sets.
MALFORMED_SAMPLE = ["kty missing (alg present)", "RSA key with alg ES256", "EC point not on the curve"]


@pytest.mark.parametrize("case", MALFORMED_SAMPLE)
def test_lenient_loading_skips_malformed_public_keys(case: str, es: Signer, rs: Signer, ed: Signer) -> None:
    broken = {**MALFORMED_PUBLIC_JWKS[case](es, rs, ed), "kid": "broken"}
    good = Signer("good", "ES256", es.private_key)
    keys = KeySet.from_jwks({"keys": [broken, good.jwk]}, DEFAULT, strict=False)
    assert keys.find("good") is not None
    assert keys.find("broken") is None


# -- RemoteKeySet over a real loopback server ------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def server(es: Signer) -> Iterator[JWKSServer]:
    with JWKSServer(jwks(es)).running() as running:
        yield running


def remote(url: str, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=url, clock=clock)


def token_at(signer: Signer, clock: FakeClock, **headers: Any) -> str:
    """A fresh token (its own jti, so never a cache hit) valid at the clock's current time."""
    return signer.token(headers=headers or None, now=int(clock.now))


def unknown_key(verifier: JWTVerifier, token: str) -> None:
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)


def test_the_first_verification_fetches_once(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server.url, clock)
    assert server.requests == 0  # nothing is fetched at construction
    for _ in range(5):
        assert verifier.verify(token_at(es, clock)).subject == "user-1"
        clock.advance(10)
    assert server.requests == 1


def test_an_unknown_kid_is_refetched_at_most_once_per_interval(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """A kid is refused (401) only once a fetch made for that token shows it absent; while the
    next fetch may not start yet, the token cannot be checked (503 until then), and no fetch."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    assert server.requests == 1
    clock.advance(30)
    unknown_key(verifier, token_at(es, clock, kid="unknown-1"))
    assert server.requests == 2  # one refresh for the unknown kid, which settles it
    for waited, kid in enumerate(["unknown-2", "unknown-3", "unknown-1", "unknown-4"]):
        assert unavailable(verifier, token_at(es, clock, kid=kid)).retry_after == 5 - waited
        clock.advance(1)
    assert server.requests == 2  # 4 s later, still inside the 5 s refetch interval
    clock.advance(1)  # 5 s after the refresh
    unknown_key(verifier, token_at(es, clock, kid="unknown-5"))
    assert server.requests == 3
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert server.requests == 3


def test_the_first_fetch_also_starts_the_interval(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(4)
    assert unavailable(verifier, token_at(es, clock, kid="unknown")).retry_after == 1
    assert server.requests == 1


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"exp": 1, "exp": 2}', b"\xff\xfe"],
    ids=["not JSON", "an array", "a duplicate member", "not UTF-8"],
)
def test_a_malformed_payload_is_401_even_while_its_unknown_kid_cannot_be_looked_up(
    es: Signer, server: JWKSServer, clock: FakeClock, payload: bytes
) -> None:
    """What needs no key is checked first: a token whose payload is no strict JSON object is
    refused (401) at once, not answered 503 because its made-up kid would need a refetch that
    may not start yet; the same token with a good payload is 503, and no fetch is made."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(1)  # inside the 5 s refetch interval
    header = json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "made-up"}).encode()
    with pytest.raises(InvalidToken, match="JSON"):
        verifier.verify(es.sign(header, payload))
    unavailable(verifier, es.sign(header, json.dumps(es.claims(now=int(clock.now))).encode()))
    assert server.requests == 1


def test_rotation_a_new_key_verifies_after_a_refresh(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(45)
    new = rs256("rotated")
    server.document = jwks(es, new)
    assert verifier.verify(token_at(new, clock)).subject == "user-1"
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert server.requests == 2
    clock.advance(300)
    server.document = jwks(new)  # the old key is retired
    assert verifier.verify(token_at(new, clock)).subject == "user-1"  # max_age passed: refetched
    assert server.requests == 3
    clock.advance(5)
    unknown_key(verifier, token_at(es, clock))


def test_the_set_is_refetched_after_max_age(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(299)
    verifier.verify(token_at(es, clock))
    assert server.requests == 1
    clock.advance(1)
    verifier.verify(token_at(es, clock))
    assert server.requests == 2


def break_server(server: JWKSServer, failure: str) -> None:
    if failure == "500":
        server.status = 500
    elif failure == "garbage":
        server.body_override = b"<html>not json"
    elif failure == "JSON array":
        server.body_override = b"[1, 2]"
    elif failure == "keys empty":
        server.document = {"keys": []}
    elif failure == "only an oct key":
        server.document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}
    else:
        raise AssertionError(failure)


@pytest.mark.parametrize("failure", ["500", "garbage", "JSON array", "keys empty", "only an oct key"])
def test_a_failing_server_leaves_the_cached_keys_in_service(
    failure: str, es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    break_server(server, failure)
    clock.advance(301)  # the cache is stale; the refresh fails; the last good set serves on
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert server.requests == 2
    clock.advance(3600)
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert server.requests == 3
    # A kid the cached set lacks cannot be checked while the server fails: it may be a new key.
    assert unavailable(verifier, token_at(es, clock, kid="unknown")).retry_after == 30
    assert server.requests == 3  # the failed refresh started the cooldown: no fetch


def test_a_server_gone_down_leaves_the_cached_keys_in_service(es: Signer, clock: FakeClock) -> None:
    with JWKSServer(jwks(es)).running() as server:
        verifier = remote(server.url, clock)
        verifier.verify(token_at(es, clock))
    clock.advance(301)  # the port is closed now: connection refused
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    clock.advance(3600)
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    unavailable(verifier, token_at(es, clock, kid="unknown"))


def unavailable(verifier: JWTVerifier, token: str) -> VerificationUnavailable:
    """No keys were ever fetched: verification cannot happen now (503), which is not the token's
    fault (a 401 would tell the client to discard it)."""
    with pytest.raises(VerificationUnavailable) as caught:
        verifier.verify(token)
    assert caught.value.retry_after >= 1
    return caught.value


def test_a_server_down_at_first_use_is_unavailable_not_an_invalid_token(es: Signer, clock: FakeClock) -> None:
    # A port held bound but never listening: connections are refused, and no other process can
    # start serving on it while the test runs.
    with socket.socket() as down:
        down.bind(("127.0.0.1", 0))
        verifier = remote(f"http://127.0.0.1:{down.getsockname()[1]}/.well-known/jwks.json", clock)
        assert unavailable(verifier, token_at(es, clock)).retry_after == 30  # the whole cooldown
        clock.advance(20)
        assert unavailable(verifier, token_at(es, clock)).retry_after == 10
        clock.advance(60)
        unavailable(verifier, token_at(es, clock))


def test_a_failing_first_fetch_recovers_after_the_cooldown(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    server.status = 503
    verifier = remote(server.url, clock)
    unavailable(verifier, token_at(es, clock))
    server.status = 200
    clock.advance(10)
    unavailable(verifier, token_at(es, clock))  # still inside the cooldown
    assert server.requests == 1
    clock.advance(20)
    assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert server.requests == 2


BAD_NEIGHBOURS: dict[str, Any] = {
    "oct key": lambda es, rs, ed: {"kty": "oct", "k": "c2VjcmV0", "kid": "bad"},
    "private EC key": lambda es, rs, ed: {**es.jwk, "kid": "bad", "d": "AAAA"},
    "HS256 alg": lambda es, rs, ed: {**rs.jwk, "kid": "bad", "alg": "HS256"},
    "RSA under 2048 bits": lambda es, rs, ed: {
        **Signer("bad", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)).jwk
    },
    "not an object": lambda es, rs, ed: "bad",
    "encryption key": lambda es, rs, ed: {**strip(rs.jwk), "kid": "bad", "use": "enc"},
    **{
        f"malformed: {name}": lambda es, rs, ed, make=make: {**make(es, rs, ed), "kid": "bad"}
        for name, make in MALFORMED_PUBLIC_JWKS.items()
        if name in MALFORMED_SAMPLE
    },
}


@pytest.mark.parametrize("case", list(BAD_NEIGHBOURS))
def test_one_bad_key_in_a_fetched_set_does_not_spoil_the_good_one(
    case: str, es: Signer, rs: Signer, ed: Signer, clock: FakeClock
) -> None:
    document = {"keys": [BAD_NEIGHBOURS[case](es, rs, ed), es.jwk]}
    with JWKSServer(document).running() as server:
        verifier = remote(server.url, clock)
        unknown_key(verifier, token_at(es, clock, kid="bad"))  # the fetch it made shows it absent
        assert verifier.verify(token_at(es, clock)).subject == "user-1"


def run_concurrently(verifier: JWTVerifier, tokens: list[str]) -> list[BaseException]:
    """Verify every token on its own thread, all released at once; return unexpected errors."""
    barrier = threading.Barrier(len(tokens))
    unexpected: list[BaseException] = []

    def attempt(token: str) -> None:
        barrier.wait()
        try:
            verifier.verify(token)
        except (InvalidToken, VerificationUnavailable):
            pass
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    return unexpected


def random_kid_tokens(signer: Signer, clock: FakeClock, count: int = 50) -> list[str]:
    rng = random.Random(7)
    return [token_at(signer, clock, kid=f"made-up-{rng.getrandbits(64):x}") for _ in range(count)]


def test_no_fetch_storm_from_a_cold_start(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    verifier = remote(server.url, clock)
    assert run_concurrently(verifier, random_kid_tokens(es, clock)) == []
    assert server.requests <= 2


def test_no_fetch_storm_once_the_cooldown_has_passed(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(31)
    assert run_concurrently(verifier, random_kid_tokens(es, clock)) == []
    assert server.requests <= 2


def test_no_fetch_storm_with_a_failing_server(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    server.status = 500
    verifier = remote(server.url, clock)
    assert run_concurrently(verifier, [token_at(es, clock) for _ in range(50)]) == []
    assert server.requests == 1


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_redirect_is_not_followed(es: Signer, server: JWKSServer, clock: FakeClock) -> None:
    handler = type("Redirect", (_Redirect,), {"target": server.url})
    redirector = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=redirector.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        verifier = remote(f"http://127.0.0.1:{redirector.server_port}/jwks.json", clock)
        unavailable(verifier, token_at(es, clock))
    finally:
        redirector.shutdown()
        redirector.server_close()
    assert server.requests == 0


@pytest.mark.parametrize(
    "uri",
    ["file:///etc/passwd", "ftp://as.test/jwks.json", "data:application/json,{}", "as.test/jwks.json"],
    ids=["file", "ftp", "data", "no scheme"],
)
def test_only_http_and_https_jwks_uris_are_accepted(uri: str) -> None:
    """Bad configuration is a ValueError at start-up, like every other configuration error."""
    with pytest.raises(ValueError):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=uri)


def test_remote_key_set_finds_keys_directly(
    es: Signer, rs: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    server.document = jwks(es, rs)
    keys = RemoteKeySet(server.url, algorithms=DEFAULT, clock=clock)
    assert keys.find(es.kid).algorithm == "ES256"
    assert keys.find(rs.kid).algorithm == "RS256"
    assert keys.find(None) is None  # two keys: a token without a kid matches neither, no fetch
    with pytest.raises(VerificationUnavailable):  # not before a fetch made for it
        keys.find("../../etc/passwd")
    assert server.requests == 1
    clock.advance(5)
    assert keys.find("../../etc/passwd") is None
    assert server.requests == 2


# -- a clock that steps backwards ------------------------------------------------------------------


def test_after_the_clock_steps_back_a_rotated_key_is_fetched(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """JWTVerifier hands its wall clock to the key set; an NTP step back must not make the cache
    look fresh and the cooldown look active for the hour it takes the clock to catch up."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    assert server.requests == 1
    rotated = Signer("rotated", "ES256", ec.generate_private_key(ec.SECP256R1()))
    server.document = jwks(es, rotated)
    clock.advance(-3600)
    assert verifier.verify(token_at(rotated, clock)).subject == "user-1"
    assert server.requests == 2
    # The fetch restarts the interval at the new time: made-up kids do not fetch again.
    unavailable(verifier, token_at(es, clock, kid="made-up"))
    clock.advance(4)
    unavailable(verifier, token_at(es, clock, kid="made-up-too"))
    assert server.requests == 2


def test_after_the_clock_steps_back_a_retired_key_is_not_trusted_for_an_hour(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    server.document = jwks(Signer("successor", "ES256", ec.generate_private_key(ec.SECP256R1())))
    clock.advance(-3600)
    unknown_key(verifier, token_at(es, clock))  # the cache counts as stale: refetched, es is gone
    assert server.requests == 2


# -- ROCA (CVE-2017-15361): weak Infineon RSA keys -------------------------------------------------

# Public moduli from the test data of the published ROCA detector (github.com/crocs-muni/roca,
# roca/tests/data, MIT licence): mod03 and mod09 are real vulnerable keys there, mod04 and mod05
# are not, and mod07 is mod03 with its last hex digit changed.
ROCA_MODULI = {
    "2048-bit (mod03)": int(
        "9dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f1e63f1b9e51c55f9ea6fdc7332e9b0058c9ff2eb1fc89855029cf6aafe21e689feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a097c8929c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8df06097da7524df0df93db48eac8cc4af2d3a16257eb2b2adca6ba464e5974fa92550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb45f4249a5193925f5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacbc8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a412523af9e6f4aa11",
        16,
    ),
    "4096-bit (mod09)": int(
        "c39a928060db513091b604eadad719ed94e246de8fe15fb76efab5cfabbc3fc5486fe2ef2a5a5a8472f0c5be089edec071fb284df4467fa1fa6c8f0b013d3173fe636744666289bf67b5c998c87b59015d94bb9c20d30a70cfe275e42fd3c6f44d4c5252f9c6b6803f92afd928153bdb90ef08ede934c076f33543f9a1c362130929b9a1324c5ebee6831c251c48a7dee24d75ac538ce9a58d7ff09c12a5d772b6c33f4265a4e4830bd73ad221d24d4d3f092e24279c15fc1d10ca69561f4f071313c86b11ab36a5dd28df392f581834eecfdc9e183a466198e33cf01d273bd41d4b7e288cc66f24eba04676bd2090f6f73830336a317bc2d423b558b9d8f632e12af7b0e7fc9bdb69282e81fdf41a68cf4e85f01fc343dfe52a3ad01f67459d380165159e1209ef1ce4ecd26648e061faf0896551f7f1f92d6b6a19af0ab7f1f092d7e168bcec0ee478b8618489a8967a71e5e0a5c197662d8e9756f090a177109d4a34ae20a18c5629efea5ca66623960fc325f779cdae891a7ec051f00e837b8f2fb9fd19f6a35832ca0e5ce8375972c42a308f7d5ca0434022c131874087e826ed737994e46fbe44f5f1e908934f6033e6851ebd05447dddbaa51c0671849cafd3a503cdc150101914edf33b140c168c3dbea4791e74ea619ab1b31c90691de1d425b746b222a2b26ed54222cbcaf27a054f9f66f77be6466198c33e37dd",
        16,
    ),
}
SOUND_MODULI = {
    "mod04": int(
        "af659676197f1db06da7ac111a0a0ec175b8b7ef07192ffcd1f6b854c327785f1a7fd3db7da45cd4a31b2b2e5ce0d823a68e28c8adf1747316becce1fe5768064039ad2062260c8d1a34e0586dce9bc13090fcc9fb8b8b2c08ed3ae8d61b29818a669689a7d9c1dab053b557fb8d3f9c44faad3e18c55e739b00d3c9126558bc8e980cd2af377126ef5b1374136774b8bd370e3c1c149db395c8f99696b628b105946fea20106fe24d103ac062661a9248e8c3f628e00b308d33953aabe555132e218e74ef4b578716b4fe7cf340e8e604a319bf6e9951e1942601d34291032db54999d09e5d036dde3544ad35256bbb97d5e3fffd38166c21eae9199548853b",
        16,
    ),
    "mod05": int(
        "ba68fc5fbb606c4d428ab98b355d66214db4f7e475b5f7ffddc349c73f7d659965121ab16a4014e6c465c111d850205853d113f712127e4a230aa97f481eed6410f6c345f48e25fb81c42ec6815dc35cdd839e0de91fb2bec848d0910fa77e2c31f99ec9bcc7ed167812bd724318b0adf492d6b47c5ce050184e877ea64045f9501bf70569cffd102db7299f49e9c00222af9115d0aada967dfe759b7e4576e85c3a4ff594039231b90b448b90c3236083bcf819bc318d53a2018ec9b401f102ba9ee13dde592a42b032df136689d9c5619db55d519853a422d3100624d2d9e478218375f460c26930eda8cd0d947e58ffe9b7be2445356deaed988223e3ed1d",
        16,
    ),
    "mod03 with one digit changed (mod07)": int(
        "9dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f1e63f1b9e51c55f9ea6fdc7332e9b0058c9ff2eb1fc89855029cf6aafe21e689feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a097c8929c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8df06097da7524df0df93db48eac8cc4af2d3a16257eb2b2adca6ba464e5974fa92550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb45f4249a5193925f5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacbc8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a412523af9e6f4aa21",
        16,
    ),
}


def rsa_jwk(modulus: int, kid: str) -> dict[str, Any]:
    n = modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(n), "e": "AQAB"}


@pytest.mark.parametrize("size", list(ROCA_MODULI))
def test_a_roca_key_is_refused(size: str, es: Signer) -> None:
    roca = rsa_jwk(ROCA_MODULI[size], "roca")
    with pytest.raises(KeySetError, match="ROCA"):
        load_key(roca, DEFAULT)
    with pytest.raises(KeySetError, match="ROCA"):
        KeySet.from_jwks({"keys": [es.jwk, roca]}, DEFAULT)
    with pytest.raises(ValueError, match="ROCA"):  # configuration: start-up fails
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [roca]})


@pytest.mark.parametrize("name", list(SOUND_MODULI))
def test_moduli_without_the_fingerprint_load(name: str) -> None:
    assert load_key(rsa_jwk(SOUND_MODULI[name], "sound"), DEFAULT).algorithm == "RS256"


@pytest.mark.parametrize("bits", [2048, 3072])
def test_generated_rsa_keys_load(bits: int) -> None:
    signer = Signer("fresh", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=bits))
    key = load_key(signer.jwk, DEFAULT)
    message = b"header.payload"
    signature = jwt.get_algorithm_by_name("RS256").sign(message, signer.private_key)
    assert key.verify(message, signature)


def test_a_roca_key_in_a_fetched_set_is_skipped_with_a_warning(
    es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    document = {"keys": [rsa_jwk(ROCA_MODULI["2048-bit (mod03)"], "roca"), es.jwk]}
    with JWKSServer(document).running() as server, caplog.at_level(logging.WARNING, "resource_server"):
        verifier = remote(server.url, clock)
        unknown_key(verifier, token_at(es, clock, kid="roca"))
        assert verifier.verify(token_at(es, clock)).subject == "user-1"
    assert any("ROCA" in record.getMessage() for record in caplog.records)


# -- RSA sizes and public exponents ----------------------------------------------------------------


def rsa_key_with_exponent(bits: int, seed: int) -> rsa.RSAPrivateKey:
    """A real 2048-bit RSA key pair whose public exponent has ``bits`` bits: the primes of a
    generated key, with an odd exponent prime to their λ, as anyone can make with OpenSSL."""
    generated = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    p, q = generated.p, generated.q
    lam = math.lcm(p - 1, q - 1)
    rng = random.Random(seed)
    e = 0
    while math.gcd(e, lam) != 1:
        e = rng.getrandbits(bits) | 1 << (bits - 1) | 1
    d = pow(e, -1, lam)
    public = rsa.RSAPublicNumbers(e, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public).private_key()


@pytest.fixture(scope="module")
def huge_exponent() -> Signer:
    """The finding's key: 2048 bits with a 2040-bit exponent (about 100 times slower to verify
    with than one whose exponent is 65537)."""
    return Signer("huge-e", "RS256", rsa_key_with_exponent(2040, seed=2040))


def with_exponent(jwk: dict[str, Any], e: int) -> dict[str, Any]:
    return {**jwk, "e": b64url(e.to_bytes((e.bit_length() + 7) // 8, "big"))}


@pytest.mark.parametrize("e", [3, 65537, 2**31 + 1, 2**32 - 1], ids=["3", "65537", "2**31+1", "2**32-1"])
def test_odd_exponents_from_3_to_32_bits_load(e: int, rs: Signer) -> None:
    assert load_key(with_exponent(rs.jwk, e), DEFAULT).algorithm == "RS256"


@pytest.mark.parametrize("e", [2**32 + 1, 2**64 + 1, 2**255 + 1], ids=["2**32+1", "2**64+1", "2**255+1"])
def test_exponents_of_more_than_32_bits_are_refused(e: int, rs: Signer) -> None:
    with pytest.raises(KeySetError, match="exponent"):
        load_key(with_exponent(rs.jwk, e), DEFAULT)


@pytest.mark.parametrize("e", [1, 2, 65536], ids=["1", "2", "even"])
def test_exponents_that_are_no_rsa_exponent_are_refused(e: int, rs: Signer) -> None:
    with pytest.raises(KeySetError):
        load_key(with_exponent(rs.jwk, e), DEFAULT)


def test_a_real_key_with_a_huge_exponent_is_refused(huge_exponent: Signer) -> None:
    """It verifies its own signatures correctly; it is refused for what verifying them costs."""
    with pytest.raises(KeySetError, match="exponent"):
        load_key(huge_exponent.jwk, DEFAULT)
    with pytest.raises(ValueError, match="exponent"):  # configuration: start-up fails
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(huge_exponent))


def odd_modulus(bits: int) -> int:
    """An odd number of exactly ``bits`` bits, to stand for a public modulus of that size (which
    no check can tell from a product of two primes without factoring it)."""
    return random.Random(bits).getrandbits(bits) | 1 << (bits - 1) | 1


@pytest.mark.parametrize(("bits", "loads"), [(2047, False), (2048, True), (8192, True), (8193, False)])
def test_the_modulus_has_2048_to_8192_bits(bits: int, loads: bool) -> None:
    jwk = rsa_jwk(odd_modulus(bits), "sized")
    if loads:
        assert load_key(jwk, DEFAULT).algorithm == "RS256"
    else:
        with pytest.raises(KeySetError, match="2048 to 8192 bits"):
            load_key(jwk, DEFAULT)


def test_a_fetched_key_out_of_bounds_is_skipped_with_a_warning(
    huge_exponent: Signer, es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    document = {"keys": [huge_exponent.jwk, rsa_jwk(odd_modulus(8200), "too-big"), es.jwk]}
    with JWKSServer(document).running() as server, caplog.at_level(logging.WARNING, "resource_server"):
        verifier = remote(server.url, clock)
        unknown_key(verifier, token_at(huge_exponent, clock))
        clock.advance(5)
        unknown_key(verifier, token_at(es, clock, kid="too-big"))
        assert verifier.verify(token_at(es, clock)).subject == "user-1"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("'huge-e'" in line and "exponent" in line for line in warnings)
    assert any("'too-big'" in line and "8200-bit" in line for line in warnings)


def test_a_dpop_proof_by_a_key_with_a_huge_exponent_is_an_invalid_proof(
    es: Signer, huge_exponent: Signer
) -> None:
    from flask import Flask

    from policy import Roles
    from resource_server.dpop import DPoPVerifier
    from resource_server.flask import ResourceServer
    from tests.support import ProofSigner, dpop_key

    clock = FakeClock(NOW)
    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = "https://api.test"
    guard = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: "member",
        dpop=DPoPVerifier(clock=clock),
    )
    app.add_url_rule(
        "/orgs/<org>/projects", "projects", guard.require({"GET": "project:read"})(lambda org: "ok")
    )
    url = "https://api.test/orgs/acme/projects"

    def answer(key: ProofSigner) -> Any:
        token = es.token(cnf={"jkt": key.jkt})
        proof = key.proof("GET", url, access_token=token)
        return app.test_client().get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof})

    assert answer(dpop_key("RS256")).status_code == 200  # an ordinary RSA key
    refused = answer(ProofSigner("RS256", huge_exponent.private_key))
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_dpop_proof"


# -- rotation (OpenID Connect Core §10.1.1): a new key is never refused while a fetch may find it --


def test_the_window_in_which_a_new_key_is_answered_503_is_the_refetch_interval(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """The worst case, measured: the server publishes a key and signs with it right after the
    set was fetched. Every half second a client presents a token signed with the new key: it is
    told to retry (503) until the refetch interval has passed since that fetch, each Retry-After
    bringing it back no earlier than that; then the set is fetched and the token accepted. It
    is never told the token is invalid."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    fetched_at = clock.now
    added = Signer("added", "ES256", ec.generate_private_key(ec.SECP256R1()))
    server.document = jwks(es, added)
    told: list[int] = []
    while True:
        try:
            accepted = verifier.verify(token_at(added, clock))
        except VerificationUnavailable as unavailable_now:
            told.append(unavailable_now.retry_after)
            assert clock.now + unavailable_now.retry_after >= fetched_at + 5
            clock.advance(0.5)
            continue
        break
    assert accepted.subject == "user-1"
    assert clock.now - fetched_at == 5.0
    assert told == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert server.requests == 2


def test_a_token_signed_before_the_last_fetch_with_a_key_it_lacks_is_401_at_once(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """A key retired (or revoked) at the authorization server: its tokens were signed before the
    set in hand was fetched (their iat, plus the clocks' leeway), so that set's silence is an
    answer. 401 at once, inside the refetch interval too, and no fetch: those clients get a new
    token instead of retrying on 503."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    clock.advance(1)
    signed_before = int(clock.now) - 120
    for kid in ("retired", "revoked", "made-up"):
        unknown_key(verifier, es.token(headers={"kid": kid}, now=signed_before))
    assert server.requests == 1


def test_unknown_kid_traffic_cannot_keep_a_token_waiting_on_503(
    es: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """Others' tokens with made-up kids start every allowed fetch before this client's retry
    does, so "a fetch started after my lookup" never comes for it. A fetch that started after
    its token was signed (iat + the 30 s leeway) settles it all the same: 401 within leeway plus
    the refetch interval, however busy the traffic (seen 503 for 40 s and more before)."""
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    victim = token_at(es, clock, kid="gone")
    signed = clock.now
    answers: list[str] = []
    while clock.now < signed + 60:
        clock.advance(0.5)
        with contextlib.suppress(InvalidToken, VerificationUnavailable):
            verifier.verify(token_at(es, clock, kid=f"noise-{clock.now}"))  # starts any fetch allowed
        try:
            verifier.verify(victim)
        except VerificationUnavailable:
            answers.append("503")
            continue
        except InvalidToken:
            answers.append("401")
            break
    assert answers[-1] == "401"
    assert clock.now - signed <= 30 + 5


class GatedJWKS:
    """A JWK Set on 127.0.0.1 that tests change and count requests to; while ``gate`` is clear,
    answers wait for it (``asked`` is set by each request), so a fetch can be held in flight."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.requests = 0
        self.gate = threading.Event()
        self.gate.set()
        self.asked = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                owner.asked.set()
                owner.gate.wait(120)
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks"

    def hold(self) -> None:
        self.asked.clear()
        self.gate.clear()

    def __enter__(self) -> GatedJWKS:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()


def outcomes(verifier: JWTVerifier, tokens: list[str], server: GatedJWKS) -> list[str]:
    """Verify every token on its own thread, all at once, while the server holds the fetch they
    cause; release it once asked. Each outcome: "ok", "401" or "503"."""
    results: list[str] = []
    barrier = threading.Barrier(len(tokens))

    def attempt(token: str) -> None:
        barrier.wait()
        try:
            verifier.verify(token)
            results.append("ok")
        except InvalidToken:
            results.append("401")
        except VerificationUnavailable:
            results.append("503")

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    assert server.asked.wait(20)
    server.gate.set()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_tokens_signed_with_a_new_key_at_once_share_one_fetch(es: Signer, clock: FakeClock) -> None:
    added = Signer("added", "ES256", ec.generate_private_key(ec.SECP256R1()))
    with GatedJWKS(jwks(es)) as server:
        verifier = remote(server.url, clock)
        verifier.verify(token_at(es, clock))
        server.document = jwks(es, added)
        clock.advance(10)
        server.hold()
        assert outcomes(verifier, [token_at(added, clock) for _ in range(20)], server) == ["ok"] * 20
        assert server.requests == 2


def test_a_flood_of_made_up_kids_costs_one_fetch_per_interval(es: Signer, clock: FakeClock) -> None:
    with GatedJWKS(jwks(es)) as server:
        verifier = remote(server.url, clock)
        verifier.verify(token_at(es, clock))
        for wave in (1, 2, 3):
            clock.advance(5)
            server.hold()
            results = outcomes(verifier, random_kid_tokens(es, clock), server)
            assert set(results) <= {"401", "503"}  # 401 once a fetch made for it shows it absent
            assert server.requests == 1 + wave


def test_a_stale_set_is_refreshed_by_one_thread_while_the_others_go_on(es: Signer, clock: FakeClock) -> None:
    with GatedJWKS(jwks(es)) as server:
        # A timeout longer than the test waits: the held fetch cannot end by itself meanwhile.
        keys = RemoteKeySet(server.url, algorithms=DEFAULT, clock=clock, timeout=120)
        keys.find(es.kid)
        clock.advance(301)  # past max_age
        server.hold()
        refresher = threading.Thread(target=keys.find, args=(es.kid,))
        refresher.start()
        assert server.asked.wait(20)  # the refresh is in flight, held by the server
        found: list[VerificationKey | None] = []
        other = threading.Thread(target=lambda: found.append(keys.find(es.kid)))
        other.start()
        other.join(20)  # with the stale set in hand, it does not wait for the refresh
        went_on = not other.is_alive()
        server.gate.set()
        refresher.join(20)
        other.join(20)
    assert went_on
    assert found[0] is not None and found[0].kid == es.kid
    assert server.requests == 2


def test_a_token_without_a_kid_matches_only_a_lone_key_and_fetches_nothing(
    es: Signer, rs: Signer, server: JWKSServer, clock: FakeClock
) -> None:
    """OpenID Connect Core §10.1: with several keys in the set a kid is required. A token
    without one cannot name a new key, so no fetch could help it: 401 at once, never a fetch."""
    server.document = jwks(es, rs)
    verifier = remote(server.url, clock)
    verifier.verify(token_at(es, clock))
    for _ in range(3):
        clock.advance(31)
        unknown_key(verifier, token_at(es, clock, kid=DROP))
    assert server.requests == 1
    server.document = jwks(es)
    clock.advance(300)  # expired: refetched; a lone key answers for a token without a kid
    assert verifier.verify(token_at(es, clock, kid=DROP)).subject == "user-1"


def test_the_refetch_interval_and_cooldown_must_be_positive() -> None:
    with pytest.raises(KeySetError, match="refetch_interval"):
        RemoteKeySet("https://as.test/jwks", algorithms=DEFAULT, refetch_interval=0)
    with pytest.raises(KeySetError, match="cooldown"):
        RemoteKeySet("https://as.test/jwks", algorithms=DEFAULT, cooldown=-1)
