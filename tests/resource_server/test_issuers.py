"""TrustedIssuers: several authorization servers behind one resource server, with real keys,
real Flask apps, and a real introspection endpoint for tokens that are not JWTs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify

from policy import Roles
from resource_server import InvalidToken, JWTVerifier, TrustedIssuers
from resource_server.flask import ResourceServer, current_access
from resource_server.tokens.introspection import IntrospectionVerifier
from tests.resource_server.test_introspection import CLIENT_ID, CLIENT_SECRET, IntrospectionServer, active
from tests.support import AUDIENCE, DROP, ISSUER, NOW, FakeClock, Signer, b64url, es256, jwks, rs256

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


# -- routing: only a JWS goes to the JWT verifiers -------------------------------------------------


@pytest.fixture
def introspection() -> Iterator[IntrospectionServer]:
    with IntrospectionServer.serving() as running:
        yield running


def with_introspection(server: IntrospectionServer, acme_key: Signer) -> TrustedIssuers:
    return TrustedIssuers(
        [JWTVerifier(issuer=ACME, audience=AUDIENCE, jwks=jwks(acme_key), clock=CLOCK)],
        opaque=IntrospectionVerifier(
            endpoint=server.url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            audience=AUDIENCE,
            issuer=ISSUER,
            clock=CLOCK,
            timeout=2.0,
        ),
    )


def segment(value: Any) -> str:
    return b64url(json.dumps(value).encode())


OPAQUE_SHAPES = {
    "three base64url words": "aGVsbG8.d29ybGQ.Zm9v",  # "hello.world.foo"
    "PASETO v4.local without footer": f"v4.local.{b64url(bytes(range(64)))}",
    "header without alg": f"{segment({'typ': 'JWT'})}.{segment({'iss': ACME})}.c2ln",
    "alg not a string": f"{segment({'alg': 256})}.{segment({'iss': ACME})}.c2ln",
    "header a JSON array": f"{segment(['ES256'])}.{segment({'iss': ACME})}.c2ln",
}


@pytest.mark.parametrize("token", list(OPAQUE_SHAPES.values()), ids=list(OPAQUE_SHAPES))
def test_a_token_whose_first_segment_is_no_jose_header_goes_to_introspection(
    token: str, introspection: IntrospectionServer, acme_key: Signer
) -> None:
    introspection.answers[token] = active(sub="carol")
    assert with_introspection(introspection, acme_key).verify(token).subject == "carol"
    assert introspection.calls == 1


def unsigned(header: dict[str, Any], signature: str = "") -> str:
    return f"{segment(header)}.{segment({'iss': ACME, 'sub': 'alice', 'aud': AUDIENCE})}.{signature}"


JWS_SHAPES = {
    'alg "none", empty signature (RFC 7519 §6)': (unsigned({"alg": "none"}), "compact-serialized"),
    'alg "none" with a signature': (unsigned({"alg": "none", "typ": "at+jwt"}, "c2ln"), "algorithm"),
    "alg HS256": (unsigned({"alg": "HS256", "typ": "at+jwt"}, "c2ln"), "algorithm"),
    'alg ""': (unsigned({"alg": "", "typ": "at+jwt"}, "c2ln"), "algorithm"),
}


@pytest.mark.parametrize(("token", "fragment"), list(JWS_SHAPES.values()), ids=list(JWS_SHAPES))
def test_a_jws_is_judged_as_a_jwt_whatever_its_alg_and_never_introspected(
    token: str, fragment: str, introspection: IntrospectionServer, acme_key: Signer
) -> None:
    refuse(with_introspection(introspection, acme_key), token, fragment)
    assert introspection.calls == 0


def test_a_jwt_still_goes_to_its_issuer_with_introspection_configured(
    introspection: IntrospectionServer, acme_key: Signer
) -> None:
    trusted = with_introspection(introspection, acme_key)
    assert trusted.verify(acme_key.token(iss=ACME, sub="alice")).subject == "alice"
    assert introspection.calls == 0


# -- a refused issuer: what was received and what is trusted, for the log only ---------------------


def test_a_refused_issuer_names_the_trusted_ones_in_the_reason(
    trusted: TrustedIssuers, globex_key: Signer
) -> None:
    with pytest.raises(InvalidToken) as caught:
        trusted.verify(globex_key.token(iss=f"{ACME.upper()}/"))
    assert caught.value.description == "the token issuer is not accepted"
    assert caught.value.reason == (
        f"the token issuer '{ACME.upper()}/' is not a trusted one ('{ACME}', '{GLOBEX}'); the trusted"
        f" '{ACME}' differs from it only in case or a trailing slash"
    )


def test_a_refused_issuer_among_many_lists_five(acme_key: Signer) -> None:
    many = TrustedIssuers(
        JWTVerifier(issuer=f"https://t{n}.test", audience=AUDIENCE, jwks=jwks(acme_key), clock=CLOCK)
        for n in range(8)
    )
    with pytest.raises(InvalidToken) as caught:
        many.verify(acme_key.token(iss="https://evil.test\n"))
    listed = ", ".join(f"'https://t{n}.test'" for n in range(5))
    assert (
        caught.value.reason
        == f"the token issuer 'https://evil.test\\n' is not a trusted one ({listed} and 3 more)"
    )
