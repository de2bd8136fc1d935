"""JWTVerifier against real keys and real signed tokens: what passes, what is refused, the cache."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from resource_server import InvalidToken, JWTVerifier, KeySetError
from tests.support import AUDIENCE, DROP, ISSUER, FakeClock, Signer, eddsa, es256, jwks, rs256


@pytest.fixture(scope="module")
def es() -> Signer:
    return es256()


@pytest.fixture(scope="module")
def rs() -> Signer:
    return rs256()


@pytest.fixture(scope="module")
def ed() -> Signer:
    return eddsa()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(es: Signer, rs: Signer, ed: Signer, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es, rs, ed), clock=clock)


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_signed(signer: Signer, header_json: str, payload_json: str) -> str:
    """A compact JWS from raw JSON text (so duplicate members survive), really signed."""
    return signer.sign(header_json.encode(), payload_json.encode())


def hand_signed_bytes(signer: Signer, payload: bytes) -> str:
    return signer.sign(
        json.dumps({"alg": signer.algorithm, "typ": "at+jwt", "kid": signer.kid}).encode(), payload
    )


def refused(verifier: JWTVerifier, token: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    if isinstance(token, str) and token:
        assert token not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("signer_name", ["es", "rs", "ed"])
def test_each_public_key_algorithm_verifies(signer_name: str, verifier: JWTVerifier, request) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    token = verifier.verify(signer.token(scope="project:read project:write", org_id="acme"))
    assert token.subject == "user-1"
    assert token.scopes == {"project:read", "project:write"}
    assert token.org == "acme"
    assert token.client_id == "client-1"
    assert token.claims["iss"] == ISSUER


def test_missing_optional_claims(es: Signer, verifier: JWTVerifier) -> None:
    token = verifier.verify(es.token(scope=DROP, org_id=DROP, client_id=DROP, iat=DROP))
    assert (token.scopes, token.org, token.client_id) == (frozenset(), None, None)


def test_typ_variants(es: Signer, verifier: JWTVerifier, clock: FakeClock) -> None:
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"):
        assert verifier.verify(es.token(headers={"typ": typ})).subject == "user-1"
    relaxed = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), require_typ=None, clock=clock)
    assert relaxed.verify(es.token(headers={"typ": "JWT"})).subject == "user-1"
    assert relaxed.verify(es.token(headers={"typ": DROP})).subject == "user-1"


def test_audience_array_containing_ours(es: Signer, verifier: JWTVerifier) -> None:
    assert verifier.verify(es.token(aud=["https://other", AUDIENCE])).subject == "user-1"


def claim_cases() -> list[tuple[str, dict[str, Any]]]:
    now = 0  # claims are offsets from the clock of the test, which adds its own "now"
    return [
        ("exp missing", {"exp": DROP}),
        ("exp bool", {"exp": True}),
        ("exp float", {"exp": now + 600.5}),
        ("exp string", {"exp": str(now + 600)}),
        ("exp null", {"exp": None}),
        ("nbf bool", {"nbf": True}),
        ("nbf float", {"nbf": float(now)}),
        ("nbf string", {"nbf": str(now)}),
        ("iat string", {"iat": str(now)}),
        ("iat float", {"iat": now + 0.5}),
        ("iat null", {"iat": None}),
        ("expired", {"exp": now - 31, "iat": now - 600}),
        ("nbf in the future", {"nbf": now + 31}),
        ("iat in the future", {"iat": now + 31, "exp": now + 600}),
        ("lifetime over a day", {"iat": now, "exp": now + 86401}),
        ("lifetime over a day without iat", {"iat": DROP, "exp": now + 86401}),
        ("iss wrong", {"iss": "https://evil.test"}),
        ("iss case", {"iss": ISSUER.upper()}),
        ("iss trailing slash", {"iss": ISSUER + "/"}),
        ("iss missing", {"iss": DROP}),
        ("iss array", {"iss": [ISSUER]}),
        ("aud wrong", {"aud": "https://other"}),
        ("aud array without ours", {"aud": ["https://a", "https://b"]}),
        ("aud empty array", {"aud": []}),
        ("aud non-string member", {"aud": [AUDIENCE, 1]}),
        ("aud missing", {"aud": DROP}),
        ("aud object", {"aud": {"x": AUDIENCE}}),
        ("scope NBSP", {"scope": "project:read\u00a0project:write"}),
        ("scope tab", {"scope": "project:read\tproject:write"}),
        ("scope double space", {"scope": "project:read  project:write"}),
        ("scope leading space", {"scope": " project:read"}),
        ("scope ideographic space", {"scope": "project:read\u3000project:write"}),
        ("scope list", {"scope": ["project:read"]}),
        ("scope number", {"scope": 7}),
        ("org empty", {"org_id": ""}),
        ("org number", {"org_id": 123}),
        ("org null", {"org_id": None}),
        ("sub missing", {"sub": DROP}),
        ("sub empty", {"sub": ""}),
        ("sub number", {"sub": 123}),
        ("client_id number", {"client_id": 5}),
    ]


@pytest.mark.parametrize(("case", "claims"), claim_cases(), ids=[c for c, _ in claim_cases()])
def test_bad_claims_are_refused(
    case: str, claims: dict[str, Any], es: Signer, verifier: JWTVerifier, clock: FakeClock
) -> None:
    now = int(clock.now)
    timed = {"exp", "nbf", "iat"}
    shifted = {k: v + now if k in timed and type(v) in (int, float) else v for k, v in claims.items()}
    refused(verifier, es.token(now=now, **shifted))


def test_leeway_boundaries(es: Signer, verifier: JWTVerifier, clock: FakeClock) -> None:
    now = int(clock.now)
    assert verifier.verify(es.token(now=now, exp=now - 29, iat=now - 600))  # inside the 30 s leeway
    refused(verifier, es.token(now=now, exp=now - 30, iat=now - 600))
    assert verifier.verify(es.token(now=now, nbf=now + 30))
    assert verifier.verify(es.token(now=now, iat=now + 30))


def header_cases(es: Signer, rs: Signer) -> list[tuple[str, str]]:
    attacker = es256("attacker")
    payload = json.dumps(es.claims())
    return [
        (
            "alg none",
            f"{b64(json.dumps({'alg': 'none', 'typ': 'at+jwt', 'kid': es.kid}))}.{b64(payload)}.AAAA",
        ),
        (
            "alg None",
            f"{b64(json.dumps({'alg': 'None', 'typ': 'at+jwt', 'kid': es.kid}))}.{b64(payload)}.AAAA",
        ),
        ("alg NONE", f"{b64(json.dumps({'alg': 'NONE', 'typ': 'at+jwt'}))}.{b64(payload)}.AAAA"),
        (
            "alg header differs from key",
            hand_signed(es, json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": es.kid}), payload),
        ),
        ("alg missing", hand_signed(es, json.dumps({"typ": "at+jwt", "kid": es.kid}), payload)),
        (
            "alg not a string",
            hand_signed(es, json.dumps({"alg": ["ES256"], "typ": "at+jwt", "kid": es.kid}), payload),
        ),
        ("typ missing", es.token(headers={"typ": DROP})),
        ("typ JWT", es.token(headers={"typ": "JWT"})),
        ("typ not a string", es.token(headers={"typ": 1})),
        ("crit", es.token(headers={"crit": ["exp"], "exp": 1})),
        ("crit b64", es.token(headers={"crit": ["b64"], "b64": True})),
        ("kid unknown", es.token(headers={"kid": "nope"})),
        ("kid path traversal", es.token(headers={"kid": "../../etc/passwd"})),
        ("kid url", es.token(headers={"kid": "https://evil.test/key"})),
        (
            "kid not a string",
            hand_signed(es, json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": 1}), payload),
        ),
        ("kid missing with several keys", es.token(headers={"kid": DROP})),
        ("same kid, other key", Signer(es.kid, "ES256", attacker.private_key).token()),
        (
            "embedded jwk",
            Signer("attacker", "ES256", attacker.private_key).token(headers={"jwk": attacker.jwk}),
        ),
        (
            "embedded jwk with real kid",
            Signer(es.kid, "ES256", attacker.private_key).token(headers={"jwk": attacker.jwk}),
        ),
        (
            "jku",
            Signer("attacker", "ES256", attacker.private_key).token(
                headers={"jku": "https://evil.test/jwks"}
            ),
        ),
        (
            "x5u",
            Signer("attacker", "ES256", attacker.private_key).token(
                headers={"x5u": "https://evil.test/cert"}
            ),
        ),
        ("x5c", Signer(es.kid, "ES256", attacker.private_key).token(headers={"x5c": ["MIIB"]})),
        (
            "duplicate alg",
            hand_signed(es, f'{{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"{es.kid}"}}', payload),
        ),
        (
            "duplicate sub",
            hand_signed(
                es,
                json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}),
                payload[:-1] + ', "sub": "admin"}',
            ),
        ),
        (
            "duplicate scope",
            hand_signed(
                es,
                json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}),
                payload[:-1] + ', "scope": "org:admin"}',
            ),
        ),
        ("header is an array", hand_signed(es, "[1, 2]", payload)),
        (
            "payload is an array",
            hand_signed(es, json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}), "[1]"),
        ),
        (
            "payload NaN",
            hand_signed(
                es, json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}), payload[:-1] + ', "x": NaN}'
            ),
        ),
        (
            "5000-digit exp",
            hand_signed(
                es,
                json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}),
                payload.replace(f'"exp": {es.claims()["exp"]}', '"exp": ' + "9" * 5000),
            ),
        ),
        (
            "deep nesting",
            hand_signed(
                es,
                json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}),
                '{"a":' * 3000 + "1" + "}" * 3000,
            ),
        ),
        ("payload not UTF-8", hand_signed_bytes(es, b'{"sub": "\xff"}')),
    ]


def test_hostile_headers_are_refused(es: Signer, rs: Signer, verifier: JWTVerifier) -> None:
    for case, token in header_cases(es, rs):
        try:
            verifier.verify(token)
        except InvalidToken as exc:
            assert token not in str(exc), case
        else:
            pytest.fail(f"{case}: accepted")


def test_hmac_with_public_key_material_refused_even_when_signed_over_pem(
    rs: Signer, clock: FakeClock
) -> None:
    """The classic confusion: an attacker HMACs with the server's public key as the secret."""
    from cryptography.hazmat.primitives import serialization

    pem = rs.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'at+jwt', 'kid': rs.kid}))}.{b64(json.dumps(rs.claims()))}"
    )
    import hashlib
    import hmac

    token = f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    only_rs = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(rs), clock=clock)
    assert "algorithm" in refused(only_rs, token).description


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "eyJhbGciOiJFUzI1NiJ9.eyJ9.sig=",
        "a+b.c.d",
        "a/b.c.d",
        "a .b.c",
        " a.b.c",
        "a.b.c\n",
        "é.b.c",
        "a..c",
        "abcde.abcde.abcde",
    ],
    ids=repr,
)
def test_malformed_serializations(token: str, verifier: JWTVerifier) -> None:
    refused(verifier, token)


@pytest.mark.parametrize("token", [None, b"a.b.c", 123, ["a.b.c"]], ids=repr)
def test_non_strings(token: Any, verifier: JWTVerifier) -> None:
    refused(verifier, token)


def test_truncated_tokens(es: Signer, verifier: JWTVerifier) -> None:
    token = es.token()
    head, body, sig = token.split(".")
    for broken in (f"{head}.{body}.{sig[:-4]}", f"{head}.{body[:-3]}.{sig}", token[: len(token) // 2]):
        refused(verifier, broken)


def test_oversized_tokens_are_refused_before_parsing(es: Signer, verifier: JWTVerifier) -> None:
    small = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), max_token_bytes=200)
    assert "too large" in refused(small, es.token()).description
    huge = "a" * (5 * 1024 * 1024)
    started = time.perf_counter()
    assert "too large" in refused(verifier, f"{huge}.{huge}.{huge}").description
    assert time.perf_counter() - started < 2  # a hang guard, not a benchmark


def test_configuration_is_validated(es: Signer) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), jwks_uri="https://as.test/jwks")
    for algorithms in (("HS256",), ("none",), ("ES256", "HS512"), ()):
        with pytest.raises(ValueError):
            JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), algorithms=algorithms)
    with pytest.raises(KeySetError, match="symmetric"):
        JWTVerifier(
            issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}
        )
    private = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(es.private_key)), "kid": "p"}
    with pytest.raises(KeySetError, match="private"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [private]})
    with pytest.raises(KeySetError):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [{**es.jwk, "alg": "ES384"}]})
    with pytest.raises(KeySetError, match="not an accepted"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), algorithms=("RS256",))
    with pytest.raises(KeySetError, match="share"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [es.jwk, es.jwk]})


def test_a_lone_key_verifies_tokens_without_kid(es: Signer, clock: FakeClock) -> None:
    only = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    assert only.verify(es.token(headers={"kid": DROP})).subject == "user-1"


# -- the verified-token cache ----------------------------------------------------------------------


def test_a_repeated_token_comes_from_the_cache(es: Signer, verifier: JWTVerifier) -> None:
    token = es.token()
    assert verifier.verify(token) is verifier.verify(token)


def test_the_cache_never_serves_a_token_at_or_after_exp(
    es: Signer, verifier: JWTVerifier, clock: FakeClock
) -> None:
    now = int(clock.now)
    token = es.token(now=now, exp=now + 60)
    first = verifier.verify(token)
    clock.advance(60)  # at exp: the cache must not answer; full verification still allows the leeway
    again = verifier.verify(token)
    assert again is not first
    clock.advance(30)
    refused(verifier, token)


def test_the_cache_is_bounded(es: Signer, clock: FakeClock) -> None:
    small = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock, cache_size=3)
    tokens = [es.token() for _ in range(10)]
    for token in tokens:
        small.verify(token)
    assert len(small._cache) == 3
    assert small.verify(tokens[-1]) is small.verify(tokens[-1])
