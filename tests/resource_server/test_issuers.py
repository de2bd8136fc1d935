"""TrustedIssuers: several authorization servers behind one resource server, with real keys,
real Flask apps, and a real introspection endpoint for tokens that are not JWTs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask, jsonify

from policy import Roles
from resource_server import InvalidToken, JWTVerifier, TrustedIssuers
from resource_server.flask import ResourceServer, current_access
from tests.support import AUDIENCE, DROP, NOW, FakeClock, Signer, es256, jwks, rs256

ACME, GLOBEX = "https://login.acme.test", "https://login.globex.test/tenant"
CLOCK = FakeClock(NOW)
ROLES = Roles({"admin": ["project:read", "project:write"]})


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if (subject, org) in {("alice", "acme"), ("bob", "globex")} else None


@pytest.fixture(scope="module")
def acme_key() -> Signer:
    return es256("acme-1")


@pytest.fixture(scope="module")
def globex_key() -> Signer:
    return rs256("globex-1")


@pytest.fixture(scope="module")
def trusted(acme_key: Signer, globex_key: Signer) -> TrustedIssuers:
    return TrustedIssuers(
        [
            JWTVerifier(issuer=ACME, audience=AUDIENCE, jwks=jwks(acme_key), clock=CLOCK),
            JWTVerifier(
                issuer=GLOBEX, audience=AUDIENCE, jwks=jwks(globex_key), clock=CLOCK, issuer_org="globex"
            ),
        ]
    )


def refuse(verifier: TrustedIssuers, token: str, fragment: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert fragment in caught.value.description


def test_each_token_goes_to_its_issuer(trusted: TrustedIssuers, acme_key: Signer, globex_key: Signer) -> None:
    acme = trusted.verify(acme_key.token(iss=ACME, sub="alice"))
    globex = trusted.verify(globex_key.token(iss=GLOBEX, sub="bob", org_id=DROP))
    assert (acme.subject, acme.org) == ("alice", "acme")
    assert (globex.subject, globex.org) == ("bob", "globex")  # issuer_org: no claim needed
    assert trusted.issuers == (ACME, GLOBEX)


def test_crossed_keys_are_refused(trusted: TrustedIssuers, acme_key: Signer, globex_key: Signer) -> None:
    """The unverified iss only chooses the verifier; that verifier's own keys decide."""
    refuse(trusted, globex_key.token(iss=ACME, sub="bob"), "unknown key")
    impostor = es256("acme-1")  # the same kid as acme's key, another private key
    refuse(trusted, impostor.token(iss=ACME, sub="alice"), "signature")
    refuse(trusted, acme_key.token(iss=GLOBEX, sub="bob"), "unknown key")


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"iss": "https://evil.test"}, "issuer"),
        ({"iss": DROP}, "issuer"),
        ({"iss": ["https://login.acme.test"]}, "issuer"),
        ({"iss": ACME.upper()}, "issuer"),  # exact, case-sensitive (RFC 7519 §4.1.1)
        ({"iss": GLOBEX, "org_id": "acme"}, "organization"),  # globex's issuer cannot speak for acme
    ],
)
def test_issuers_it_does_not_trust_are_refused(
    claims: dict[str, Any], fragment: str, trusted: TrustedIssuers, globex_key: Signer
) -> None:
    refuse(trusted, globex_key.token(**claims), fragment)


@pytest.mark.parametrize(
    "token",
    ["opaque-token-value", "a.b", "a.b.c.d", "e30.e30.", "abc.!!!.def", "x" * 9000],
    ids=["opaque", "two segments", "four segments", "empty signature", "bad payload", "oversized"],
)
def test_without_introspection_anything_but_a_jwt_is_refused(trusted: TrustedIssuers, token: str) -> None:
    with pytest.raises(InvalidToken):
        trusted.verify(token)


def test_a_jws_with_a_payload_that_is_not_json_is_refused(trusted: TrustedIssuers) -> None:
    refuse(trusted, "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln", "JSON")


def test_construction_fails_closed(acme_key: Signer) -> None:
    one = JWTVerifier(issuer=ACME, audience=AUDIENCE, jwks=jwks(acme_key), clock=CLOCK)
    same = JWTVerifier(issuer=ACME, audience="https://other.test", jwks=jwks(acme_key), clock=CLOCK)
    with pytest.raises(ValueError, match="distinct"):
        TrustedIssuers([one, same])
    with pytest.raises(ValueError, match="at least one"):
        TrustedIssuers([])
    other_clock = JWTVerifier(issuer=GLOBEX, audience=AUDIENCE, jwks=jwks(acme_key), clock=time.time)
    with pytest.raises(ValueError, match="clock"):
        TrustedIssuers([one, other_clock])
    with pytest.raises(TypeError):
        TrustedIssuers([object()])  # type: ignore[list-item]


def tenant_app(trusted: TrustedIssuers, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"RESOURCE_SERVER_RESOURCE": "https://api.test", **config})
    rs = ResourceServer(app, verifier=trusted, roles=ROLES, membership=membership)

    @app.route("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> Any:
        return jsonify(org=org, subject=current_access.subject)

    return app


def test_a_tenants_token_works_on_its_org_and_nowhere_else(
    trusted: TrustedIssuers, acme_key: Signer, globex_key: Signer
) -> None:
    client = tenant_app(trusted).test_client()
    bob = {"Authorization": f"Bearer {globex_key.token(iss=GLOBEX, sub='bob', org_id=DROP)}"}
    alice = {"Authorization": f"Bearer {acme_key.token(iss=ACME, sub='alice')}"}
    assert client.get("/orgs/globex/projects", headers=bob).get_json() == {"org": "globex", "subject": "bob"}
    refused = client.get("/orgs/acme/projects", headers=bob)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert client.get("/orgs/acme/projects", headers=alice).status_code == 200
    assert client.get("/orgs/globex/projects", headers=alice).status_code == 401  # acme's org_id


def test_metadata_lists_every_trusted_issuer_unless_configured(trusted: TrustedIssuers) -> None:
    listed = tenant_app(trusted).test_client().get("/.well-known/oauth-protected-resource").get_json()
    assert listed["authorization_servers"] == [ACME, GLOBEX]
    configured = tenant_app(trusted, RESOURCE_SERVER_AUTHORIZATION_SERVERS=["https://as.test"])
    document = configured.test_client().get("/.well-known/oauth-protected-resource").get_json()
    assert document["authorization_servers"] == ["https://as.test"]


def test_one_clock_given_as_two_bound_methods_is_one_clock(acme_key: Signer, globex_key: Signer) -> None:
    """``clock=c.now`` twice makes two bound-method objects of one clock: the same clock."""

    class Clock:
        def now(self) -> float:
            return float(NOW)

    clock = Clock()
    trusted = TrustedIssuers(
        [
            JWTVerifier(issuer=ACME, audience=AUDIENCE, jwks=jwks(acme_key), clock=clock.now),
            JWTVerifier(issuer=GLOBEX, audience=AUDIENCE, jwks=jwks(globex_key), clock=clock.now),
        ]
    )
    assert trusted.verify(acme_key.token(iss=ACME, sub="alice")).subject == "alice"
