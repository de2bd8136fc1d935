"""DPoP on the client side (RFC 9449): :class:`DPoPKey` proofs checked by the real
:class:`DPoPVerifier`, and the step-up adapters (httpx and httpx2, sync and async; requests) over
real HTTP against a loopback API that verifies every proof against its method, URL and token, binds
tokens to keys, asks for nonces (RFC 9449 §9) and asks for more scopes (RFC 6750 §3.1)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import httpx2
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.wsgi import get_current_url

from policy import Challenge, format_challenge
from resource_server.client import DPoPKey, RequestsStepUpAuth, StepUpAuth, insufficient_scope
from resource_server.dpop import (
    DPOP_ALGORITHMS,
    DPoPNonceRequired,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProof,
    jwk_thumbprint,
)
from resource_server.tokens.keys import ASYMMETRIC_ALGORITHMS
from tests.resource_server.test_keys import rsa_key_with_exponent
from tests.support import NOW, FakeClock, b64url, dpop_key, serve_wsgi

ALL_ALGORITHMS = sorted(ASYMMETRIC_ALGORITHMS)
SECRET_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
PUBLIC_MEMBERS = {"EC": {"kty", "crv", "x", "y"}, "RSA": {"kty", "n", "e"}, "OKP": {"kty", "crv", "x"}}
CLIENTS = ["httpx", "httpx-async", "httpx2", "httpx2-async", "requests"]
HTTPX = {"httpx": httpx, "httpx2": httpx2}


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key for the RSA algorithms that are not generated on purpose: generation is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_for(alg: str, rsa_private_key: rsa.RSAPrivateKey, clock: Callable[[], float]) -> DPoPKey:
    if alg[:2] in ("RS", "PS") and alg not in ("RS256", "PS256"):
        return DPoPKey(rsa_private_key, alg, clock=clock)
    return DPoPKey.generate(alg, clock=clock)


def parts_of(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a proof, unverified (the verifier has its own test)."""
    return jwt.get_unverified_header(proof), jwt.decode(proof, options={"verify_signature": False})


# -- the key and its proofs --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_proofs_verify_for_every_algorithm(alg: str, rsa_private_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    key = key_for(alg, rsa_private_key, clock)
    verifier = DPoPVerifier(algorithms=ALL_ALGORITHMS, clock=clock)
    url = "https://api.test/orgs/acme/projects"
    proof = key.proof("POST", url, access_token="tok-1")
    verified = verifier.verify(proof, method="POST", url=url, access_token="tok-1")
    assert verified.jkt == key.jkt == jwk_thumbprint(key.public_jwk)
    assert (verified.htm, verified.htu, verified.iat, verified.nonce) == ("POST", url, NOW, None)
    header, claims = parts_of(proof)
    assert header == {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk}
    assert set(claims) == {"jti", "htm", "htu", "iat", "ath"}
    assert claims["ath"] == b64url(hashlib.sha256(b"tok-1").digest())
    # Bound to that token, method and URL: anything else is refused.
    for method, other, token in [
        ("GET", url, "tok-1"),
        ("POST", url + "/1", "tok-1"),
        ("POST", url, "tok-2"),
    ]:
        with pytest.raises(InvalidDPoPProof):
            DPoPVerifier(algorithms=ALL_ALGORITHMS, clock=clock).verify(
                proof, method=method, url=other, access_token=token
            )


@pytest.mark.parametrize("alg", DPOP_ALGORITHMS)
def test_generated_keys_are_what_the_default_verifier_accepts(alg: str) -> None:
    key = DPoPKey.generate(alg, clock=FakeClock())
    assert key.alg == alg
    if alg in ("RS256", "PS256"):
        assert int.from_bytes(jwt.utils.base64url_decode(key.public_jwk["n"]), "big").bit_length() >= 2048
    url = "https://api.test/p"
    DPoPVerifier(clock=FakeClock()).verify(key.proof("GET", url), method="GET", url=url, access_token=None)


def test_the_thumbprint_of_the_rfc_8037_example_key() -> None:
    """RFC 8037 Appendix A.1 (the private key) and A.3 (its RFC 7638 thumbprint): a value
    computed elsewhere, so client and server cannot agree on a wrong thumbprint."""
    key = DPoPKey.from_jwk(
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    )
    assert key.alg == "EdDSA"
    assert key.jkt == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert key.public_jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }


@pytest.mark.parametrize("alg", DPOP_ALGORITHMS)
def test_a_key_loaded_from_pem_has_the_servers_thumbprint(alg: str) -> None:
    """The test suite's own proof signer (tests.support) and DPoPKey agree on the key's jkt."""
    signer = dpop_key(alg)
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = DPoPKey.from_pem(pem, alg=alg, clock=FakeClock())
    assert key.jkt == signer.jkt
    assert key.public_jwk == {name: signer.jwk[name] for name in PUBLIC_MEMBERS[signer.jwk["kty"]]}


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_jwk_and_pem_round_trips(alg: str, rsa_private_key: rsa.RSAPrivateKey) -> None:
    key = key_for(alg, rsa_private_key, FakeClock())
    from_jwk = DPoPKey.from_jwk(key.private_jwk())  # the JWK names its alg: PS256 stays PS256
    assert (from_jwk.jkt, from_jwk.alg) == (key.jkt, alg)
    from_pem = DPoPKey.from_pem(key.private_pem(), alg=alg)
    assert (from_pem.jkt, from_pem.alg) == (key.jkt, alg)
    encrypted = key.private_pem(password=b"correct horse battery staple")
    assert b"ENCRYPTED" in encrypted
    assert DPoPKey.from_pem(encrypted, b"correct horse battery staple", alg=alg).jkt == key.jkt
    with pytest.raises(ValueError, match="PEM"):
        DPoPKey.from_pem(encrypted, b"wrong")


@pytest.mark.parametrize(
    ("private_key", "implied"),
    [
        (lambda rsa_key: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda rsa_key: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda rsa_key: ec.generate_private_key(ec.SECP521R1()), "ES512"),
        (lambda rsa_key: rsa_key, "RS256"),
    ],
)
def test_the_key_implies_the_algorithm(
    private_key: Callable[[Any], Any], implied: str, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    key = private_key(rsa_private_key)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert DPoPKey.from_pem(pem).alg == implied
    jwk = DPoPKey(key).private_jwk()
    del jwk["alg"]
    assert DPoPKey.from_jwk(jwk).alg == implied


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_private_members_never_reach_a_proof(alg: str, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """The proof's jwk is built from the RFC 7638 members only, whatever the JWK it was loaded
    from carried; the real verifier refuses a jwk with private members, and so would leak nothing."""
    loaded = key_for(alg, rsa_private_key, FakeClock()).private_jwk()
    assert SECRET_MEMBERS & set(loaded)  # it really is a private JWK
    key = DPoPKey.from_jwk({**loaded, "kid": "k-1", "use": "sig", "key_ops": ["sign"]}, clock=FakeClock())
    header, claims = parts_of(key.proof("GET", "https://api.test/p", access_token="t", nonce="n"))
    assert set(header) == {"typ", "alg", "jwk"}
    assert set(header["jwk"]) == PUBLIC_MEMBERS[loaded["kty"]]
    assert not SECRET_MEMBERS & set(key.public_jwk)
    proof_text = json.dumps([header, claims])
    assert all(str(loaded[m]) not in proof_text for m in SECRET_MEMBERS & set(loaded))
    assert repr(key) == f"DPoPKey(alg={alg!r}, jkt={key.jkt!r})"


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://api.test/orgs/acme/projects?page=2&q=x#top", "https://api.test/orgs/acme/projects"),
        ("https://api.test/a?", "https://api.test/a"),
        ("https://api.test", "https://api.test/"),
        ("HTTPS://api.test:8443/p#frag", "https://api.test:8443/p"),
        ("http://user:secret@127.0.0.1:8080/p?x", "http://127.0.0.1:8080/p"),
        ("https://[::1]:8443/p?x", "https://[::1]:8443/p"),
    ],
)
def test_htu_has_no_query_or_fragment(url: str, htu: str) -> None:
    clock = FakeClock()
    proof = DPoPKey.generate(clock=clock).proof("GET", url)
    assert parts_of(proof)[1]["htu"] == htu
    if "@" not in url:  # the server compares against the URL it was asked for, query included
        DPoPVerifier(clock=clock).verify(proof, method="GET", url=url, access_token=None)


def test_every_proof_has_a_fresh_jti_and_only_the_claims_asked_for() -> None:
    clock = FakeClock()
    key = DPoPKey.generate(clock=clock)
    proofs = [key.proof("GET", "https://api.test/p") for _ in range(200)]
    assert len({parts_of(p)[1]["jti"] for p in proofs}) == 200
    assert set(parts_of(proofs[0])[1]) == {"jti", "htm", "htu", "iat"}
    clock.advance(42.9)
    claims = parts_of(key.proof("DELETE", "https://api.test/p", nonce="n-1"))[1]
    assert (claims["iat"], claims["htm"], claims["nonce"], "ath" in claims) == (
        NOW + 42,
        "DELETE",
        "n-1",
        False,
    )


def oct_jwk() -> dict[str, str]:
    return {"kty": "oct", "k": b64url(b"x" * 32)}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DPoPKey.generate("HS256"), "unsupported"),
        (lambda: DPoPKey.generate("none"), "unsupported"),
        (lambda: DPoPKey.generate("ES256K"), "unsupported"),
        (lambda: DPoPKey(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "2048"),
        (lambda: DPoPKey(ec.generate_private_key(ec.SECP256K1())), "curve"),
        (lambda: DPoPKey(ec.generate_private_key(ec.SECP256R1()), "ES384"), "does not fit"),
        (lambda: DPoPKey(ec.generate_private_key(ec.SECP256R1()), "RS256"), "does not fit"),
        (lambda: DPoPKey(ec.generate_private_key(ec.SECP256R1()).public_key()), "private key"),  # type: ignore[arg-type]
        (lambda: DPoPKey.from_jwk(DPoPKey.generate().public_jwk), "private"),
        (lambda: DPoPKey.from_jwk(oct_jwk()), "private"),
        (lambda: DPoPKey.from_jwk({**oct_jwk(), "d": "x"}), "private key"),
        (lambda: DPoPKey.from_jwk(DPoPKey.generate().private_jwk(), "ES384"), "ES256"),
        (lambda: DPoPKey.from_jwk({**DPoPKey.generate().private_jwk(), "alg": "EdDSA"}), "does not fit"),
        (lambda: DPoPKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "PEM"),
        (lambda: DPoPKey.generate().proof("GET", "/relative"), "absolute"),
        (lambda: DPoPKey.generate().proof("GET", "ftp://api.test/p"), "absolute"),
        (lambda: DPoPKey.generate().proof("", "https://api.test/p"), "method"),
    ],
)
def test_unusable_keys_and_requests_are_refused(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def oversized_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """A stand-in for an RSA private key with a ``bits``-bit modulus: odd factors, not primes
    (generating a real 8200-bit key takes about a minute). Only loading it is tested: it signs
    nothing, and no check looks at more than its public numbers."""
    rng = random.Random(bits)
    p, q = (rng.getrandbits(bits // 2) | 1 << (bits // 2 - 1) | 1 for _ in range(2))
    d = rng.getrandbits(bits - 8) | 1
    public = rsa.RSAPublicNumbers(65537, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), 1, public)
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def test_rsa_keys_the_resource_server_refuses_are_refused() -> None:
    """A resource server of this package verifies with an RSA key of 2048 to 8192 bits whose
    public exponent is odd, from 3 to 2**32 - 1 (``resource_server.tokens.rsa_keys``): a DPoP
    key outside that signs proofs no such server accepts, so it is refused when loaded."""
    wide_exponent = rsa_key_with_exponent(33, seed=33)  # a real key pair, its e of 33 bits
    for load in (
        lambda: DPoPKey(wide_exponent),
        lambda: DPoPKey.from_jwk(jwt.algorithms.RSAAlgorithm.to_jwk(wide_exponent, as_dict=True)),
        lambda: DPoPKey.from_pem(
            wide_exponent.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
    ):
        with pytest.raises(ValueError, match="exponent"):
            load()
    with pytest.raises(ValueError, match="8200-bit modulus"):
        DPoPKey(oversized_rsa_key(8200))
    # What the server accepts, the client does: e = 3, a proof the verifier takes.
    small_exponent = DPoPKey(rsa.generate_private_key(public_exponent=3, key_size=2048), "PS256")
    proof = small_exponent.proof("GET", "https://api.test/p")
    assert DPoPVerifier().verify(proof, method="GET", url="https://api.test/p", access_token=None).jkt == (
        small_exponent.jkt
    )


def test_insufficient_scope_reads_the_dpop_challenge_when_asked() -> None:
    values = ['DPoP algs="ES256", error="insufficient_scope", scope="a:b"', 'Bearer realm="api"']
    assert insufficient_scope(403, values) is None  # the Bearer challenge has no error
    denied = insufficient_scope(403, values, scheme="DPoP")
    assert denied is not None and denied.scope == {"a:b"}
    bearer_only = ['Bearer error="insufficient_scope", scope="c:d"']
    assert insufficient_scope(403, bearer_only, scheme="DPoP").scope == {"c:d"}  # type: ignore[union-attr]


# -- a resource server in miniature, over real HTTP ----------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the API received it, and its answer."""

    method: str
    url: str
    authorization: str | None
    header: dict[str, Any] | None  # the proof's, unverified
    claims: dict[str, Any] | None
    body: bytes
    status: int
    error: str | None


class BoundAPI:
    """Every request needs ``Authorization: DPoP <token>`` and a proof the real
    :class:`DPoPVerifier` accepts for the request's method, URL and token, signed by the key the
    token is bound to (its ``cnf.jkt``; tokens here are opaque, mapped to a jkt and scopes). GET
    needs ``read``, POST ``write``. With ``nonces``, proofs must carry a current nonce."""

    NEEDS: ClassVar[dict[str, str]] = {"GET": "read", "POST": "write"}

    def __init__(self, clock: FakeClock, nonces: DPoPNonces | None = None) -> None:
        self.verifier = DPoPVerifier(clock=clock, nonces=nonces)
        self.tokens: dict[str, tuple[str, frozenset[str]]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        method, url = environ["REQUEST_METHOD"], get_current_url(environ)
        authorization, proof = environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_DPOP")
        status, headers, payload = self.answer(method, url, authorization, proof, body)
        header, claims = parts_of(proof) if proof else (None, None)
        with self._lock:
            self.seen.append(
                Seen(method, url, authorization, header, claims, body, status, payload.get("error"))
            )
        data = json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 401: "Unauthorized", 403: "Forbidden"}[status]
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(f"{status} {reason}", headers)
        return [data]

    def answer(
        self, method: str, url: str, authorization: str | None, proof: str | None, body: bytes
    ) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "DPoP" or not token:
            return challenge(401)
        if token not in self.tokens:
            return challenge(401, error="invalid_token")
        try:
            verified = self.verifier.verify(proof or "", method=method, url=url, access_token=token)
        except DPoPNonceRequired as needed:
            status, headers, payload = challenge(401, error="use_dpop_nonce")
            return status, [*headers, ("DPoP-Nonce", needed.nonce)], payload
        except InvalidDPoPProof:
            return challenge(401, error="invalid_dpop_proof")
        jkt, scopes = self.tokens[token]
        if verified.jkt != jkt:  # RFC 9449 §7.1: the proof's key must be the token's cnf.jkt
            return challenge(401, error="invalid_token")
        if self.NEEDS[method] not in scopes:
            return challenge(403, error="insufficient_scope", scope=self.NEEDS[method])
        headers = [("DPoP-Nonce", verified.fresh_nonce)] if verified.fresh_nonce else []
        return (201 if method == "POST" else 200), headers, {"body": body.decode()}

    def statuses(self) -> list[int]:
        return [seen.status for seen in self.seen]

    def nonces_sent(self) -> list[str | None]:
        return [(seen.claims or {}).get("nonce") for seen in self.seen]


def challenge(status: int, **params: str) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    value = format_challenge(Challenge("DPoP", {"algs": " ".join(DPOP_ALGORITHMS), **params}))
    return status, [("WWW-Authenticate", value)], {"error": params.get("error")}


class Issuer:
    """Stands in for an authorization server: mints opaque tokens bound to the key it is told
    (RFC 9449 §5), granting the scopes asked for, and records each request."""

    def __init__(self, *apis: BoundAPI) -> None:
        self.apis = apis
        self.asked: list[frozenset[str] | None] = []
        self.keys: list[DPoPKey] = []
        self._serial = itertools.count(1)

    def mint(self, scopes: frozenset[str] | None, key: DPoPKey) -> str:
        self.asked.append(scopes)
        self.keys.append(key)
        token = f"tok-{next(self._serial)}"
        for api in self.apis:
            api.tokens[token] = (key.jkt, scopes or frozenset({"read"}))
        return token

    def __call__(self, scopes: frozenset[str] | None, *, dpop_key: DPoPKey) -> str:
        return self.mint(scopes, dpop_key)


def make_auth(client: str, provider: Callable[..., Any], **options: Any) -> Any:
    return (RequestsStepUpAuth if client == "requests" else StepUpAuth)(provider, **options)


Call = tuple[str, str, bytes | None]


def send_all(client: str, auth: Any, calls: list[Call]) -> list[int]:
    """Send ``calls`` (method, URL, body) in order through one client with ``auth``; the final statuses."""
    if client == "requests":
        with requests.Session() as session:
            session.auth = auth
            return [session.request(m, u, data=b, timeout=10).status_code for m, u, b in calls]
    library, _, mode = client.partition("-")
    if not mode:
        with HTTPX[library].Client(auth=auth, timeout=10) as http:
            return [http.request(m, u, content=b).status_code for m, u, b in calls]

    async def run() -> list[int]:
        async with HTTPX[library].AsyncClient(auth=auth, timeout=10) as http:
            return [(await http.request(m, u, content=b)).status_code for m, u, b in calls]

    return asyncio.run(run())


@contextmanager
def serving(api: BoundAPI) -> Iterator[str]:
    with serve_wsgi(api) as base:
        yield base


@pytest.mark.parametrize("client", CLIENTS)
def test_every_request_carries_the_bound_token_and_a_fresh_proof(client: str) -> None:
    clock = FakeClock()
    api, key = BoundAPI(clock), DPoPKey.generate(clock=clock)
    issuer = Issuer(api)
    with serving(api) as base:
        calls: list[Call] = [("GET", f"{base}/things?page=2#top", None), ("GET", f"{base}/things", None)]
        statuses = send_all(client, make_auth(client, issuer, dpop_key=key, scopes={"read"}), calls)
    assert statuses == api.statuses() == [200, 200]
    assert issuer.asked == [{"read"}] and issuer.keys == [key]  # told the key, asked once
    assert [seen.authorization for seen in api.seen] == ["DPoP tok-1", "DPoP tok-1"]
    assert [seen.claims["htu"] for seen in api.seen] == [f"{base}/things"] * 2  # type: ignore[index]
    assert api.seen[0].url == f"{base}/things?page=2"  # the query went to the server, not into htu
    assert len({seen.claims["jti"] for seen in api.seen}) == 2  # type: ignore[index]
    assert all(seen.header["jwk"] == key.public_jwk for seen in api.seen)  # type: ignore[index]


@pytest.mark.parametrize("client", CLIENTS)
def test_step_up_under_dpop(client: str) -> None:
    """403 with a DPoP insufficient_scope challenge: a new bound token for the scopes held plus
    the advertised one, the body replayed, and a new proof for the new token."""
    clock = FakeClock()
    api, key = BoundAPI(clock), DPoPKey.generate(clock=clock)
    issuer = Issuer(api)
    with serving(api) as base:
        calls: list[Call] = [("POST", f"{base}/things", b"one"), ("POST", f"{base}/things", b"two")]
        statuses = send_all(client, make_auth(client, issuer, dpop_key=key, scopes={"read"}), calls)
    assert statuses == [201, 201]
    assert api.statuses() == [403, 201, 201]
    assert issuer.asked == [{"read"}, {"read", "write"}] and issuer.keys == [key, key]
    assert [seen.authorization for seen in api.seen] == ["DPoP tok-1", "DPoP tok-2", "DPoP tok-2"]
    assert [seen.body for seen in api.seen] == [b"one", b"one", b"two"]
    claims = [seen.claims for seen in api.seen]
    assert len({c["jti"] for c in claims}) == 3  # type: ignore[index]
    assert [c["ath"] for c in claims] == [  # type: ignore[index]
        b64url(hashlib.sha256(token.encode()).digest()) for token in ("tok-1", "tok-2", "tok-2")
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_the_nonce_dance(client: str) -> None:
    """RFC 9449 §9: 401 use_dpop_nonce with a DPoP-Nonce header, one retry with it, and the nonce
    kept for the requests after; a newer nonce on a 200 replaces it; an expired one costs one retry."""
    clock = FakeClock()
    nonces = DPoPNonces(b"n" * 32, ttl=60)
    api, key = BoundAPI(clock, nonces), DPoPKey.generate(clock=clock)
    issuer = Issuer(api)
    with serving(api) as base:
        auth = make_auth(client, issuer, dpop_key=key)
        url = f"{base}/things"
        assert send_all(client, auth, [("GET", url, None), ("GET", url, None)]) == [200, 200]
        first = nonces.current(clock())
        assert api.statuses() == [401, 200, 200]
        assert api.nonces_sent() == [None, first, first]
        clock.advance(60)  # the old nonce is still accepted, and the 200 hands out the new one
        assert send_all(client, auth, [("GET", url, None), ("GET", url, None)]) == [200, 200]
        second = nonces.current(clock())
        assert api.statuses()[3:] == [200, 200] and api.nonces_sent()[3:] == [first, second]
        clock.advance(120)  # now it has expired: one 401, one retry
        assert send_all(client, auth, [("GET", url, None)]) == [200]
        assert api.statuses()[5:] == [401, 200]
        assert api.nonces_sent()[5:] == [second, nonces.current(clock())]
    assert issuer.asked == [None]  # a nonce never costs a token
    assert len({seen.claims["jti"] for seen in api.seen}) == len(api.seen)  # type: ignore[index]


@pytest.mark.parametrize("client", CLIENTS)
def test_nonces_are_kept_per_origin(client: str) -> None:
    clock = FakeClock()
    one = BoundAPI(clock, DPoPNonces(b"1" * 32))
    two = BoundAPI(clock, DPoPNonces(b"2" * 32))
    key = DPoPKey.generate(clock=clock)
    issuer = Issuer(one, two)
    with serving(one) as base_one, serving(two) as base_two:
        auth = make_auth(client, issuer, dpop_key=key)
        calls: list[Call] = [
            ("GET", f"{base_one}/a", None),
            ("GET", f"{base_two}/a", None),
            ("GET", f"{base_one}/b", None),
            ("GET", f"{base_two}/b", None),
        ]
        assert send_all(client, auth, calls) == [200] * 4
    nonce_one, nonce_two = (api.verifier.nonces.current(clock()) for api in (one, two))  # type: ignore[union-attr]
    assert nonce_one != nonce_two
    assert one.statuses() == [401, 200, 200] and one.nonces_sent() == [None, nonce_one, nonce_one]
    # The first request to the second server carries no nonce: the first server's is not sent to it.
    assert two.statuses() == [401, 200, 200] and two.nonces_sent() == [None, nonce_two, nonce_two]


@pytest.mark.parametrize("client", CLIENTS)
def test_nonce_then_step_up_then_invalid_token(client: str) -> None:
    """The retries combine: a nonce, then more scopes; and a token bound to another key (a 401
    invalid_token under DPoP) gets one fresh token."""
    clock = FakeClock()
    api, key = BoundAPI(clock, DPoPNonces(b"n" * 32)), DPoPKey.generate(clock=clock)
    issuer = Issuer(api)
    with serving(api) as base:
        assert send_all(client, make_auth(client, issuer, dpop_key=key), [("POST", f"{base}/t", b"x")]) == [
            201
        ]
        assert api.statuses() == [401, 403, 201]
        assert issuer.asked == [None, {"write"}]
        assert [seen.authorization for seen in api.seen] == ["DPoP tok-1", "DPoP tok-1", "DPoP tok-2"]

        stolen = issuer.mint(frozenset({"read"}), DPoPKey.generate(clock=clock))  # bound to another key
        first = iter([stolen])

        def provider(scopes: frozenset[str] | None) -> str:  # closes over the key, as the docs allow
            return next(first, None) or issuer.mint(scopes, key)

        auth = make_auth(client, provider, dpop_key=key)
        assert send_all(client, auth, [("GET", f"{base}/t", None)]) == [200]
        # A new client knows no nonce yet; then the proof is good but the token is another key's.
        assert [(seen.status, seen.error) for seen in api.seen[3:]] == [
            (401, "use_dpop_nonce"),
            (401, "invalid_token"),
            (200, None),
        ]
        assert [seen.authorization for seen in api.seen[3:]] == [f"DPoP {stolen}"] * 2 + ["DPoP tok-4"]


class Insistent:
    """A server that answers every request 401 use_dpop_nonce, with ``nonce(n)`` for the n-th
    (None: no DPoP-Nonce header), recording the nonce each proof carried."""

    def __init__(self, nonce: Callable[[int], str | None]) -> None:
        self.nonce = nonce
        self.sent: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        claims = parts_of(environ["HTTP_DPOP"])[1]
        with self._lock:
            self.sent.append(claims.get("nonce"))
            nonce = self.nonce(len(self.sent))
        _, headers, _ = challenge(401, error="use_dpop_nonce")
        if nonce is not None:
            headers.append(("DPoP-Nonce", nonce))
        start_response("401 Unauthorized", [*headers, ("Content-Length", "0")])
        return [b""]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("nonce", "sent"),
    [
        (lambda n: f"nonce-{n}", [None, "nonce-1"]),  # a new nonce every time: one retry, no loop
        (lambda n: "same", [None, "same"]),  # the nonce just refused is not sent again
        (lambda n: None, [None]),  # no nonce to use: nothing to retry
    ],
)
def test_use_dpop_nonce_is_answered_once(
    client: str, nonce: Callable[[int], str | None], sent: list[str | None]
) -> None:
    server = Insistent(nonce)
    calls = [0]

    def provider(scopes: frozenset[str] | None) -> str:
        calls[0] += 1
        return "tok"

    with serve_wsgi(server) as base:
        auth = make_auth(client, provider, dpop_key=DPoPKey.generate(), max_retries=3)
        assert send_all(client, auth, [("GET", f"{base}/p", None)]) == [401]
    assert server.sent == sent
    assert calls == [1]


@pytest.mark.parametrize("client", CLIENTS)
def test_providers_are_told_the_key_when_they_take_it(client: str) -> None:
    clock = FakeClock()
    api, key = BoundAPI(clock), DPoPKey.generate(clock=clock)
    issuer = Issuer(api)
    told: list[Any] = []

    def with_kwargs(scopes: frozenset[str] | None, **options: Any) -> str:
        told.append(options)
        return issuer.mint(scopes, options["dpop_key"])

    async def async_provider(scopes: frozenset[str] | None, dpop_key: DPoPKey) -> str:
        told.append(dpop_key)
        return issuer.mint(scopes, dpop_key)

    providers: list[Callable[..., Any]] = [with_kwargs]
    if client.endswith("-async"):
        providers.append(async_provider)
    with serving(api) as base:
        for provider in providers:
            assert send_all(
                client, make_auth(client, provider, dpop_key=key), [("GET", f"{base}/p", None)]
            ) == [200]
    assert told[0] == {"dpop_key": key} and told[1:] == [key] * (len(providers) - 1)


@pytest.mark.parametrize("client", CLIENTS)
def test_without_a_key_nothing_changes(client: str) -> None:
    """No key: Bearer, no DPoP header, the provider called with the scopes alone, and a DPoP
    challenge (even one a keyed client would follow) is no instruction."""
    clock = FakeClock()
    api = BoundAPI(clock, DPoPNonces(b"n" * 32))
    asked: list[frozenset[str] | None] = []

    def provider(scopes: frozenset[str] | None) -> str:
        asked.append(scopes)
        return "tok-1"

    api.tokens["tok-1"] = ("not-a-key", frozenset({"read"}))
    with serving(api) as base:
        assert send_all(client, make_auth(client, provider), [("GET", f"{base}/p", None)]) == [401]
    assert [(seen.authorization, seen.header) for seen in api.seen] == [("Bearer tok-1", None)]
    assert asked == [None]
