"""JWTVerifier with real keys and real signed tokens: configuration, claims, leeway, the token cache.

Hostile tokens (forged headers, broken serializations, fuzzing) live in
``tests/adversarial/test_hostile_tokens.py``; the ``jwks_uri`` key set in ``test_keys.py``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from resource_server import InvalidToken, JWTVerifier, KeySetError, VerifiedToken
from tests.support import AUDIENCE, DROP, ISSUER, FakeClock, Signer, eddsa, es256, jwks

NOW = 1_900_000_000
#: A marker placed in claim values; refusals must never echo it back.
MARK = "MARK-7f3a9c"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def verifier(es: Signer, rs: Signer, ed: Signer, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es, rs, ed), clock=clock)


def make(signer: Signer, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    return signer.token(headers=headers, now=NOW, **claims)


def refuse(verifier: JWTVerifier, token: str, fragment: str) -> InvalidToken:
    """Assert a refusal for the expected reason, with a description that leaks nothing."""
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    description = caught.value.description
    assert description == str(caught.value)
    assert fragment in description
    assert token not in description
    assert MARK not in description
    return caught.value


# -- configuration ---------------------------------------------------------------------------------


def test_exactly_one_key_source_is_required(es: Signer, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, clock=clock)
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks=jwks(es),
            jwks_uri="https://as.test/.well-known/jwks.json",
            clock=clock,
        )


@pytest.mark.parametrize(
    "algorithms",
    [("HS256",), ("ES256", "HS256"), ("HS384",), ("HS512",), ("none",), ("ES256", "none"), ()],
    ids=["HS256", "ES256+HS256", "HS384", "HS512", "none", "ES256+none", "empty"],
)
def test_symmetric_and_unsigned_algorithms_are_refused_at_construction(
    algorithms: tuple[str, ...], es: Signer
) -> None:
    with pytest.raises(ValueError):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), algorithms=algorithms)


def private_jwk(signer: Signer, **extra: Any) -> dict[str, Any]:
    """The private JWK exactly as PyJWT exports it (RSA exports carry ``key_ops: ["sign"]``)."""
    algorithm = {"ES256": jwt.algorithms.ECAlgorithm, "RS256": jwt.algorithms.RSAAlgorithm}.get(
        signer.algorithm, jwt.algorithms.OKPAlgorithm
    )
    return {**json.loads(algorithm.to_jwk(signer.private_key)), "kid": "private", **extra}


SECRET_KEYS: dict[str, Any] = {
    "oct": lambda es, rs, ed: {
        "kty": "oct",
        "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA",
        "kid": "h",
    },
    "oct with alg HS256": lambda es, rs, ed: {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "h"},
    "oct marked use=enc": lambda es, rs, ed: {"kty": "oct", "k": "c2VjcmV0", "use": "enc", "kid": "h"},
    "EC private": lambda es, rs, ed: private_jwk(es),
    "Ed25519 private": lambda es, rs, ed: private_jwk(ed),
    "RSA private, use=sig": lambda es, rs, ed: {
        k: v for k, v in private_jwk(rs, use="sig").items() if k != "key_ops"
    },
    "RSA private as PyJWT exports it (key_ops sign)": lambda es, rs, ed: private_jwk(rs),
    "EC public with a stray d": lambda es, rs, ed: {**es.jwk, "kid": "private", "d": "AAAA"},
}


@pytest.mark.parametrize("key_kind", list(SECRET_KEYS))
def test_configured_jwks_with_secret_material_is_refused(
    key_kind: str, es: Signer, rs: Signer, ed: Signer
) -> None:
    """A resource server has no business holding a secret; in configuration that is a start-up error,
    whatever ``use``/``key_ops`` the key claims (a secret in the config is a leak to fix, not skip)."""
    bad = SECRET_KEYS[key_kind](es, rs, ed)
    with pytest.raises(KeySetError) as caught:
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [es.jwk, bad]})
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("issuer", ""),
        ("audience", ""),
        ("audience", []),
        ("audience", [AUDIENCE, ""]),
        ("require_typ", "JWT"),
    ],
    ids=["issuer empty", "audience empty", "audience empty list", "audience with empty", "require_typ JWT"],
)
def test_other_bad_options_fail_at_construction(option: str, value: Any, es: Signer) -> None:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, option: value}
    with pytest.raises(ValueError):
        JWTVerifier(jwks=jwks(es), **options)


# -- what a good token yields ----------------------------------------------------------------------


@pytest.mark.parametrize("signer_name", ["es", "rs", "ed"], ids=["ES256", "RS256", "EdDSA"])
def test_each_algorithm_verifies(signer_name: str, verifier: JWTVerifier, request: Any) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    token = make(signer, scope="project:read project:write", org_id="acme", exp=NOW + 600)
    verified = verifier.verify(token)
    assert isinstance(verified, VerifiedToken)
    assert verified.subject == "user-1"
    assert verified.scopes == frozenset({"project:read", "project:write"})
    assert isinstance(verified.scopes, frozenset)
    assert verified.org == "acme"
    assert verified.client_id == "client-1"
    assert verified.expires_at == NOW + 600
    assert verified.claims["iss"] == ISSUER
    assert verified.claims["jti"].startswith("jti-")


def test_tokens_made_by_pyjwt_verify(es: Signer, verifier: JWTVerifier) -> None:
    """Interoperability: a token from PyJWT's own encoder, not only our hand-built ones."""
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "iat": NOW, "exp": NOW + 60, "scope": "a b"}
    token = jwt.encode(claims, es.private_key, algorithm="ES256", headers={"kid": es.kid, "typ": "at+jwt"})
    verified = verifier.verify(token)
    assert (verified.subject, verified.scopes, verified.org, verified.client_id) == (
        "svc",
        frozenset({"a", "b"}),
        None,
        None,
    )


def test_verified_token_is_read_only(es: Signer, verifier: JWTVerifier) -> None:
    verified = verifier.verify(make(es))
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.subject = "admin"  # type: ignore[misc]
    with pytest.raises(TypeError):
        verified.claims["sub"] = "admin"  # type: ignore[index]
    assert verified.claims["sub"] == "user-1"


def test_optional_claims_may_be_missing(es: Signer, verifier: JWTVerifier) -> None:
    verified = verifier.verify(make(es, scope=DROP, org_id=DROP, client_id=DROP, iat=DROP, jti=DROP))
    assert (verified.scopes, verified.org, verified.client_id) == (frozenset(), None, None)


def test_org_and_scope_claim_names_are_configurable(es: Signer, clock: FakeClock) -> None:
    custom = JWTVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks=jwks(es),
        clock=clock,
        org_claim="tenant",
        scope_claim="scp",
    )
    verified = custom.verify(make(es, tenant="globex", scp="a:read", scope="ignored", org_id="ignored"))
    assert (verified.org, verified.scopes) == ("globex", frozenset({"a:read"}))
    refuse(custom, make(es, tenant=5), "tenant")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("scope", "project:read project:write"),  # RFC 9068 §2.2.3
        ("scp", ["project:read", "project:write"]),  # Okta, Entra ID (an array)
        ("scp", "project:read project:write"),  # Entra ID delegated tokens (a string)
        ("permissions", ["project:read", "project:write"]),  # Auth0 RBAC
    ],
)
def test_the_scope_claim_may_be_a_string_or_an_array(
    claim: str, value: Any, es: Signer, clock: FakeClock
) -> None:
    shaped = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock, scope_claim=claim)
    verified = shaped.verify(make(es, **{"scope": DROP, claim: value}))
    assert verified.scopes == frozenset({"project:read", "project:write"})
    assert shaped.verify(make(es, **{"scope": DROP, claim: []})).scopes == frozenset()


def test_issuer_org_binds_every_token_of_the_issuer(es: Signer, clock: FakeClock) -> None:
    tenant = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock, issuer_org="globex")
    assert tenant.verify(make(es, org_id=DROP)).org == "globex"
    assert tenant.verify(make(es, org_id="globex")).org == "globex"
    refuse(tenant, make(es, org_id="acme"), "organization")
    refuse(tenant, make(es, org_id=""), "org_id")
    for bad in ("", 5):
        with pytest.raises(ValueError, match="issuer_org"):
            JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), issuer_org=bad)  # type: ignore[arg-type]


def test_an_audience_collection_accepts_any_of_its_members(es: Signer, clock: FakeClock) -> None:
    two = JWTVerifier(issuer=ISSUER, audience=[AUDIENCE, "https://api2.test"], jwks=jwks(es), clock=clock)
    assert two.verify(make(es, aud="https://api2.test")).subject == "user-1"
    assert two.verify(make(es, aud=["https://other.test", "https://api2.test"])).subject == "user-1"
    refuse(two, make(es, aud="https://other.test"), "audience")


def test_an_audience_array_containing_ours_is_accepted(es: Signer, verifier: JWTVerifier) -> None:
    assert verifier.verify(make(es, aud=["https://other.test", AUDIENCE])).subject == "user-1"


def test_an_algorithm_can_be_left_out(es: Signer, rs: Signer, clock: FakeClock) -> None:
    only_es = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), algorithms=("ES256",), clock=clock)
    assert only_es.verify(make(es)).subject == "user-1"
    with pytest.raises(KeySetError, match="not an accepted algorithm"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es, rs), algorithms=("ES256",))


def test_a_lone_key_verifies_a_token_without_kid(es: Signer, clock: FakeClock) -> None:
    lone = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    assert lone.verify(make(es, headers={"kid": DROP})).subject == "user-1"


def test_without_kid_several_keys_are_not_guessed(es: Signer, verifier: JWTVerifier) -> None:
    refuse(verifier, make(es, headers={"kid": DROP}), "unknown key")


# -- typ (RFC 9068 §2.1) ---------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"])
def test_access_token_typ_is_accepted_in_any_case(typ: str, es: Signer, verifier: JWTVerifier) -> None:
    assert verifier.verify(make(es, headers={"typ": typ})).subject == "user-1"


@pytest.mark.parametrize(
    "typ",
    [DROP, "JWT", "jwt", "at+jwt ", "at+JWT+x", "application/jwt", "", None, 1, ["at+jwt"]],
    ids=[
        "missing",
        "JWT",
        "jwt",
        "trailing space",
        "suffix",
        "application/jwt",
        "empty",
        "null",
        "number",
        "list",
    ],
)
def test_other_typ_values_are_refused(typ: Any, es: Signer, verifier: JWTVerifier) -> None:
    refuse(verifier, make(es, headers={"typ": typ}), "typ")


@pytest.mark.parametrize("typ", [DROP, "JWT", "at+jwt"], ids=["missing", "JWT", "at+jwt"])
def test_require_typ_none_accepts_plain_jwts(typ: Any, es: Signer, clock: FakeClock) -> None:
    relaxed = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), require_typ=None, clock=clock)
    assert relaxed.verify(make(es, headers={"typ": typ})).subject == "user-1"


# -- claims ----------------------------------------------------------------------------------------

BAD_CLAIMS: dict[str, tuple[dict[str, Any], str]] = {
    "exp missing": ({"exp": DROP}, "exp"),
    "exp bool": ({"exp": True}, "exp"),
    "exp float": ({"exp": NOW + 600.0}, "exp"),
    "exp fractional": ({"exp": NOW + 600.5}, "exp"),
    "exp string": ({"exp": str(NOW + 600)}, "exp"),
    "exp null": ({"exp": None}, "exp"),
    "nbf bool": ({"nbf": False}, "nbf"),
    "nbf float": ({"nbf": float(NOW)}, "nbf"),
    "nbf string": ({"nbf": str(NOW)}, "nbf"),
    "nbf null": ({"nbf": None}, "nbf"),
    "iat bool": ({"iat": True}, "iat"),
    "iat float": ({"iat": float(NOW)}, "iat"),
    "iat string": ({"iat": str(NOW)}, "iat"),
    "iat null": ({"iat": None}, "iat"),
    "expired": ({"iat": NOW - 3600, "exp": NOW - 60}, "expired"),
    "nbf in the future": ({"nbf": NOW + 3600}, "not valid yet"),
    "iat in the future": ({"iat": NOW + 3600, "exp": NOW + 4200}, "future"),
    "lifetime over max_lifetime": ({"iat": NOW, "exp": NOW + 86401}, "lifetime"),
    "lifetime over max_lifetime without iat": ({"iat": DROP, "exp": NOW + 86401}, "lifetime"),
    "iss wrong": ({"iss": f"https://{MARK}.test"}, "issuer"),
    "iss upper case": ({"iss": ISSUER.upper()}, "issuer"),
    "iss trailing slash": ({"iss": ISSUER + "/"}, "issuer"),
    "iss missing": ({"iss": DROP}, "issuer"),
    "iss in an array": ({"iss": [ISSUER]}, "issuer"),
    "aud wrong": ({"aud": f"https://{MARK}.test"}, "audience"),
    "aud upper case": ({"aud": AUDIENCE.upper()}, "audience"),
    "aud array without ours": ({"aud": ["https://a.test", f"https://{MARK}.test"]}, "audience"),
    "aud empty array": ({"aud": []}, "audience"),
    "aud array with a number": ({"aud": [AUDIENCE, 7]}, "audience"),
    "aud array with null": ({"aud": [AUDIENCE, None]}, "audience"),
    "aud missing": ({"aud": DROP}, "audience"),
    "aud number": ({"aud": 7}, "audience"),
    "aud object": ({"aud": {"aud": AUDIENCE}}, "audience"),
    "scope with NBSP": ({"scope": "project:read\u00a0admin"}, "scope"),
    "scope with tab": ({"scope": "project:read\tadmin"}, "scope"),
    "scope with double space": ({"scope": "project:read  admin"}, "scope"),
    "scope with leading space": ({"scope": " project:read"}, "scope"),
    "scope with trailing space": ({"scope": "project:read "}, "scope"),
    "scope with newline": ({"scope": "project:read\nadmin"}, "scope"),
    "scope with ideographic space": ({"scope": "project:read\u3000admin"}, "scope"),
    "scope with quote": ({"scope": 'project:"read'}, "scope"),
    "scope array holding a space-delimited string": ({"scope": ["project:read admin"]}, "scope"),
    "scope array holding an empty token": ({"scope": ["project:read", ""]}, "scope"),
    "scope array holding a number": ({"scope": ["project:read", 7]}, "scope"),
    "scope array holding an array": ({"scope": [["project:read"]]}, "scope"),
    "scope array holding NBSP": ({"scope": ["project:read\u00a0admin"]}, "scope"),
    "scope as an object": ({"scope": {"project:read": True}}, "scope"),
    "scope as a number": ({"scope": 1}, "scope"),
    "scope array too long": ({"scope": ["s"] * 1025}, "scope"),
    "scope null": ({"scope": None}, "scope"),
    "org_id empty": ({"org_id": ""}, "org_id"),
    "org_id number": ({"org_id": 123}, "org_id"),
    "org_id null": ({"org_id": None}, "org_id"),
    "org_id list": ({"org_id": ["acme"]}, "org_id"),
    "sub missing": ({"sub": DROP}, "sub"),
    "sub empty": ({"sub": ""}, "sub"),
    "sub number": ({"sub": 123}, "sub"),
    "sub null": ({"sub": None}, "sub"),
    "client_id number": ({"client_id": 5}, "client_id"),
}


@pytest.mark.parametrize("case", list(BAD_CLAIMS))
def test_bad_claims_are_refused(case: str, es: Signer, verifier: JWTVerifier) -> None:
    claims, fragment = BAD_CLAIMS[case]
    refuse(verifier, make(es, **claims), fragment)


@pytest.mark.parametrize("signer_name", ["es", "rs", "ed"], ids=["ES256", "RS256", "EdDSA"])
def test_claims_are_checked_for_every_algorithm(
    signer_name: str, verifier: JWTVerifier, request: Any
) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    refuse(verifier, make(signer, aud="https://other.test"), "audience")
    refuse(verifier, make(signer, exp=NOW - 3600, iat=NOW - 4000), "expired")


# -- time: leeway and lifetime boundaries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_after_exp", "accepted"),
    [(0, True), (29, True), (30, False), (31, False)],
    ids=["at exp", "exp+29 (inside leeway)", "exp+30 (leeway edge)", "exp+31"],
)
def test_expiry_leeway_boundary(seconds_after_exp: int, accepted: bool, es: Signer, clock: FakeClock) -> None:
    token = make(es, iat=NOW, exp=NOW + 600)
    fresh = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    clock.advance(600 + seconds_after_exp)
    if accepted:
        assert fresh.verify(token).expires_at == NOW + 600
    else:
        refuse(fresh, token, "expired")


@pytest.mark.parametrize(
    ("claim", "seconds_ahead", "accepted", "fragment"),
    [
        ("nbf", 30, True, ""),
        ("nbf", 31, False, "not valid yet"),
        ("iat", 30, True, ""),
        ("iat", 31, False, "future"),
    ],
    ids=["nbf now+30 passes", "nbf now+31 refused", "iat now+30 passes", "iat now+31 refused"],
)
def test_not_before_and_issued_at_leeway_boundary(
    claim: str, seconds_ahead: int, accepted: bool, fragment: str, es: Signer, verifier: JWTVerifier
) -> None:
    token = make(es, **{claim: NOW + seconds_ahead}, exp=NOW + seconds_ahead + 600)
    if accepted:
        assert verifier.verify(token).subject == "user-1"
    else:
        refuse(verifier, token, fragment)


@pytest.mark.parametrize(
    ("exp_offset", "accepted"), [(0, False), (1, True)], ids=["exp == now refused", "exp == now+1 passes"]
)
def test_zero_leeway_is_exact(exp_offset: int, accepted: bool, es: Signer, clock: FakeClock) -> None:
    strict = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), leeway=0, clock=clock)
    token = make(es, iat=NOW - 10, exp=NOW + exp_offset)
    if accepted:
        assert strict.verify(token).subject == "user-1"
    else:
        refuse(strict, token, "expired")


@pytest.mark.parametrize(
    ("lifetime", "with_iat", "accepted"),
    [(3600, True, True), (3601, True, False), (3600, False, True), (3601, False, False)],
    ids=["iat: exactly max", "iat: one over", "no iat: exactly max", "no iat: one over"],
)
def test_max_lifetime_boundary(
    lifetime: int, with_iat: bool, accepted: bool, es: Signer, clock: FakeClock
) -> None:
    hourly = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), max_lifetime=3600, clock=clock)
    token = make(es, iat=NOW if with_iat else DROP, exp=NOW + lifetime)
    if accepted:
        assert hourly.verify(token).expires_at == NOW + lifetime
    else:
        refuse(hourly, token, "lifetime")


def test_size_limit_boundary(es: Signer, clock: FakeClock) -> None:
    token = make(es)
    exact = JWTVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), max_token_bytes=len(token), clock=clock
    )
    assert exact.verify(token).subject == "user-1"
    smaller = JWTVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), max_token_bytes=len(token) - 1, clock=clock
    )
    refuse(smaller, token, "too large")


# -- the verified-token cache ----------------------------------------------------------------------


def test_a_repeated_token_is_served_from_the_cache(es: Signer, verifier: JWTVerifier) -> None:
    token = make(es)
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    assert verifier.verify(make(es)) is not first  # another token (its jti differs) is verified anew


def test_the_cache_never_serves_a_token_at_or_after_exp(es: Signer, clock: FakeClock) -> None:
    cached = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    token = make(es, iat=NOW, exp=NOW + 60)
    first = cached.verify(token)
    clock.advance(59)
    assert cached.verify(token) is first  # before exp: from the cache
    clock.advance(1)  # at exp: not from the cache; the full path still grants the leeway
    at_exp = cached.verify(token)
    assert at_exp is not first
    assert at_exp == first
    clock.advance(29)
    assert cached.verify(token) is not at_exp
    clock.advance(1)  # exp + leeway: refused, whatever the cache holds
    refuse(cached, token, "expired")
    clock.advance(3600)
    refuse(cached, token, "expired")


def test_the_cache_is_bounded_and_drops_the_oldest(es: Signer, clock: FakeClock) -> None:
    small = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock, cache_size=3)
    tokens = [make(es, sub=f"user-{i}") for i in range(10)]
    results = [small.verify(token) for token in tokens]
    assert len(small._cache) <= 3
    assert small.verify(tokens[-1]) is results[-1]
    assert small.verify(tokens[0]) is not results[0]
    assert len(small._cache) <= 3


def test_the_cache_is_keyed_on_the_whole_token(es: Signer, verifier: JWTVerifier) -> None:
    token = make(es)
    verifier.verify(token)
    head, body, signature = token.split(".")
    forged_signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    refuse(verifier, f"{head}.{body}.{forged_signature}", "signature")


def test_refusals_are_not_cached(es: Signer, verifier: JWTVerifier, clock: FakeClock) -> None:
    token = make(es, nbf=NOW + 120, exp=NOW + 600)
    refuse(verifier, token, "not valid yet")
    clock.advance(120)
    assert verifier.verify(token).subject == "user-1"


# -- the keys the verifier holds are its own -------------------------------------------------------


@pytest.mark.parametrize("factory", [es256, eddsa], ids=["ES256", "EdDSA"])
def test_a_key_outside_the_configured_set_is_refused(factory: Any, verifier: JWTVerifier) -> None:
    refuse(verifier, make(factory("outsider")), "unknown key")


def test_a_small_rsa_key_is_refused_in_configuration() -> None:
    weak = Signer("weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(KeySetError, match="bits"):
        JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(weak))


# -- identifiers: no control or invisible characters -----------------------------------------------

#: Characters that forge log lines, break encoders, or make two identifiers look alike.
HIDDEN: dict[str, str] = {
    "NUL": "\x00",
    "line feed": "\n",
    "carriage return": "\r",
    "tab": "\t",
    "escape": "\x1b",
    "unit separator": "\x1f",
    "DEL": "\x7f",
    "C1 next line": "\x85",
    "C1 control sequence introducer": "\x9b",
    "C1 last": "\x9f",
    "lone high surrogate": "\ud800",
    "lone low surrogate": "\udfff",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "tag letter": "\U000e0041",
}
IDENTIFIER_CLAIMS = ["sub", "org_id", "client_id"]


@pytest.mark.parametrize("claim", IDENTIFIER_CLAIMS)
@pytest.mark.parametrize("hidden", list(HIDDEN))
def test_identifiers_with_control_or_invisible_characters_are_refused(
    claim: str, hidden: str, es: Signer, verifier: JWTVerifier
) -> None:
    # json.dumps escapes every one of them (\u0000, \ud800, ...): the decoder turns them back.
    token = make(es, **{claim: f"{MARK}{HIDDEN[hidden]}admin"})
    refused = refuse(verifier, token, claim)
    assert HIDDEN[hidden] not in refused.description
    assert "control or invisible" in refused.description


@pytest.mark.parametrize("hidden", ["C1 next line", "right-to-left override", "line separator"])
def test_unescaped_invisible_characters_in_raw_utf8_are_refused(
    hidden: str, es: Signer, verifier: JWTVerifier
) -> None:
    payload = json.dumps(es.claims(NOW, sub=f"user{HIDDEN[hidden]}1"), ensure_ascii=False).encode()
    assert HIDDEN[hidden].encode() in payload  # sent as UTF-8, not as a \u escape
    header = json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": es.kid}).encode()
    refuse(verifier, es.sign(header, payload), "sub")


def test_a_custom_org_claim_is_checked_too(es: Signer, clock: FakeClock) -> None:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), org_claim="tenant", clock=clock)
    refuse(verifier, make(es, tenant="acme\u202e"), "tenant")


@pytest.mark.parametrize(
    "value",
    ["josé", "用户-1", "Łódź team", "user 1", "no\u00a0break", "😀", "auth0|5f7c8ec7c33c6c004bbafe82"],
    ids=["accent", "CJK", "Polish", "space", "no-break space", "astral emoji", "provider prefix"],
)
def test_visible_identifiers_of_any_script_are_accepted(
    value: str, es: Signer, verifier: JWTVerifier
) -> None:
    verified = verifier.verify(make(es, sub=value, org_id=value, client_id=value))
    assert (verified.subject, verified.org, verified.client_id) == (value, value, value)


# -- the confirmation claim (cnf): a condition of use, never a hint ---------------------------------

#: A real RFC 7638 thumbprint (base64url of a SHA-256 digest, 43 characters).
JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_token_bound_by_cnf_jkt_is_verified_with_its_key(es: Signer, verifier: JWTVerifier) -> None:
    verified = verifier.verify(make(es, cnf={"jkt": JKT}))
    assert verified.jkt == JKT
    assert verified.claims["cnf"] == {"jkt": JKT}
    assert verifier.verify(make(es)).jkt is None  # no cnf: a bearer token


@pytest.mark.parametrize(
    ("cnf", "fragment"),
    [
        ({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "x5t#S256, RFC 8705"),
        ({"jwk": {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}}, "cnf jwk, RFC 7800"),
        ({"jwe": "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"}, "cnf jwe, RFC 7800"),
        ({"jku": "https://client.example.com/jwks.json", "kid": "k1"}, "cnf jku, RFC 7800"),
        ({"kid": "dfd1aa97-6d8d-4575-a0fe-34b96de2bfad"}, "cnf kid, RFC 7800"),
        ({"osc": {"ms": "f9af838368e353e78888e1426bd94e6f"}}, "cnf osc, RFC 9203"),
        ({"jkt": JKT, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "x5t#S256"),
        ({f"{MARK}\u202e": 1}, "a confirmation method this server does not know"),
    ],
    ids=["x5t#S256", "jwk", "jwe", "jku", "kid", "osc", "jkt and x5t#S256", "unknown member"],
)
def test_a_token_bound_by_a_method_this_server_cannot_check_is_refused(
    cnf: dict[str, Any], fragment: str, es: Signer, verifier: JWTVerifier
) -> None:
    """RFC 7800 §3.1, RFC 8705 §3: honouring the token as a bearer token would drop the binding."""
    error = refuse(verifier, make(es, cnf=cnf), fragment)
    assert "cannot check" in error.description or "does not know" in error.description
    assert error.description.isascii()  # it goes into a WWW-Authenticate header


@pytest.mark.parametrize(
    ("cnf", "fragment"),
    [
        ("jkt", "cnf claim"),
        (None, "cnf claim"),
        ([{"jkt": JKT}], "cnf claim"),
        ({}, "cnf claim"),
        ({"jkt": ""}, "cnf.jkt"),
        ({"jkt": 123}, "cnf.jkt"),
        ({"jkt": [JKT]}, "cnf.jkt"),
        ({"jkt": None}, "cnf.jkt"),
        ({"jkt": {"jkt": JKT}}, "cnf.jkt"),
        ({"jkt": JKT[:-1]}, "cnf.jkt"),
        ({"jkt": JKT + "A"}, "cnf.jkt"),
        ({"jkt": JKT + "="}, "cnf.jkt"),
        ({"jkt": JKT[:-1] + "t"}, "cnf.jkt"),  # non-canonical last character: no digest encodes so
        ({"jkt": JKT.replace("-", "+")}, "cnf.jkt"),  # base64, not base64url
        ({"jkt": JKT[:-1] + "\n"}, "cnf.jkt"),
        ({"jkt": MARK * 4}, "cnf.jkt"),
    ],
    ids=repr,
)
def test_a_malformed_cnf_is_refused(cnf: Any, fragment: str, es: Signer, verifier: JWTVerifier) -> None:
    assert refuse(verifier, make(es, cnf=cnf), fragment).description.isascii()


# -- a refused issuer: both values in the reason (for the log), neither in the description --------


@pytest.mark.parametrize(
    ("iss", "shown"),
    [
        (f"{ISSUER}/", f"'{ISSUER}/'"),  # the usual slip: a trailing slash
        (ISSUER.upper(), f"'{ISSUER.upper()}'"),
        (f"{ISSUER}\n2030-01-01 INFO forged line", f"'{ISSUER}\\n2030-01-01 INFO forged line'"),
        (f"{ISSUER}\u202e", f"'{ISSUER}\\u202e'"),  # bidi override: escaped, never printed
        ("é" * 600, "'" + "\\xe9" * 200 + "'... (600 characters)"),  # bounded
        ([ISSUER], "an array"),  # a value of another type is named, not printed
        (DROP, "none"),
    ],
    ids=["trailing slash", "case", "newline", "bidi override", "long", "array", "missing"],
)
def test_a_refused_issuer_is_named_in_the_reason_and_never_in_the_description(
    iss: Any, shown: str, es: Signer, verifier: JWTVerifier
) -> None:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(make(es, iss=iss))
    assert caught.value.description == "the token issuer is not accepted"
    assert caught.value.reason == f"the token issuer {shown} is not the expected '{ISSUER}'"
    assert caught.value.reason.isascii() and caught.value.reason.isprintable()
