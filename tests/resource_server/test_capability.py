"""Capability tokens: minting only de-escalates, verification is strict, and the Flask extension
routes them by prefix through the same access assembly (role ∩ token, org binding)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Actor, Roles, assemble_access, parse_challenges
from resource_server import InvalidToken, JWTVerifier
from resource_server.capability import CapabilityIssuer, CapabilityVerifier
from resource_server.flask import ResourceServer, current_access
from resource_server.tokens.jws import b64encode, json_object
from tests.support import AUDIENCE, ISSUER, FakeClock, Signer, jwks

KEY = "k" * 32
OLD_KEY = "o" * 32
READONLY = {"project:read", "team:read"}
ROLES = Roles(
    {
        "member": ["project:read", "team:read"],
        "admin": ["project:read", "project:write", "team:read", "team:write"],
        "owner": ["org:admin"],  # held by nobody here: the alternative no member's role holds
    }
)
MEMBERS = {("user-1", "acme"): "admin", ("user-1", "globex"): "admin", ("user-2", "acme"): "member"}


def admin_access(org: str = "acme", token_scopes: Any = None):
    return assemble_access(
        subject="user-1", role_scopes=ROLES.scopes_for("admin"), token_scopes=token_scopes, request_org=org
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_900_000_000)


@pytest.fixture
def issuer(clock: FakeClock) -> CapabilityIssuer:
    return CapabilityIssuer(
        keys={"k1": KEY}, issuer="https://api.test", readonly_scopes=READONLY, clock=clock
    )


def segment(token: str, index: int) -> dict[str, Any]:
    return json_object(token.removeprefix("cap_").split(".")[index], "segment")


def claims_of(token: str) -> dict[str, Any]:
    return segment(token, 1)


def header_of(token: str) -> dict[str, Any]:
    return segment(token, 0)


def test_mint_is_read_only_without_approvals(issuer: CapabilityIssuer) -> None:
    token = issuer.mint(admin_access(), session_id="s-1")
    assert token.startswith("cap_")
    claims = claims_of(token)
    assert claims["scope"] == "project:read team:read"
    assert (claims["sub"], claims["org_id"], claims["sid"], claims["aud"]) == (
        "user-1",
        "acme",
        "s-1",
        "agent-api",
    )
    assert claims["exp"] - claims["iat"] == 300


def test_requested_scopes_narrow_further(issuer: CapabilityIssuer) -> None:
    capability = issuer.mint_capability(
        admin_access(), session_id="s", requested_scopes=["team:read", "project:write"]
    )
    assert capability.scopes == {"team:read"}


def test_mint_never_exceeds_the_callers_effective_scopes(issuer: CapabilityIssuer) -> None:
    narrowed = admin_access(token_scopes={"team:read"})
    assert issuer.mint_capability(narrowed, session_id="s").scopes == {"team:read"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"session_id": "x" * 129}, "sessionId"),
        ({"session_id": ""}, "sessionId"),
        ({"session_id": 7}, "sessionId"),
        ({"session_id": "s", "requested_scopes": [1]}, "requestedScopes"),
        ({"session_id": "s", "requested_scopes": {"a": 1}}, "requestedScopes"),
        ({"session_id": "s", "requested_scopes": ["a b"]}, "scope"),
    ],
)
def test_bad_mint_requests(issuer: CapabilityIssuer, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issuer.mint(admin_access(), **kwargs)


def test_org_less_access_cannot_mint(issuer: CapabilityIssuer) -> None:
    with pytest.raises(ValueError, match="organization"):
        issuer.mint(
            assemble_access(subject="u", role_scopes={"project:read"}, token_scopes=None), session_id="s"
        )


def test_weak_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CapabilityIssuer(keys={"k": "short"}, issuer="i", readonly_scopes=READONLY)
    with pytest.raises(ValueError, match="ttl"):
        CapabilityIssuer(keys={"k": KEY}, issuer="i", readonly_scopes=READONLY, ttl=86400)
    with pytest.raises(ValueError):
        CapabilityIssuer(keys={}, issuer="i", readonly_scopes=READONLY)


scope_pool = st.sampled_from(["project:read", "project:write", "team:read", "team:write", "org:admin", "x:y"])


@settings(max_examples=200, deadline=None)
@given(
    role=st.frozensets(scope_pool),
    token=st.one_of(st.none(), st.frozensets(scope_pool)),
    readonly=st.frozensets(scope_pool),
    requested=st.one_of(st.none(), st.frozensets(scope_pool)),
)
def test_minted_scopes_are_always_within_the_callers_effective_scopes(
    role, token, readonly, requested
) -> None:
    issuer = CapabilityIssuer(
        keys={"k": KEY}, issuer="i", readonly_scopes=readonly, clock=lambda: 1_900_000_000
    )
    access = assemble_access(subject="u", role_scopes=role, token_scopes=token, request_org="acme")
    capability = issuer.mint_capability(access, session_id="s", requested_scopes=requested)
    assert capability.scopes <= access.scopes
    assert capability.scopes <= readonly
    if requested is not None:
        assert capability.scopes <= requested
    assert issuer.verifier().verify(capability.token).scopes == capability.scopes


# -- verification ----------------------------------------------------------------------------------


def forge(
    claims: dict[str, Any], *, header: dict[str, Any] | None = None, key: str = KEY, prefix: str = "cap_"
) -> str:
    from jwt.algorithms import HMACAlgorithm

    head = {"alg": "HS256", "typ": "cap+jwt", "kid": "k1", **(header or {})}
    signing_input = f"{b64encode(json.dumps(head).encode())}.{b64encode(json.dumps(claims).encode())}"
    signature = HMACAlgorithm(HMACAlgorithm.SHA256).sign(signing_input.encode(), key.encode())
    return f"{prefix}{signing_input}.{b64encode(signature)}"


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = 1_900_000_000
    claims = {
        "iss": "https://api.test",
        "aud": "agent-api",
        "sub": "user-1",
        "org_id": "acme",
        "scope": "project:read",
        "sid": "s",
        "act": {"sub": "s"},
        "jti": "j",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def test_a_forged_good_token_verifies(issuer: CapabilityIssuer) -> None:
    assert issuer.verifier().verify(forge(good_claims())).subject == "user-1"


@pytest.mark.parametrize(
    "token",
    [
        forge(good_claims(sub=...)),
        forge(good_claims(sub=7)),
        forge(good_claims(org_id=...)),
        forge(good_claims(org_id=["acme"])),
        forge(good_claims(scope=["project:read"])),
        forge(good_claims(scope="a\u00a0b")),
        forge(good_claims(sid="x" * 129)),
        forge(good_claims(sid=5)),
        forge(good_claims(exp=True)),
        forge(good_claims(exp=1_900_000_000 + 301)),  # longer than the ttl this server issues
        forge(good_claims(iat=1_900_000_000 - 400, exp=1_900_000_000 - 100)),  # expired
        forge(good_claims(aud="https://api.test")),  # an access-token audience
        forge(good_claims(iss="https://evil.test")),
        forge(good_claims(), key="w" * 32),  # wrong key
        forge(good_claims(), header={"kid": "nope"}),
        forge(good_claims(), header={"typ": "at+jwt"}),
        forge(good_claims(), header={"alg": "HS512"}),
        forge(good_claims(), header={"crit": ["x"]}),
        forge(good_claims(), prefix=""),
        "cap_" + "a" * 5000,
        "cap_not.a.jwt!",
        "cap_",
    ],
)
def test_hostile_capabilities_are_invalid_tokens(issuer: CapabilityIssuer, token: str) -> None:
    with pytest.raises(InvalidToken):
        issuer.verifier().verify(token)


def test_key_rotation(clock: FakeClock) -> None:
    old = CapabilityIssuer(
        keys={"k0": OLD_KEY}, issuer="https://api.test", readonly_scopes=READONLY, clock=clock
    )
    new = CapabilityIssuer(
        keys={"k1": KEY, "k0": OLD_KEY}, issuer="https://api.test", readonly_scopes=READONLY, clock=clock
    )
    old_token = old.mint(admin_access(), session_id="s")
    assert new.verifier().verify(old_token).subject == "user-1"  # the old key still verifies
    assert header_of(new.mint(admin_access(), session_id="s"))["kid"] == "k1"  # the first key signs
    retired = CapabilityVerifier(keys={"k1": KEY}, issuer="https://api.test", clock=clock)
    with pytest.raises(InvalidToken):
        retired.verify(old_token)


# -- through the Flask extension -------------------------------------------------------------------


def make_client(es: Signer, issuer: CapabilityIssuer):
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock()),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
        capabilities=issuer.verifier(),
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": ["project:write", "org:admin"]})
    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "scopes": sorted(current_access.scopes)}

    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_capability_reads_and_is_refused_a_write_with_the_challenge(
    es: Signer, issuer: CapabilityIssuer
) -> None:
    client = make_client(es, issuer)
    token = issuer.mint(admin_access(), session_id="s")
    assert client.get("/orgs/acme/projects", headers=bearer(token)).json["scopes"] == [
        "project:read",
        "team:read",
    ]
    refused = client.post("/orgs/acme/projects", headers=bearer(token))
    assert refused.status_code == 403
    (challenge,) = parse_challenges(refused.headers["WWW-Authenticate"])
    assert (challenge.get("error"), challenge.get("scope")) == ("insufficient_scope", "project:write")


def test_a_capability_for_org_a_is_401_on_org_b(es: Signer, issuer: CapabilityIssuer) -> None:
    client = make_client(es, issuer)
    token = issuer.mint(admin_access("acme"), session_id="s")
    response = client.get("/orgs/globex/projects", headers=bearer(token))
    assert response.status_code == 401
    (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
    assert challenge.get("error") == "invalid_token"


def test_a_capability_is_narrowed_by_the_current_role(es: Signer, issuer: CapabilityIssuer) -> None:
    client = make_client(es, issuer)
    member = assemble_access(
        subject="user-2", role_scopes=ROLES.scopes_for("member"), token_scopes=None, request_org="acme"
    )
    token = issuer.mint(member, session_id="s")
    assert client.get("/orgs/acme/projects", headers=bearer(token)).status_code == 200


def test_hostile_capabilities_through_flask_are_401(es: Signer, issuer: CapabilityIssuer) -> None:
    client = make_client(es, issuer)
    for token in (forge(good_claims(sub=7)), forge(good_claims(sid="x" * 500)), "cap_" + "a.b.c"):
        assert client.get("/orgs/acme/projects", headers=bearer(token)).status_code == 401


# -- identifiers: no control or invisible characters (shared with access tokens) -------------------


@pytest.mark.parametrize("claim", ["sub", "org_id", "sid"])
@pytest.mark.parametrize(
    "hidden", ["\x00", "\n", "\x7f", "\x85", "\ud800", "\u2028", "\u202e", "\u200b"], ids=repr
)
def test_capabilities_with_control_or_invisible_identifiers_are_refused(
    claim: str, hidden: str, issuer: CapabilityIssuer
) -> None:
    with pytest.raises(InvalidToken, match="control or invisible") as refused:
        issuer.verifier().verify(forge(good_claims(**{claim: f"user{hidden}1"})))
    assert hidden not in refused.value.description


def test_capabilities_with_visible_identifiers_of_any_script_verify(issuer: CapabilityIssuer) -> None:
    verified = issuer.verifier().verify(forge(good_claims(sub="josé", org_id="用户-1")))
    assert (verified.subject, verified.org) == ("josé", "用户-1")


# -- the agent session is the capability's actor (RFC 8693 §4.1) ----------------------------------


def test_a_capability_names_its_session_as_the_actor(issuer: CapabilityIssuer) -> None:
    token = issuer.mint(admin_access(), session_id="s-1")
    assert claims_of(token)["act"] == {"sub": "s-1"}
    verified = issuer.verifier().verify(token)
    assert verified.actors == (Actor("s-1"),)


def test_a_capability_minted_by_an_agent_keeps_the_chain(issuer: CapabilityIssuer) -> None:
    delegated = assemble_access(
        subject="user-1",
        role_scopes=ROLES.scopes_for("admin"),
        token_scopes={"project:read"},
        request_org="acme",
        actor_chain=(Actor("agent:chat", client_id="chat-app"), Actor("user-ui")),
    )
    token = issuer.mint(delegated, session_id="s-2")
    assert claims_of(token)["act"] == {
        "sub": "s-2",
        "act": {"sub": "agent:chat", "client_id": "chat-app", "act": {"sub": "user-ui"}},
    }
    assert issuer.verifier().verify(token).actors == (
        Actor("s-2"),
        Actor("agent:chat", client_id="chat-app"),
        Actor("user-ui"),
    )


def test_a_chain_cannot_grow_past_the_bound_by_minting(issuer: CapabilityIssuer) -> None:
    deep = assemble_access(
        subject="user-1",
        role_scopes=ROLES.scopes_for("admin"),
        token_scopes=None,
        request_org="acme",
        actor_chain=tuple(Actor(f"agent-{n}") for n in range(8)),
    )
    with pytest.raises(ValueError, match="longer than 8 actors"):
        issuer.mint(deep, session_id="s")


def test_a_capability_minted_before_it_named_its_actor_says_to_mint_a_new_one(
    issuer: CapabilityIssuer,
) -> None:
    with pytest.raises(InvalidToken) as refused:
        issuer.verifier().verify(forge(good_claims(act=...)))
    assert refused.value.description == "this capability token names no acting session (act); mint a new one"


@pytest.mark.parametrize(
    "act", [{"sub": "another-session"}, {"sub": "agent", "act": {"sub": "s"}}, "s", {"sub": "s\u202e"}]
)
def test_a_capability_whose_actor_is_not_its_session_is_refused(issuer: CapabilityIssuer, act: Any) -> None:
    with pytest.raises(InvalidToken):
        issuer.verifier().verify(forge(good_claims(act=act)))


def test_an_old_capability_is_a_401_with_that_description_through_flask(
    es: Signer, issuer: CapabilityIssuer
) -> None:
    response = make_client(es, issuer).get("/orgs/acme/projects", headers=bearer(forge(good_claims(act=...))))
    assert response.status_code == 401
    (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
    assert challenge.get("error") == "invalid_token"
    assert "mint a new one" in (challenge.get("error_description") or "")
