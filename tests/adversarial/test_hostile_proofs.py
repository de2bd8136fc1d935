"""DPoP proofs (RFC 9449 §4.3), each check broken one at a time, with real keys and a fake clock."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from resource_server.dpop import (
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProof,
    jwk_thumbprint,
    normalize_htu,
)
from resource_server.state import MemoryReplayCache, PerKeyLimit
from resource_server.tokens.errors import InvalidToken, VerificationUnavailable
from tests.adversarial.proofs import TOKEN, URL, check, refuse
from tests.support import DROP, NOW, FakeClock, ProofSigner, b64url, dpop_key


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "PS256", "RS256"])
def test_a_good_proof_is_accepted(algorithm: str, verifier: DPoPVerifier) -> None:
    signer = dpop_key(algorithm)
    proof = check(verifier, signer.proof(access_token=TOKEN))
    assert proof.jkt == signer.jkt and (proof.htm, proof.htu, proof.iat) == ("GET", URL, NOW)


def test_the_thumbprint_is_rfc7638s() -> None:
    """RFC 7638 §3.1's own example key and thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
        "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcR"
        "wr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


BROKEN: dict[str, tuple[Any, str]] = {
    "typ JWT": (lambda k: k.proof(access_token=TOKEN, headers={"typ": "JWT"}), "typ"),
    "typ in upper case": (lambda k: k.proof(access_token=TOKEN, headers={"typ": "DPOP+JWT"}), "typ"),
    "no typ": (lambda k: k.proof(access_token=TOKEN, headers={"typ": DROP}), "typ"),
    "alg not allowed (ES384 name on a P-256 key)": (
        lambda k: k.proof(access_token=TOKEN, headers={"alg": "ES384"}),
        "algorithm",
    ),
    "no jwk": (lambda k: k.proof(access_token=TOKEN, headers={"jwk": DROP}), "jwk"),
    "jwk a string": (lambda k: k.proof(access_token=TOKEN, headers={"jwk": "key"}), "jwk"),
    "jwk with a private d": (
        lambda k: k.proof(access_token=TOKEN, headers={"jwk": {**k.jwk, "d": "AAAA"}}),
        "jwk",
    ),
    "jwk of an oct key": (
        lambda k: k.proof(access_token=TOKEN, headers={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        "jwk",
    ),
    "jwk kty not a string": (
        lambda k: k.proof(access_token=TOKEN, headers={"jwk": {**k.jwk, "kty": ["EC"]}}),
        "jwk",
    ),
    "jwk alg differs": (
        lambda k: k.proof(access_token=TOKEN, headers={"jwk": {**k.jwk, "alg": "RS256"}}),
        "jwk",
    ),
    "jwk of another curve": (
        lambda k: k.proof(access_token=TOKEN, headers={"jwk": {**k.jwk, "crv": "P-384"}}),
        "jwk",
    ),
    "jku beside the jwk": (
        lambda k: k.proof(access_token=TOKEN, headers={"jku": "https://evil.test/k"}),
        "jwk only",
    ),
    "x5c beside the jwk": (lambda k: k.proof(access_token=TOKEN, headers={"x5c": ["MIIB"]}), "jwk only"),
    "kid beside the jwk": (lambda k: k.proof(access_token=TOKEN, headers={"kid": "1"}), "jwk only"),
    "crit": (lambda k: k.proof(access_token=TOKEN, headers={"crit": ["exp"]}), "jwk only"),
    "another method": (lambda k: k.proof("POST", access_token=TOKEN), "method"),
    "method in lower case": (lambda k: k.proof("get", access_token=TOKEN), "method"),
    "no htm": (lambda k: k.proof(access_token=TOKEN, htm=DROP), "method"),
    "another path": (
        lambda k: k.proof(url="https://api.test/orgs/globex/projects", access_token=TOKEN),
        "URL",
    ),
    "another port": (
        lambda k: k.proof(url="https://api.test:8443/orgs/acme/projects", access_token=TOKEN),
        "URL",
    ),
    "another scheme": (
        lambda k: k.proof(url="http://api.test/orgs/acme/projects", access_token=TOKEN),
        "URL",
    ),
    "another host": (
        lambda k: k.proof(url="https://evil.test/orgs/acme/projects", access_token=TOKEN),
        "URL",
    ),
    "a relative htu": (lambda k: k.proof(url="/orgs/acme/projects", access_token=TOKEN), "URL"),
    "htu not a string": (lambda k: k.proof(access_token=TOKEN, htu=["x"]), "URL"),
    "iat far past": (lambda k: k.proof(access_token=TOKEN, now=NOW - 61), "too old"),
    "iat in the future": (lambda k: k.proof(access_token=TOKEN, now=NOW + 6), "future"),
    "iat a string": (lambda k: k.proof(access_token=TOKEN, iat=str(NOW)), "iat"),
    "iat a float": (lambda k: k.proof(access_token=TOKEN, iat=NOW + 0.5), "iat"),
    "iat true": (lambda k: k.proof(access_token=TOKEN, iat=True), "iat"),
    "no iat": (lambda k: k.proof(access_token=TOKEN, iat=DROP), "iat"),
    "no ath": (lambda k: k.proof(), "ath"),
    "ath of another token": (lambda k: k.proof(access_token="another-token"), "ath"),
    "ath not a string": (lambda k: k.proof(access_token=TOKEN, ath=5), "ath"),
    "no jti": (lambda k: k.proof(access_token=TOKEN, jti=DROP), "jti"),
    "empty jti": (lambda k: k.proof(access_token=TOKEN, jti=""), "jti"),
    "jti too long": (lambda k: k.proof(access_token=TOKEN, jti="j" * 257), "jti"),
    # Each identifier is checked for type and characters before it is compared or stored.
    "ath not ASCII": (lambda k: k.proof(ath="é" * 43), "ath"),
    "ath a lone surrogate": (lambda k: k.proof(ath="\ud800" * 43), "ath"),
    "ath of 42 characters": (lambda k: k.proof(ath="A" * 42), "ath"),
    "ath with padding": (lambda k: k.proof(ath=_ath(TOKEN) + "="), "ath"),
    "jti a lone surrogate": (lambda k: k.proof(access_token=TOKEN, jti="\ud800x"), "jti"),
    "jti with a newline": (lambda k: k.proof(access_token=TOKEN, jti="a\nb"), "jti"),
    "jti with a bidi override": (lambda k: k.proof(access_token=TOKEN, jti="\u202ejti"), "jti"),
    "jti a number": (lambda k: k.proof(access_token=TOKEN, jti=7), "jti"),
    "htm not ASCII": (lambda k: k.proof("GÉT", access_token=TOKEN), "method"),
    "htm with a space": (lambda k: k.proof("GET ", access_token=TOKEN), "method"),
    "htu not ASCII": (
        lambda k: k.proof(url="https://api.tést/orgs/acme/projects", access_token=TOKEN),
        "URL",
    ),
    "htu with a space": (lambda k: k.proof(url=URL + " ", access_token=TOKEN), "URL"),
    "nonce not ASCII": (lambda k: k.proof(access_token=TOKEN, nonce="é" * 32), "nonce"),
    "nonce with a quote": (lambda k: k.proof(access_token=TOKEN, nonce='a"b'), "nonce"),
    "nonce a number": (lambda k: k.proof(access_token=TOKEN, nonce=7), "nonce"),
    "nonce empty": (lambda k: k.proof(access_token=TOKEN, nonce=""), "nonce"),
    "signature of another key": (
        lambda k: dpop_key("ES256").proof(access_token=TOKEN, headers={"jwk": k.jwk}),
        "signature",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_check_is_refused(case: str, key: ProofSigner, verifier: DPoPVerifier) -> None:
    make, fragment = BROKEN[case]
    refuse(verifier, make(key), fragment)


def _ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode()).digest())


def test_what_conformant_clients_send_is_accepted(key: ProofSigner, clock: FakeClock) -> None:
    """The checks refuse nothing RFC 9449 allows: a jti of another script (any string, RFC 7519
    §4.1.7) or of 256 characters, any token method (RFC 9110 §9.1), any 1*NQCHAR nonce when the
    server asks for none (RFC 9449 §8.1)."""
    verifier = DPoPVerifier(clock=clock)
    for jti in ("jti-ünïcödé-用户", "j" * 256, "a b", "550e8400-e29b-41d4-a716-446655440000"):
        check(verifier, key.proof(access_token=TOKEN, jti=jti))
    assert check(verifier, key.proof("PROPFIND", access_token=TOKEN), method="PROPFIND").htm == "PROPFIND"
    nonce = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
    assert check(verifier, key.proof(access_token=TOKEN, nonce=nonce)).nonce == nonce


def raw_proof(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


def claims_for(**extra: Any) -> dict[str, Any]:
    return {"jti": "j-1", "htm": "GET", "htu": URL, "iat": NOW, **extra}


def test_alg_none_and_hmac_are_refused(key: ProofSigner, verifier: DPoPVerifier) -> None:
    unsigned = raw_proof({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}, claims_for()) + "AA"
    refuse(verifier, unsigned, "algorithm")
    secret = b"s" * 32
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64url(secret)}}
    signing_input = raw_proof(header, claims_for()).rsplit(".", 1)[0]
    mac = jwt.get_algorithm_by_name("HS256").sign(signing_input.encode(), secret)
    refuse(verifier, f"{signing_input}.{b64url(mac)}", "algorithm")
    with pytest.raises(ValueError):
        DPoPVerifier(algorithms=["HS256"])
    with pytest.raises(ValueError):
        DPoPVerifier(algorithms="ES256")


@pytest.mark.parametrize(
    "proof",
    [None, "", 7, "a.b", "a.b.c.d", "!!!.b.c", "x" * 5000, "e30.e30.", "bm90IGpzb24.e30.AA"],
    ids=[
        "None",
        "empty",
        "int",
        "two segments",
        "four segments",
        "bad base64",
        "oversized",
        "empty signature",
        "header not JSON",
    ],
)
def test_malformed_proofs_are_refused(proof: Any, verifier: DPoPVerifier) -> None:
    with pytest.raises(InvalidDPoPProof):
        check(verifier, proof)


def test_a_proof_is_used_once_per_key(key: ProofSigner, verifier: DPoPVerifier) -> None:
    proof = key.proof(access_token=TOKEN, jti="once")
    check(verifier, proof)
    refuse(verifier, proof, "used before")
    # The same jti from another key is another proof (the replay key is thumbprint + jti).
    check(verifier, dpop_key("ES256").proof(access_token=TOKEN, jti="once"))


def test_a_refused_proof_does_not_burn_its_jti(key: ProofSigner, verifier: DPoPVerifier) -> None:
    refuse(verifier, key.proof("POST", access_token=TOKEN, jti="kept"), "method")
    check(verifier, key.proof(access_token=TOKEN, jti="kept"))


def test_a_replay_entry_lives_until_the_proof_could_no_longer_be_accepted(
    key: ProofSigner, clock: FakeClock
) -> None:
    cache = MemoryReplayCache(clock=clock)
    verifier = DPoPVerifier(clock=clock, replay_cache=cache)
    proof = key.proof(access_token=TOKEN, jti="late", now=NOW)
    check(verifier, proof)
    clock.advance(60)  # iat + max_age: still acceptable, still remembered
    refuse(verifier, proof, "used before")
    clock.advance(6)  # past iat + max_age + leeway: too old anyway, and forgotten
    refuse(verifier, proof, "too old")
    assert cache.seen(f"{key.jkt}:other", NOW + 1) is False and len(cache._expiry) == 1


def test_iat_bounds_are_inclusive(key: ProofSigner, verifier: DPoPVerifier) -> None:
    check(verifier, key.proof(access_token=TOKEN, now=NOW - 60))
    check(verifier, key.proof(access_token=TOKEN, now=NOW + 5))


@pytest.mark.parametrize(
    ("htu", "url"),
    [
        ("https://API.test/orgs/acme/projects", URL),
        ("HTTPS://api.test:443/orgs/acme/projects", URL),
        ("https://api.test/orgs/acme/projects?x=1#f", URL),
        (URL, "https://api.test/orgs/acme/projects?page=2"),
        ("https://api.test/orgs/%61cme/projects", URL),  # an unreserved character, encoded
        ("https://api.test/a%2fb", "https://api.test/a%2Fb"),  # hex case
        ("http://127.0.0.1:80", "http://127.0.0.1/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_urls_compare_after_rfc3986_normalization(
    htu: str, url: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    check(verifier, key.proof(url=htu, access_token=TOKEN), url=url)


@pytest.mark.parametrize(
    ("htu", "url"),
    [
        ("https://api.test/a%2Fb", "https://api.test/a/b"),  # an encoded slash is not a slash
        ("https://api.test/orgs/acme/projects/", URL),
        ("https://user@api.test/orgs/acme/projects", URL),
        ("https://api.test:99999/orgs/acme/projects", URL),
    ],
)
def test_urls_that_differ_after_normalization_are_refused(
    htu: str, url: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    refuse(verifier, key.proof(url=htu, access_token=TOKEN), "URL", url=url)


def test_normalize_htu_refuses_what_is_not_an_http_url() -> None:
    for bad in ("ftp://a/b", "//a/b", "/a", "https://", "https://u:p@a/"):
        with pytest.raises(ValueError):
            normalize_htu(bad)


# -- nonces ----------------------------------------------------------------------------------------


def test_nonces_are_stateless_and_windowed() -> None:
    nonces, twin = DPoPNonces(b"n" * 32, ttl=60), DPoPNonces(b"n" * 32, ttl=60)
    now = float(NOW - NOW % 60)  # the start of a window
    first = nonces.current(now)
    assert twin.accepts(first, now)  # another worker with the secret, no shared state
    assert nonces.accepts(first, now + 119)  # this window and the next
    assert not nonces.accepts(first, now + 120)
    assert not nonces.accepts(first, now - 1)  # the window before it
    assert not DPoPNonces(b"o" * 32, ttl=60).accepts(first, now)
    for bad in (None, 5, "", first[:-1], first + "A"):
        assert not nonces.accepts(bad, now)
    for secret in (b"short", "s" * 40):
        with pytest.raises(ValueError):
            DPoPNonces(secret)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DPoPNonces(b"n" * 32, ttl=0)


def test_a_proof_without_the_nonce_is_told_the_nonce(key: ProofSigner, clock: FakeClock) -> None:
    nonces = DPoPNonces(b"n" * 32, ttl=60)
    verifier = DPoPVerifier(clock=clock, nonces=nonces)
    with pytest.raises(DPoPNonceRequired) as caught:
        check(verifier, key.proof(access_token=TOKEN))
    nonce = caught.value.nonce
    assert nonce == nonces.current(clock())
    with pytest.raises(DPoPNonceRequired):
        check(verifier, key.proof(access_token=TOKEN, nonce="stale-or-made-up"))
    accepted = check(verifier, key.proof(access_token=TOKEN, nonce=nonce))
    assert accepted.nonce == nonce and accepted.fresh_nonce is None
    clock.advance(60)  # the next window: still accepted, and a fresh nonce is offered
    later = check(verifier, key.proof(access_token=TOKEN, nonce=nonce, now=int(clock())))
    assert later.fresh_nonce == nonces.current(clock()) != nonce
    clock.advance(60)
    with pytest.raises(DPoPNonceRequired):
        check(verifier, key.proof(access_token=TOKEN, nonce=nonce, now=int(clock())))


def test_keys_are_parsed_once_per_thumbprint(key: ProofSigner, verifier: DPoPVerifier) -> None:
    check(verifier, key.proof(access_token=TOKEN))
    cached = dict(verifier._keys)
    check(verifier, key.proof(access_token=TOKEN))
    assert verifier._keys == cached and len(cached) == 1


def test_an_rsa_key_under_2048_bits_is_refused(verifier: DPoPVerifier) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = ProofSigner("RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    refuse(verifier, weak.proof(access_token=TOKEN), "jwk")


def test_a_p256_proof_with_a_p384_key_is_refused(verifier: DPoPVerifier) -> None:
    signer = ProofSigner("ES256", ec.generate_private_key(ec.SECP256R1()))
    other = json.loads(
        jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())
    )
    refuse(verifier, signer.proof(access_token=TOKEN, headers={"jwk": other}), "jwk")


def test_a_private_jwk_is_refused_even_once_its_public_key_is_known(
    key: ProofSigner, verifier: DPoPVerifier
) -> None:
    """The key cache is keyed on the thumbprint, which ignores ``d``: the private-member check
    must run before the cache is asked, not only when a key is first loaded."""
    check(verifier, key.proof(access_token=TOKEN))  # the public key is cached now
    leaked = {**key.jwk, "d": "AAAA"}
    refuse(verifier, key.proof(access_token=TOKEN, headers={"jwk": leaked}), "private")


def test_a_nonce_of_other_characters_is_malformed_and_never_compared(
    key: ProofSigner, clock: FakeClock
) -> None:
    """``hmac.compare_digest`` raises TypeError on a non-ASCII str: such a nonce is refused as
    malformed (invalid_dpop_proof) before any comparison; a well-formed unknown one is told the
    current nonce (use_dpop_nonce, RFC 9449 §9)."""
    nonces = DPoPNonces(b"n" * 32, ttl=60)
    verifier = DPoPVerifier(clock=clock, nonces=nonces)
    for bad in ("é" * 32, "\udfff" * 32, "a" * 31 + "\x00"):
        error = refuse(verifier, key.proof(access_token=TOKEN, nonce=bad), "nonce")
        assert not isinstance(error, DPoPNonceRequired)
        assert not nonces.accepts(bad, clock()) and not nonces.is_current(bad, clock())
    with pytest.raises(DPoPNonceRequired):
        check(verifier, key.proof(access_token=TOKEN, nonce="A" * 32))


# -- the key the token is bound to (cnf.jkt), compared before the jti is recorded ------------------


def test_a_proof_by_another_key_is_refused_before_its_jti_is_recorded(
    key: ProofSigner, verifier: DPoPVerifier
) -> None:
    proof = key.proof(access_token=TOKEN, jti="kept-for-the-right-key")
    for other in (dpop_key("ES256").jkt, "é" * 43, "\ud800" * 43, "", "x"):
        with pytest.raises(DPoPKeyMismatch) as caught:
            verifier.verify(proof, method="GET", url=URL, access_token=TOKEN, jkt=other)
        assert isinstance(caught.value, InvalidToken) and "another key" in caught.value.description
    # Nothing was recorded: the proof is still good for the key it names.
    assert verifier.verify(proof, method="GET", url=URL, access_token=TOKEN, jkt=key.jkt).jkt == key.jkt


# -- the replay cache: one key's share, and caches that fail --------------------------------------


def test_one_key_holds_at_most_its_share_of_the_replay_cache(key: ProofSigner, clock: FakeClock) -> None:
    """A tenth of a MemoryReplayCache by default: the eleventh proof of a key whose ten are
    live is 503 (not a replay, nothing forgotten), and the other keys fill the rest."""
    cache = MemoryReplayCache(max_entries=100, clock=clock)
    verifier = DPoPVerifier(clock=clock, replay_cache=cache)
    assert verifier.max_proofs_per_key == 10
    accepted = [check(verifier, key.proof(access_token=TOKEN)) for _ in range(10)]
    for _ in range(50):
        with pytest.raises(VerificationUnavailable) as full:
            check(verifier, key.proof(access_token=TOKEN))
        assert full.value.retry_after == 65  # until the key's oldest proof can no longer be used
    for other in (dpop_key("ES256") for _ in range(9)):
        for _ in range(10):
            check(verifier, other.proof(access_token=TOKEN))
    replayed = key.proof(access_token=TOKEN, jti=accepted[0].jti)
    with pytest.raises(VerificationUnavailable):  # the key is at its limit: refused, still not accepted
        check(verifier, replayed)
    clock.advance(65)
    check(verifier, key.proof(access_token=TOKEN, now=int(clock())))


def test_the_share_is_configurable_and_checked(clock: FakeClock) -> None:
    assert DPoPVerifier(clock=clock).max_proofs_per_key == 10_000  # a tenth of the default cache
    assert DPoPVerifier(clock=clock, max_proofs_per_key=3).max_proofs_per_key == 3
    for bad in (0, -1, True, 2.5, "10"):
        with pytest.raises(ValueError, match="max_proofs_per_key"):
            DPoPVerifier(clock=clock, max_proofs_per_key=bad)  # type: ignore[arg-type]


def test_a_replay_that_is_refused_gives_its_place_back(key: ProofSigner, clock: FakeClock) -> None:
    verifier = DPoPVerifier(clock=clock, max_proofs_per_key=2)
    proof = key.proof(access_token=TOKEN)
    check(verifier, proof)
    for _ in range(5):
        refuse(verifier, proof, "used before")  # each takes a place and gives it back
    check(verifier, key.proof(access_token=TOKEN))


def test_a_replay_cache_that_raises_is_503_and_takes_no_place(key: ProofSigner, clock: FakeClock) -> None:
    """An application's cache that raises anything: the proof is unchecked (503), never a 500
    and never accepted; the place it took is given back."""

    class Flaky:
        def __init__(self) -> None:
            self.down = True
            self.kept: set[str] = set()

        def seen(self, jti: str, exp: float) -> bool:
            if self.down:
                raise ConnectionResetError("the application's store is down")
            if jti in self.kept:
                return True
            self.kept.add(jti)
            return False

    cache = Flaky()
    verifier = DPoPVerifier(clock=clock, replay_cache=cache, max_proofs_per_key=1)
    for _ in range(3):
        with pytest.raises(VerificationUnavailable):
            check(verifier, key.proof(access_token=TOKEN))
    cache.down = False
    check(verifier, key.proof(access_token=TOKEN))  # the failed attempts hold no place


def test_per_key_places_free_at_their_second_and_the_key_is_forgotten(clock: FakeClock) -> None:
    limit = PerKeyLimit(2, clock)
    limit.take("a", NOW + 10.2)  # held until NOW + 11, never less than the entry lives
    limit.take("a", NOW + 20)
    with pytest.raises(VerificationUnavailable) as full:
        limit.take("a", NOW + 30)
    assert full.value.retry_after == 11
    limit.take("b", NOW + 30)  # another key is not touched
    clock.advance(10.5)
    with pytest.raises(VerificationUnavailable):
        limit.take("a", NOW + 40)  # the entry may still live until NOW + 10.2: not yet
    clock.advance(0.5)
    limit.take("a", NOW + 40)
    limit.give_back("a", NOW + 40)
    limit.give_back("a", NOW + 40)  # giving back what is not held changes nothing
    clock.advance(30)
    limit.take("c", NOW + 100)
    assert set(limit._keys) == {"c"}  # keys with no live place are forgotten: memory stays bounded
    with pytest.raises(ValueError):
        PerKeyLimit(0, clock)
