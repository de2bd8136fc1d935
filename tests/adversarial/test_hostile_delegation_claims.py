"""Hostile ``act``, ``acr`` and ``auth_time`` claims (RFC 8693 §4.1, RFC 9068 §2.2.1), in JWTs
signed with real keys, in introspection answers from a real loopback endpoint, and from a custom
verifier: each is refused as ``invalid_token`` (401) where the token is verified, with a
description that never repeats the value, and never reaches the decision."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from policy import Actor, Roles, ScopeMap, parse_challenges
from resource_server import InvalidToken, JWTVerifier, VerifiedToken
from resource_server.guard import Denial, Granted, Guard
from resource_server.tokens import IntrospectionVerifier
from resource_server.tokens.claims import MAX_ACTOR_DEPTH, MAX_AUTH_TIME
from tests.resource_server.test_introspection import CLIENT_ID, CLIENT_SECRET, IntrospectionServer, opaque
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, Signer, es256, jwks

#: A marker put in hostile values: no description may repeat it.
MARK = "MARK-5e1d"
LEEWAY = 30


def nested(depth: int, **extra: Any) -> dict[str, Any]:
    """An ``act`` claim ``depth`` actors deep, the current one outermost."""
    claim: dict[str, Any] | None = None
    for level in reversed(range(depth)):
        claim = {"sub": f"agent-{level}", **({"act": claim} if claim is not None else {}), **extra}
    assert claim is not None
    return claim


HOSTILE_ACT = {
    "a string": "agent-1",
    "a number": 5,
    "true": True,
    "null": None,
    "an array": [{"sub": "agent-1"}],
    "an empty object": {},
    "no sub": {"client_id": "c"},
    "a numeric sub": {"sub": 5},
    "an empty sub": {"sub": ""},
    "an array sub": {"sub": ["agent-1"]},
    "a bidi override in sub": {"sub": f"agent\u202e{MARK}"},
    "a newline in sub": {"sub": f"agent\n{MARK}"},
    "a NUL in sub": {"sub": f"agent\x00{MARK}"},
    "a zero-width space in sub": {"sub": f"agent\u200b{MARK}"},
    "a lone surrogate in sub": {"sub": f"agent\ud800{MARK}"},
    "a huge sub": {"sub": MARK + "x" * 1100},
    "a numeric client_id": {"sub": "agent-1", "client_id": 7},
    "a control in client_id": {"sub": "agent-1", "client_id": f"c\x1b[2J{MARK}"},
    "an empty iss": {"sub": "agent-1", "iss": ""},
    "a bidi iss": {"sub": "agent-1", "iss": f"https://as\u2066{MARK}"},
    "a string nested act": {"sub": "agent-1", "act": "agent-0"},
    "a null nested act": {"sub": "agent-1", "act": None},
    "an empty nested act": {"sub": "agent-1", "act": {}},
    "a bad sub deep down": nested(5) | {"act": nested(3) | {"act": {"sub": f"\u2028{MARK}"}}},
    "one level too deep": nested(MAX_ACTOR_DEPTH + 1),
    "far too deep": nested(200),
}
HOSTILE_ACR = {
    "a number": 2,
    "true": True,
    "null": None,
    "empty": "",
    "an array": ["mfa"],
    "an object": {"value": "mfa"},
    "a bidi override": f"mfa\u202e{MARK}",
    "a newline": f"mfa\n{MARK}",
    "huge": MARK + "x" * 1100,
}
HOSTILE_AUTH_TIME = {
    "true": True,
    "false": False,
    "a float": NOW - 10.5,
    "an integral float": float(NOW - 10),
    "a string": str(NOW - 10),
    "null": None,
    "an array": [NOW - 10],
    "negative": -1,
    "past year 9999": MAX_AUTH_TIME + 1,
    "huge": 10**400,
    "in the future beyond the leeway": NOW + LEEWAY + 1,
    "far in the future": NOW + 10**9,
}
#: Each hostile claim value, as (claim name, value) with a readable id.
HOSTILE = [
    *(pytest.param("act", v, id=f"act {k}") for k, v in HOSTILE_ACT.items()),
    *(pytest.param("acr", v, id=f"acr {k}") for k, v in HOSTILE_ACR.items()),
    *(pytest.param("auth_time", v, id=f"auth_time {k}") for k, v in HOSTILE_AUTH_TIME.items()),
]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return es256("delegation")


@pytest.fixture
def verifier(signer: Signer) -> JWTVerifier:
    return JWTVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=FakeClock(NOW), leeway=LEEWAY
    )


def sign(signer: Signer, **claims: Any) -> str:
    """A token whose payload is serialized as given (``json.dumps`` would refuse a lone
    surrogate only when asked to; it writes it as ``\\ud800``, which the parser reads back)."""
    return signer.token(now=NOW, **claims)


def refused_as_invalid(verify: Callable[[str], VerifiedToken], token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verify(token)
    for text in (caught.value.description, caught.value.reason):
        assert MARK not in text and token not in text
    return caught.value


# -- JWT access tokens (RFC 9068) ------------------------------------------------------------------


@pytest.mark.parametrize(("claim", "value"), HOSTILE)
def test_a_jwt_with_a_hostile_claim_is_invalid(
    verifier: JWTVerifier, signer: Signer, claim: str, value: Any
) -> None:
    refused = refused_as_invalid(verifier.verify, sign(signer, **{claim: value}))
    assert claim.split("_")[0] in refused.description  # it names the claim it refuses


def test_the_chain_is_read_current_actor_first(verifier: JWTVerifier, signer: Signer) -> None:
    act = {
        "sub": "agent:reporting",
        "client_id": "reporting-client",
        "iss": "https://as.test",
        "act": {"sub": "agent:orchestrator", "act": {"sub": "user-ui"}},
        "may_act": {"sub": "ignored"},  # RFC 8693 §4.1: other members may appear; they are not read
    }
    token = verifier.verify(sign(signer, act=act, acr="urn:example:mfa", auth_time=NOW - 60))
    assert token.actors == (
        Actor("agent:reporting", client_id="reporting-client", iss="https://as.test"),
        Actor("agent:orchestrator"),
        Actor("user-ui"),
    )
    assert (token.acr, token.auth_time) == ("urn:example:mfa", NOW - 60)


def test_a_token_without_the_claims_has_none(verifier: JWTVerifier, signer: Signer) -> None:
    token = verifier.verify(sign(signer))
    assert (token.actors, token.acr, token.auth_time) == ((), None, None)


def test_the_deepest_chain_accepted_is_the_bound(verifier: JWTVerifier, signer: Signer) -> None:
    token = verifier.verify(sign(signer, act=nested(MAX_ACTOR_DEPTH)))
    assert [actor.sub for actor in token.actors] == [f"agent-{n}" for n in range(MAX_ACTOR_DEPTH)]


def test_auth_time_within_the_leeway_and_visible_identifiers_are_accepted(
    verifier: JWTVerifier, signer: Signer
) -> None:
    token = verifier.verify(sign(signer, auth_time=NOW + LEEWAY, act={"sub": "agent: Ünïcode 代理"}, acr="0"))
    assert (token.auth_time, token.actors[0].sub, token.acr) == (NOW + LEEWAY, "agent: Ünïcode 代理", "0")


# -- introspection answers (RFC 7662, RFC 8693 §4.1 applies to them too) -----------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[IntrospectionServer]:
    running = IntrospectionServer()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def introspection(endpoint: IntrospectionServer) -> IntrospectionVerifier:
    return IntrospectionVerifier(
        endpoint=endpoint.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audience=AUDIENCE,
        issuer=ISSUER,
        clock=FakeClock(NOW),
        timeout=2.0,
    )


def answered(endpoint: IntrospectionServer, **claims: Any) -> str:
    token = opaque()
    endpoint.answers[token] = {
        "active": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "scope": "project:read",
        "exp": NOW + 600,
        **claims,
    }
    return token


# An answer nested deeper than strict JSON allows (32) is no answer at all: 503, as before.
@pytest.mark.parametrize(("claim", "value"), [p for p in HOSTILE if p.id != "act far too deep"])
def test_an_answer_with_a_hostile_claim_is_invalid(
    introspection: IntrospectionVerifier, endpoint: IntrospectionServer, claim: str, value: Any
) -> None:
    refused_as_invalid(introspection.verify, answered(endpoint, **{claim: value}))


def test_an_answer_with_auth_time_a_second_ahead_is_invalid(
    introspection: IntrospectionVerifier, endpoint: IntrospectionServer
) -> None:
    # No leeway for answers, as for their nbf: the answer comes from the authorization server now.
    refused = refused_as_invalid(introspection.verify, answered(endpoint, auth_time=NOW + 1))
    assert refused.description == "the token's auth_time is in the future"


def test_an_answer_carries_the_chain_acr_and_auth_time(
    introspection: IntrospectionVerifier, endpoint: IntrospectionServer
) -> None:
    act = {"sub": "agent:deploy", "client_id": "deployer", "act": {"sub": "agent:chat"}}
    token = introspection.verify(answered(endpoint, act=act, acr="mfa", auth_time=NOW))
    assert token.actors == (Actor("agent:deploy", client_id="deployer"), Actor("agent:chat"))
    assert (token.acr, token.auth_time) == ("mfa", NOW)


# -- a custom verifier's VerifiedToken, through the guard -----------------------------------------


class CustomVerifier:
    """A verifier of the application's own: it builds VerifiedToken from claims it trusts."""

    max_token_bytes = 4096

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    @property
    def clock(self) -> Callable[[], float]:
        return FakeClock(NOW)

    def verify(self, token: str) -> VerifiedToken:
        return VerifiedToken(
            subject="user-1",
            scopes=frozenset({"project:read"}),
            org="acme",
            client_id=None,
            expires_at=NOW + 600,
            claims=self.claims,
        )


@pytest.mark.parametrize(
    ("claim", "value"), [p for p in HOSTILE if "future" not in str(p.id)]
)  # no clock in a VerifiedToken: the future is the verifier's to check
def test_a_custom_verifiers_hostile_claim_is_a_401(claim: str, value: Any) -> None:
    guard = Guard(
        verifier=CustomVerifier({claim: value}),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: "member",
    )
    outcome = guard.authorize(
        authorization="Bearer custom-token",
        token_elsewhere=False,
        method="GET",
        scope_map=ScopeMap({"GET": "project:read"}),
        org="acme",
    )
    assert type(outcome) is Denial and outcome.status == 401 and outcome.error == "invalid_token"
    assert MARK not in outcome.body.decode() and MARK not in (outcome.www_authenticate or "")
    (challenge,) = parse_challenges(outcome.www_authenticate or "")
    assert challenge.get("error") == "invalid_token"
    assert json.loads(outcome.body)["error_description"] == challenge.get("error_description")


def test_a_custom_verifiers_chain_reaches_the_access() -> None:
    guard = Guard(
        verifier=CustomVerifier({"act": {"sub": "agent:x", "act": {"sub": "agent:y"}}, "acr": "mfa"}),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: "member",
    )
    outcome = guard.authorize(
        authorization="Bearer custom-token",
        token_elsewhere=False,
        method="GET",
        scope_map=ScopeMap({"GET": "project:read"}),
        org="acme",
    )
    assert type(outcome) is Granted
    assert outcome.access.actor == Actor("agent:x")
    assert outcome.access.actors == (Actor("agent:x"), Actor("agent:y"))
    assert outcome.access.acr == "mfa"
