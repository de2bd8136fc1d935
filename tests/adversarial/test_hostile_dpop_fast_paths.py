"""The DPoP proof check's fast paths (RFC 9449 §4.3), each against what would break it.

What a client's proofs repeat is checked once and then found: the header segment (its key
checked and loaded), the public key (by the RFC 7638 thumbprint's input), the request URL (its
normalized form), the access token (its ``ath``). Each cache is bounded and keyed on the exact
input, so another key, URL or token never gets an answer made for the first, and nothing a proof
says alone is cached: a replayed proof is still refused. A proof is split and decoded in one
pass; ECDSA signatures are re-encoded to DER without integer conversions.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.utils import der_to_raw_signature

from resource_server import dpop
from resource_server.dpop import (
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProof,
    jwk_thumbprint,
    normalize_htu,
)
from resource_server.tokens.errors import VerificationUnavailable
from resource_server.tokens.jwk import load_key
from tests.adversarial.proofs import TOKEN, URL, check, refuse
from tests.support import FakeClock, ProofSigner, b64url, dpop_key

# -- the access token's hash (ath) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [TOKEN + "x", TOKEN[:-1], TOKEN.upper(), TOKEN[:-1] + "v", " " + TOKEN, TOKEN + "\x00"],
    ids=["longer", "a prefix", "upper case", "last character", "a leading space", "a NUL after"],
)
def test_an_ath_found_for_one_token_never_answers_for_another(
    other: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    check(verifier, key.proof(access_token=TOKEN))  # TOKEN's ath is kept now
    refuse(verifier, key.proof(access_token=TOKEN), "ath", token=other)
    check(verifier, key.proof(access_token=other), token=other)  # its own ath, kept beside
    refuse(verifier, key.proof(access_token=other), "ath")  # and it does not answer for TOKEN
    check(verifier, key.proof(access_token=TOKEN))


def test_the_ath_cache_is_bounded_and_an_evicted_token_is_hashed_again(
    key: ProofSigner, verifier: DPoPVerifier
) -> None:
    tokens = [f"token-{n:04d}" for n in range(dpop._CACHED_TOKENS + 10)]
    for token in tokens:
        check(verifier, key.proof(access_token=token), token=token)
        assert len(verifier._hashes) <= dpop._CACHED_TOKENS
    check(verifier, key.proof(access_token=tokens[0]), token=tokens[0])
    refuse(verifier, key.proof(access_token=tokens[1]), "ath", token=tokens[0])


# -- the request URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        URL + "/",
        "https://api.test/orgs/acme/Projects",
        "https://api.test:8443/orgs/acme/projects",
        "http://api.test/orgs/acme/projects",
        "https://api.test/orgs/acme/projects%2F",
        "https://api.test/orgs/acme",
    ],
)
def test_a_url_found_for_one_request_url_never_answers_for_another(
    other: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    check(verifier, key.proof(url=URL, access_token=TOKEN))  # URL's form is kept now
    check(verifier, key.proof(url=other, access_token=TOKEN), url=other)  # and other's
    refuse(verifier, key.proof(url=URL, access_token=TOKEN), "URL", url=other)
    refuse(verifier, key.proof(url=other, access_token=TOKEN), "URL")


@pytest.mark.parametrize(
    "url",
    ["ftp://api.test/x", "/orgs/acme/projects", "https://", "http://api.test:0/x", "https://u@api.test/x"],
)
def test_a_request_url_that_is_not_an_http_url_is_refused_each_time(
    url: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    """Kept as "no URL", never as a URL: the proof naming it exactly is refused, again and again."""
    for _ in range(2):
        refuse(verifier, key.proof(url=url, access_token=TOKEN), "URL", url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.test/orgs/acme projects",
        "https://api.tést/orgs",
        "https://api.test/a\x7fb",
        "https://api.test/é",
    ],
)
def test_an_htu_equal_to_a_request_url_of_other_characters_is_refused(
    url: str, key: ProofSigner, verifier: DPoPVerifier
) -> None:
    """htu is a URI (RFC 9110 §7.1: printable ASCII): equal to the request URL, it is not checked
    again, so the request URL's own characters are, when it is kept."""
    for _ in range(2):
        refuse(verifier, key.proof(url=url, access_token=TOKEN), "URL", url=url)


def test_port_0_is_no_request_url() -> None:
    with pytest.raises(ValueError):
        normalize_htu("http://api.test:0/orgs")
    assert normalize_htu("http://api.test:8080/orgs") == "http://api.test:8080/orgs"


def test_a_normalized_match_is_found_once_the_url_is_kept(key: ProofSigner, verifier: DPoPVerifier) -> None:
    check(verifier, key.proof(url=URL, access_token=TOKEN))
    check(verifier, key.proof(url="HTTPS://API.test:443/orgs/%61cme/projects", access_token=TOKEN))
    refuse(verifier, key.proof(url="HTTPS://API.test:443/orgs/%61cme/projects/", access_token=TOKEN), "URL")


def test_the_url_cache_is_bounded(key: ProofSigner, verifier: DPoPVerifier) -> None:
    for n in range(dpop._CACHED + 10):
        url = f"https://api.test/orgs/acme/projects/{n}"
        check(verifier, key.proof(url=url, access_token=TOKEN), url=url)
        assert len(verifier._urls) <= dpop._CACHED
    check(verifier, key.proof(url=URL, access_token=TOKEN))


# -- the header and the key ---------------------------------------------------------------------------


def test_a_cached_header_never_vouches_for_a_signature_by_another_key(
    key: ProofSigner, verifier: DPoPVerifier
) -> None:
    check(verifier, key.proof(access_token=TOKEN))  # the header with key's jwk is cached now
    thief = dpop_key("ES256")
    forged = thief.proof(access_token=TOKEN, headers={"jwk": key.jwk})  # the same header text
    assert forged.split(".")[0] == key.proof(access_token=TOKEN).split(".")[0]
    refuse(verifier, forged, "signature")
    check(verifier, thief.proof(access_token=TOKEN))  # its own header: its own key


def test_another_spelling_of_the_header_is_checked_on_its_own(
    key: ProofSigner, verifier: DPoPVerifier
) -> None:
    """The same key in another header text: checked again (never found by another spelling),
    loaded once (by the thumbprint's input, which ignores members other than the key's)."""
    check(verifier, key.proof(access_token=TOKEN))
    respelled = {"y": key.jwk["y"], "x": key.jwk["x"], "crv": "P-256", "kty": "EC", "use": "sig"}
    proof = check(verifier, key.proof(access_token=TOKEN, headers={"jwk": respelled}))
    assert proof.jkt == key.jkt and len(verifier._headers) == 2 and len(verifier._keys) == 1
    for bad, fragment in (({**respelled, "d": "AAAA"}, "private"), ({**respelled, "crv": "P-384"}, "jwk")):
        refuse(verifier, key.proof(access_token=TOKEN, headers={"jwk": bad}), fragment)
    refuse(verifier, key.proof(access_token=TOKEN, headers={"typ": "jwt"}), "typ")


def test_a_loaded_key_is_found_only_by_its_own_members(verifier: DPoPVerifier) -> None:
    signers = [dpop_key("ES256") for _ in range(3)]
    for signer in signers:
        assert check(verifier, signer.proof(access_token=TOKEN)).jkt == signer.jkt
    for (canonical, alg), (jkt, loaded) in verifier._keys.items():
        assert alg == "ES256" and jkt == jwk_thumbprint(json.loads(canonical))
        assert loaded.key.public_numbers().x == int.from_bytes(_unb64(json.loads(canonical)["x"]), "big")
    assert len(verifier._keys) == 3


def test_the_header_and_key_caches_are_bounded(key: ProofSigner, verifier: DPoPVerifier) -> None:
    for n in range(dpop._CACHED + 10):
        check(verifier, key.proof(access_token=TOKEN, headers={"n": n}))  # a new header text each
        assert len(verifier._headers) <= dpop._CACHED
    assert len(verifier._keys) == 1
    check(verifier, key.proof(access_token=TOKEN))


# -- nothing a proof says alone is cached -------------------------------------------------------------


def test_a_replayed_proof_is_refused_with_every_cache_warm(key: ProofSigner, verifier: DPoPVerifier) -> None:
    proofs = [key.proof(access_token=TOKEN) for _ in range(3)]
    for proof in proofs:
        check(verifier, proof)
    for proof in proofs:
        refuse(verifier, proof, "used before")
        with pytest.raises(InvalidDPoPProof, match="used before"):
            verifier.check(proof, method="GET", url=URL, access_token=TOKEN)


def test_check_refuses_what_verify_refuses_and_returns_the_fresh_nonce(
    key: ProofSigner, clock: FakeClock
) -> None:
    nonces = DPoPNonces(b"n" * 32, ttl=60)
    verifier = DPoPVerifier(clock=clock, nonces=nonces)
    request = {"method": "GET", "url": URL, "access_token": TOKEN}
    with pytest.raises(DPoPNonceRequired):
        verifier.check(key.proof(access_token=TOKEN), **request)
    nonce = nonces.current(clock())
    assert verifier.check(key.proof(access_token=TOKEN, nonce=nonce), **request) is None
    with pytest.raises(DPoPKeyMismatch):
        verifier.check(key.proof(access_token=TOKEN, nonce=nonce), **request, jkt=dpop_key("ES256").jkt)
    with pytest.raises(InvalidDPoPProof, match="method"):
        verifier.check(key.proof("POST", access_token=TOKEN, nonce=nonce), **request)
    clock.advance(60)
    later = key.proof(access_token=TOKEN, nonce=nonce, now=int(clock()))
    assert verifier.check(later, **request, jkt=key.jkt) == nonces.current(clock()) != nonce


# -- one pass to split and decode ---------------------------------------------------------------------


def _respelled(proof: str, segment: int, change: Any) -> str:
    parts = proof.split(".")
    parts[segment] = change(parts[segment])
    return ".".join(parts)


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    "change",
    [
        lambda s: s + "=",  # padding (RFC 7515 §2: none)
        lambda s: s + "==",
        lambda s: s[:-1] + "+",  # standard base64, not base64url
        lambda s: s[:-1] + "/",
        lambda s: s[:10] + " " + s[10:],
        lambda s: s[:10] + "\n" + s[10:],
        lambda s: s[:10] + "é" + s[10:],
        lambda s: s[:10] + "!" + s[10:],
        lambda s: s + "A",  # a length no base64 text has (4n + 1) or another signature
        lambda s: "",
    ],
    ids=["pad", "pad2", "plus", "slash", "space", "newline", "non-ASCII", "bang", "longer", "empty"],
)
def test_a_segment_that_is_not_base64url_is_refused_cached_header_or_not(
    segment: int, change: Any, key: ProofSigner, clock: FakeClock
) -> None:
    for warm in (False, True):
        verifier = DPoPVerifier(clock=clock)
        if warm:
            check(verifier, key.proof(access_token=TOKEN))  # the header is cached
        with pytest.raises(InvalidDPoPProof):
            check(verifier, _respelled(key.proof(access_token=TOKEN), segment, change))


def test_a_proof_of_other_than_three_segments_is_refused(key: ProofSigner, verifier: DPoPVerifier) -> None:
    proof = key.proof(access_token=TOKEN)
    check(verifier, key.proof(access_token=TOKEN))
    header, payload, signature = proof.split(".")
    for bad in (
        proof + ".",
        "." + proof,
        proof.replace(".", "..", 1),
        f"{header}.{payload}",
        f".{payload}.{signature}",
        f"{header}..{signature}",
        f"{header}.{payload}.",
    ):
        refuse(verifier, bad, "compact")


# -- ECDSA signatures in DER ----------------------------------------------------------------------------


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("half", [32, 48, 66], ids=["P-256", "P-384", "P-521"])
def test_the_der_encoding_is_the_reference_one_for_every_leading_byte(half: int) -> None:
    """Every pair of first bytes that matters (zero, top bit clear, top bit set; a zero run),
    against ``cryptography``'s own encoder."""
    from resource_server.tokens.jwk import _der_signature

    der = _der_signature(half)
    for r_first in (b"\x00\x00\x01", b"\x00\x80", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff"):
        for s_first in (b"\x00\x00\x00", b"\x00\xff", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff"):
            signature = (r_first + b"\x5a" * half)[:half] + (s_first + b"\xa5" * half)[:half]
            r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            assert der(signature) == encode_dss_signature(r, s), (r_first, s_first)


@pytest.mark.parametrize(
    ("curve", "alg"), [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")]
)
def test_real_signatures_verify_and_altered_ones_do_not(curve: ec.EllipticCurve, alg: str) -> None:
    private = ec.generate_private_key(curve)
    numbers = private.public_key().public_numbers()
    size = (curve.key_size + 7) // 8
    jwk = {
        "kty": "EC",
        "crv": {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg],
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
    }
    verify = load_key(jwk, {alg}).verify
    digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
    for n in range(64):
        data = f"signing input {n}".encode()
        raw = der_to_raw_signature(private.sign(data, ec.ECDSA(digest)), curve)
        assert verify(data, raw)
        assert not verify(data + b"!", raw)
        assert not verify(data, raw[:-1] + bytes([raw[-1] ^ 1]))
    zero = bytes(size)
    for bad in (zero * 2, zero + b"\x01" * size, b"\x01" * size + zero, b"\xff" * 2 * size, b"", zero):
        assert not verify(b"data", bad)  # refused, never an exception


# -- checks by C calls, against the grammars they stand for ---------------------------------------------


def _samples() -> list[Any]:
    chars = [chr(c) for c in range(0x180)] + ["\u2028", "\u202e", "\ud800", "\ufeff", "用"]
    words = ["GET", "PROPFIND", "M-SEARCH", "get", "GET ", " GET", "GÉT", "", "a b", "x" * 300]
    return [
        *chars,
        *(f"GET{c}" for c in chars),
        *(f"{c}jti" for c in chars),
        *words,
        None,
        7,
        ["GET"],
        b"GET",
    ]


def test_is_method_is_the_token_grammar() -> None:
    from resource_server.dpop_claims import METHOD, is_method, matches

    for value in _samples():
        assert is_method(value) == matches(value, METHOD), repr(value)


def test_is_jti_is_the_printable_identifier_check() -> None:
    from resource_server.dpop_claims import MAX_JTI, is_jti
    from resource_server.tokens.jws import is_printable_identifier

    for value in _samples():
        expected = isinstance(value, str) and 0 < len(value) <= MAX_JTI and is_printable_identifier(value)
        assert is_jti(value) == expected, repr(value)


def test_check_asks_a_subclass_through_its_own_verify(key: ProofSigner, clock: FakeClock) -> None:
    """An application's own rule, added by overriding ``verify``, is never skipped by ``check``."""

    class NoPost(DPoPVerifier):
        def verify(self, proof: str, **request: Any) -> Any:
            if request["method"] == "POST":
                raise InvalidDPoPProof("this application takes no POST")
            return super().verify(proof, **request)

    verifier = NoPost(clock=clock)
    with pytest.raises(InvalidDPoPProof, match="no POST"):
        verifier.check(key.proof("POST", access_token=TOKEN), method="POST", url=URL, access_token=TOKEN)
    assert verifier.check(key.proof(access_token=TOKEN), method="GET", url=URL, access_token=TOKEN) is None


def test_check_asks_a_verify_set_on_the_instance(key: ProofSigner, clock: FakeClock) -> None:
    """The same rule, attached to one verifier rather than a subclass, is asked too."""
    verifier = DPoPVerifier(clock=clock)
    inner = verifier.verify

    def no_post(proof: str, **request: Any) -> Any:
        if request["method"] == "POST":
            raise InvalidDPoPProof("this application takes no POST")
        return inner(proof, **request)

    verifier.verify = no_post  # type: ignore[method-assign]  # the application's own rule, on purpose
    with pytest.raises(InvalidDPoPProof, match="no POST"):
        verifier.check(key.proof("POST", access_token=TOKEN), method="POST", url=URL, access_token=TOKEN)
    assert verifier.check(key.proof(access_token=TOKEN), method="GET", url=URL, access_token=TOKEN) is None


def test_a_failing_clock_in_the_replay_record_is_a_503_that_holds_no_place(key: ProofSigner) -> None:
    """The memory replay cache reads the verifier's clock too: when that read fails, the cache
    has not answered (503, never a 500), and the key's place is given back, so the next proof
    is recorded rather than refused as one too many."""
    clock, reads = FakeClock(), [0]

    def flaky() -> float:
        reads[0] += 1
        if reads[0] == 3:  # the replay cache's read, in the first proof
            raise OSError("clock source unavailable")
        return clock()

    verifier = DPoPVerifier(clock=flaky, max_proofs_per_key=1)
    with pytest.raises(VerificationUnavailable, match="the replay cache failed"):
        verifier.check(key.proof(access_token=TOKEN), method="GET", url=URL, access_token=TOKEN)
    assert verifier.check(key.proof(access_token=TOKEN), method="GET", url=URL, access_token=TOKEN) is None
