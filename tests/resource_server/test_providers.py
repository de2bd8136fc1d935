"""The provider recipes of docs/providers.md against tokens shaped like each provider's.

Every token here is built member by member from the provider's documented access-token shape
(header and claims, see docs/providers.md for the sources), signed with a real RSA key, and
verified with the options the recipe gives. Where a provider cannot meet a rule (Cognito's
missing ``aud``, Keycloak's default ``aud: account``, Entra ID v1 tokens, Google's opaque
tokens), the test pins down what the library does instead: a 401, never a silent accept.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify

from policy import Challenge, Roles, parse_challenges
from resource_server import InvalidToken, JWTVerifier, VerifiedToken
from resource_server.flask import ResourceServer, current_access
from resource_server.tokens.claims import scopes_of
from tests.support import NOW, FakeClock, Signer, jwks


def mint(signer: Signer, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Exactly this header and these claims, signed: nothing added. A claim given as None is
    left out, so one builder serves a provider's variants."""
    payload = {name: value for name, value in claims.items() if value is not None}
    return signer.sign(json.dumps(header).encode(), json.dumps(payload).encode())


def recipe(signer: Signer, **options: Any) -> JWTVerifier:
    """A recipe's options with the test key in place of the provider's ``jwks_uri``."""
    return JWTVerifier(jwks=jwks(signer), clock=FakeClock(), **options)


def refused(verifier: JWTVerifier, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify(token)


# -- Keycloak ---------------------------------------------------------------------------------------

KEYCLOAK_ISSUER = "https://sso.example.com/realms/acme"
KEYCLOAK = {
    "issuer": KEYCLOAK_ISSUER,
    "audience": "projects-api",
    "algorithms": ("RS256",),
    "require_typ": None,
}


def keycloak_token(signer: Signer, *, typ: str = "JWT", **claims: Any) -> str:
    """A Keycloak access token: header ``typ: JWT`` (``at+jwt`` only with the 26.2+ client
    setting), a payload ``typ: Bearer`` that is not the header's, ``azp`` for the client, the
    roles in ``realm_access`` / ``resource_access``, and ``aud: account`` unless an audience
    mapper adds the API."""
    payload = {
        "exp": NOW + 300,
        "iat": NOW,
        "auth_time": NOW - 20,
        "jti": "onrtac:7d3e1f0a-35c1-4c0e-9f87-2a1b7d9c4e11",
        "iss": KEYCLOAK_ISSUER,
        "aud": ["projects-api", "account"],
        "sub": "f1c5e2a4-6b1d-4f0e-8a51-3c9d2e7b6a10",
        "typ": "Bearer",
        "azp": "web-app",
        "sid": "5e1d3c2b-0a9f-4e8d-b7c6-1a2b3c4d5e6f",
        "acr": "1",
        "allowed-origins": ["https://app.example.com"],
        "realm_access": {"roles": ["default-roles-acme", "offline_access", "uma_authorization"]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid profile email project:read",
        "email_verified": True,
        "preferred_username": "alice",
        **claims,
    }
    return mint(signer, {"alg": "RS256", "typ": typ, "kid": signer.kid}, payload)


def test_keycloak_recipe(rs: Signer) -> None:
    verified = recipe(rs, **KEYCLOAK).verify(keycloak_token(rs, org_id="acme"))
    assert verified.subject == "f1c5e2a4-6b1d-4f0e-8a51-3c9d2e7b6a10"
    assert verified.scopes == {"openid", "profile", "email", "project:read"}
    assert verified.org == "acme"  # a user-attribute mapper emitting one string
    assert verified.client_id is None  # Keycloak names the client in azp
    assert verified.claims["azp"] == "web-app"


def test_keycloak_without_an_audience_mapper_is_refused(rs: Signer) -> None:
    # The default: only clients whose roles the token carries are audiences, so "account".
    refused(recipe(rs, **KEYCLOAK), keycloak_token(rs, aud="account"), "audience")


def test_keycloak_header_typ_decides_require_typ(rs: Signer) -> None:
    strict = recipe(rs, **{**KEYCLOAK, "require_typ": "at+jwt"})
    refused(strict, keycloak_token(rs), "typ must be at\\+jwt")
    # With "Use at+jwt as access token header type" on the client (Keycloak 26.2+).
    assert strict.verify(keycloak_token(rs, typ="at+jwt")).subject.startswith("f1c5e2a4")


@pytest.mark.parametrize(
    "organization",
    [["acme"], {"acme": {"id": "42c3e46f-2477-44d7-a85b-d3b43f6b31fa"}}],
    ids=["aliases", "with-id"],
)
def test_keycloak_organization_claim_cannot_be_the_org_claim(rs: Signer, organization: Any) -> None:
    # Keycloak Organizations map membership as an array of aliases or an object keyed by alias;
    # an org claim must be one string, so naming it refuses every token (and says why).
    verifier = recipe(rs, **KEYCLOAK, org_claim="organization")
    refused(verifier, keycloak_token(rs, organization=organization), "organization claim must be")
    # Left alone (the default org_claim), the claim is ignored: the token is simply unbound.
    assert recipe(rs, **KEYCLOAK).verify(keycloak_token(rs, organization=organization)).org is None


def test_keycloak_realm_per_customer_binds_by_issuer(rs: Signer) -> None:
    verified = recipe(rs, **KEYCLOAK, issuer_org="acme").verify(keycloak_token(rs))
    assert verified.org == "acme"
    refused(recipe(rs, **KEYCLOAK, issuer_org="acme"), keycloak_token(rs, org_id="globex"), "does not serve")


# -- Auth0 ------------------------------------------------------------------------------------------

AUTH0_ISSUER = "https://example-tenant.us.auth0.com/"  # with the trailing slash Auth0 writes
AUTH0_API = "https://api.example.com"
AUTH0 = {"issuer": AUTH0_ISSUER, "audience": AUTH0_API, "algorithms": ("RS256",)}


def auth0_token(signer: Signer, *, profile: str = "auth0", **claims: Any) -> str:
    """The Auth0 token profile (``typ: JWT``, ``azp``, ``gty`` for machine tokens, no ``jti``)
    or the RFC 9068 profile (``typ: at+jwt``, ``client_id``, ``jti``); both with ``aud`` an
    array of the API identifier and the userinfo URL when ``openid`` was asked for."""
    payload: dict[str, Any] = {
        "iss": AUTH0_ISSUER,
        "sub": "auth0|64f1c2b3a4d5e6f708192a3b",
        "aud": [AUTH0_API, f"{AUTH0_ISSUER}userinfo"],
        "iat": NOW,
        "exp": NOW + 86400,  # Auth0's default API token lifetime: exactly max_lifetime
        "scope": "openid profile project:read",
        "org_id": "org_9ybsU1dN2dKfDkBi",
        "permissions": ["project:read", "project:write"],
    }
    if profile == "auth0":
        payload["azp"] = "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"
        typ = "JWT"
    else:
        payload |= {"client_id": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja", "jti": "73WakrfVbNJBaAmhQtEeDv"}
        typ = "at+jwt"
    payload.update(claims)
    return mint(signer, {"alg": "RS256", "typ": typ, "kid": signer.kid}, payload)


def test_auth0_token_profile_recipe(rs: Signer) -> None:
    verified = recipe(rs, **AUTH0, require_typ=None).verify(auth0_token(rs))
    assert verified.subject == "auth0|64f1c2b3a4d5e6f708192a3b"
    assert verified.scopes == {"openid", "profile", "project:read"}
    assert verified.org == "org_9ybsU1dN2dKfDkBi"  # Organizations: org_id, the default org_claim
    assert verified.client_id is None and verified.claims["azp"] == "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"


def test_auth0_rfc9068_profile_meets_the_default_typ(rs: Signer) -> None:
    verified = recipe(rs, **AUTH0).verify(auth0_token(rs, profile="rfc9068"))
    assert verified.client_id == "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"
    assert verified.scopes == {"openid", "profile", "project:read"}
    # The Auth0 profile's typ: JWT is refused unless the recipe says require_typ=None.
    refused(recipe(rs, **AUTH0), auth0_token(rs), "typ must be at\\+jwt")


def test_auth0_rbac_permissions_array(rs: Signer) -> None:
    verified = recipe(rs, **AUTH0, require_typ=None, scope_claim="permissions").verify(auth0_token(rs))
    assert verified.scopes == {"project:read", "project:write"}


def test_auth0_machine_to_machine_token(rs: Signer) -> None:
    token = auth0_token(
        rs,
        sub="K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja@clients",
        aud=AUTH0_API,
        gty="client-credentials",
        scope="project:read",
        org_id="org_9ybsU1dN2dKfDkBi",
    )
    verified = recipe(rs, **AUTH0, require_typ=None).verify(token)
    assert verified.subject == "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja@clients"
    assert verified.scopes == {"project:read"}


def test_auth0_token_for_another_api_is_refused(rs: Signer) -> None:
    # Asked for without ?audience=, Auth0 gives a token for /userinfo only (or an opaque one).
    token = auth0_token(rs, aud=f"{AUTH0_ISSUER}userinfo")
    refused(recipe(rs, **AUTH0, require_typ=None), token, "audience")


# -- Okta -------------------------------------------------------------------------------------------

OKTA_ISSUER = "https://example.okta.com/oauth2/default"
OKTA = {
    "issuer": OKTA_ISSUER,
    "audience": "api://default",
    "algorithms": ("RS256",),
    "require_typ": None,
    "scope_claim": "scp",
}


def okta_token(signer: Signer, **claims: Any) -> str:
    """An Okta custom authorization server's access token: a header of ``kid`` and ``alg``
    only, ``ver: 1``, an ``AT.`` jti, ``cid`` and ``uid``, ``scp`` an array, ``sub`` the login."""
    payload = {
        "ver": 1,
        "jti": "AT.xtjhr8FeMkyMfgLiFzVYOYPbgqWdd6ONULT3ffeK7d4",
        "iss": OKTA_ISSUER,
        "aud": "api://default",
        "iat": NOW,
        "exp": NOW + 3600,
        "cid": "0oaosna3ilNxgPTmk0h7",
        "uid": "00uixa271s6x7qt8I0h7",
        "scp": ["openid", "project:read", "project:write"],
        "auth_time": NOW - 60,
        "sub": "alice@example.com",
        "org_id": "acme",  # a custom claim added on the authorization server
        **claims,
    }
    return mint(signer, {"kid": signer.kid, "alg": "RS256"}, payload)


def test_okta_recipe(rs: Signer) -> None:
    verified = recipe(rs, **OKTA).verify(okta_token(rs))
    assert verified.subject == "alice@example.com"
    assert verified.scopes == {"openid", "project:read", "project:write"}
    assert verified.org == "acme"
    assert (
        verified.claims["uid"] == "00uixa271s6x7qt8I0h7" and verified.claims["cid"] == "0oaosna3ilNxgPTmk0h7"
    )


def test_okta_client_credentials_token(rs: Signer) -> None:
    # No user: sub is the client ID and there is no uid.
    token = okta_token(rs, sub="0oaosna3ilNxgPTmk0h7", uid=None, scp=["project:read"])
    verified = recipe(rs, **OKTA).verify(token)
    assert verified.subject == "0oaosna3ilNxgPTmk0h7" and verified.scopes == {"project:read"}


def test_okta_scope_string_where_an_array_is_expected_still_reads(rs: Signer) -> None:
    # scp is an array at Okta; the claim reader takes a string too, but never a string in an array.
    assert recipe(rs, **OKTA).verify(okta_token(rs, scp="project:read")).scopes == {"project:read"}
    refused(recipe(rs, **OKTA), okta_token(rs, scp=["project:read project:write"]), "invalid scope token")


def test_okta_org_authorization_server_tokens_are_refused(rs: Signer) -> None:
    # Tokens of the org authorization server are for Okta's own APIs.
    token = okta_token(rs, iss="https://example.okta.com", aud="https://example.okta.com")
    refused(recipe(rs, **OKTA), token, "issuer")


def test_okta_without_scope_claim_option_reads_no_scopes(rs: Signer) -> None:
    # The pitfall the recipe avoids: the default scope_claim ("scope") is absent, so no scopes.
    assert recipe(rs, **{**OKTA, "scope_claim": "scope"}).verify(okta_token(rs)).scopes == frozenset()


# -- Microsoft Entra ID -----------------------------------------------------------------------------

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
API_APP = "11112222-bbbb-3333-cccc-4444dddd5555"  # the API's application (client) ID
CLIENT_APP = "00001111-aaaa-2222-bbbb-3333cccc4444"
ENTRA_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ENTRA = {
    "issuer": ENTRA_ISSUER,
    "audience": API_APP,
    "algorithms": ("RS256",),
    "require_typ": None,
    "scope_claim": "scp",
}


def entra_token(signer: Signer, **claims: Any) -> str:
    """A v2.0 access token for your own API (``requestedAccessTokenVersion: 2``): header
    ``typ: JWT``; ``aud`` the API's client ID; ``scp`` a space-delimited string in delegated
    tokens; ``tid``, ``oid``, ``azp``, a pairwise ``sub``; ``ver: "2.0"``."""
    payload = {
        "aud": API_APP,
        "iss": ENTRA_ISSUER,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 4380,
        "aio": "AXQAi/8TAAAAbZ3x",
        "azp": CLIENT_APP,
        "azpacr": "0",
        "name": "Alice Example",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "preferred_username": "alice@contoso.example",
        "rh": "0.AQ0A-opaque.",
        "scp": "Projects.Read Projects.Write",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
        **claims,
    }
    return mint(signer, {"typ": "JWT", "alg": "RS256", "kid": signer.kid}, payload)


APP_ONLY = {
    "scp": None,
    "name": None,
    "preferred_username": None,
    "azpacr": "1",
    "azp": "22223333-cccc-4444-dddd-5555eeee6666",
    "oid": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb",
    "sub": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb",  # the daemon's service principal
    "roles": ["Projects.Read"],
    "idtyp": "app",  # an optional claim, enabled in the API's token configuration
}


def test_entra_v2_delegated_recipe(rs: Signer) -> None:
    verified = recipe(rs, **ENTRA, org_claim="tid").verify(entra_token(rs))
    assert verified.subject == "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
    assert verified.scopes == {"Projects.Read", "Projects.Write"}
    assert verified.org == TENANT
    assert verified.claims["oid"] == "00000000-0000-0000-66f3-3332eca7ea81"


def test_entra_tenant_as_a_named_organization(rs: Signer) -> None:
    # One tenant per issuer: issuer_org names it, and org_claim stays on a claim Entra never sends.
    verified = recipe(rs, **ENTRA, issuer_org="contoso").verify(entra_token(rs))
    assert verified.org == "contoso"
    # Naming tid as the org claim next to issuer_org would refuse every token: tid is not "contoso".
    refused(recipe(rs, **ENTRA, org_claim="tid", issuer_org="contoso"), entra_token(rs), "does not serve")


def test_entra_v1_token_is_refused_by_the_v2_recipe(rs: Signer) -> None:
    v1 = {
        "iss": f"https://sts.windows.net/{TENANT}/",
        "aud": "api://projects-api",
        "ver": "1.0",
        "azp": None,
        "azpacr": None,
        "appid": CLIENT_APP,
        "appidacr": "0",
        "unique_name": "alice@contoso.example",
        "preferred_username": None,
    }
    refused(recipe(rs, **ENTRA), entra_token(rs, **v1), "issuer")
    # Even with the v1 issuer configured, the audience is then the Application ID URI.
    refused(
        recipe(rs, **{**ENTRA, "issuer": f"https://sts.windows.net/{TENANT}/"}),
        entra_token(rs, **v1),
        "audience",
    )


def test_entra_token_of_another_tenant_is_refused(rs: Signer) -> None:
    other = "99998888-ffff-7777-eeee-666655554444"
    token = entra_token(rs, iss=f"https://login.microsoftonline.com/{other}/v2.0", tid=other)
    refused(recipe(rs, **ENTRA), token, "issuer")


def test_entra_app_only_token_has_no_scopes_under_the_plain_recipe(rs: Signer) -> None:
    verified = recipe(rs, **ENTRA).verify(entra_token(rs, **APP_ONLY))
    assert verified.scopes == frozenset()  # no scp: every scoped route answers 403


class EntraAppRoles:
    """The recipe of docs/providers.md: delegated tokens keep ``scp``; app-only tokens
    (``idtyp: app`` and no ``scp``) take their application permissions from ``roles``."""

    def __init__(self, verifier: JWTVerifier) -> None:
        self._verifier = verifier
        self.max_token_bytes = verifier.max_token_bytes

    @property
    def clock(self) -> Callable[[], float]:
        return self._verifier.clock

    def verify(self, token: str) -> VerifiedToken:
        verified = self._verifier.verify(token)
        if "scp" not in verified.claims and verified.claims.get("idtyp") == "app":
            return dataclasses.replace(verified, scopes=scopes_of(verified.claims, "roles"))
        return verified


def test_entra_app_only_token_through_the_roles_recipe(rs: Signer) -> None:
    verifier = EntraAppRoles(recipe(rs, **ENTRA))
    app_only = verifier.verify(entra_token(rs, **APP_ONLY))
    assert app_only.subject == "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"
    assert app_only.scopes == {"Projects.Read"}
    # A user's token keeps its scp; the user's assigned app roles are not scopes of the token.
    delegated = verifier.verify(entra_token(rs, roles=["Projects.Admin"]))
    assert delegated.scopes == {"Projects.Read", "Projects.Write"}
    # Without idtyp (the optional claim not enabled) an scp-less token still gets nothing.
    assert verifier.verify(entra_token(rs, **{**APP_ONLY, "idtyp": None})).scopes == frozenset()


# -- Amazon Cognito ---------------------------------------------------------------------------------

POOL_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
APP_CLIENT = "1example23456789abcdefghij"
COGNITO_API = "https://api.example.com"  # the resource server identifier
COGNITO = {"issuer": POOL_ISSUER, "audience": COGNITO_API, "algorithms": ("RS256",), "require_typ": None}


def cognito_token(signer: Signer, **claims: Any) -> str:
    """A user pool access token as Cognito documents it: a header of ``kid`` and ``alg``,
    ``token_use: access``, ``client_id``, ``username``, custom scopes prefixed with the resource
    server identifier, and no ``aud``."""
    payload = {
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "cognito:groups": ["admin"],
        "iss": POOL_ISSUER,
        "version": 2,
        "client_id": APP_CLIENT,
        "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff",
        "event_id": "aaaaaaaa-bbbb-cccc-dddd-000000000000",
        "token_use": "access",
        "scope": f"openid {COGNITO_API}/project:read",
        "auth_time": NOW - 30,
        "exp": NOW + 3600,
        "iat": NOW,
        "jti": "aaaaaaaa-bbbb-cccc-dddd-111111111111",
        "username": "alice",
        **claims,
    }
    return mint(signer, {"kid": signer.kid, "alg": "RS256"}, payload)


def test_cognito_access_token_without_aud_is_refused(rs: Signer) -> None:
    refused(recipe(rs, **COGNITO), cognito_token(rs), "audience")
    # Setting the audience to the app client ID does not help: client_id is not aud.
    refused(recipe(rs, **{**COGNITO, "audience": APP_CLIENT}), cognito_token(rs), "audience")


def test_cognito_client_id_as_audience_lets_id_tokens_through(rs: Signer) -> None:
    # The ID token is the Cognito token that carries aud (the app client ID). A verifier
    # configured with audience=<client id> accepts it, with no scopes: never configure that.
    id_token = cognito_token(
        rs,
        aud=APP_CLIENT,
        token_use="id",
        scope=None,
        client_id=None,
        username=None,
        email="alice@example.com",
        **{"cognito:username": "alice"},
    )
    refused(recipe(rs, **COGNITO), id_token, "audience")
    misconfigured = recipe(rs, **{**COGNITO, "audience": APP_CLIENT})
    assert misconfigured.verify(id_token).scopes == frozenset()


def test_cognito_resource_bound_access_token_passes(rs: Signer) -> None:
    # Issued with the resource parameter (resource binding, managed login): aud is the resource.
    verified = recipe(rs, **COGNITO).verify(cognito_token(rs, aud=COGNITO_API, org_id="acme"))
    assert verified.subject == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert verified.scopes == {"openid", f"{COGNITO_API}/project:read"}
    assert verified.client_id == APP_CLIENT
    assert verified.org == "acme"  # added by a pre token generation trigger (V2_0 or later)


# -- Google -----------------------------------------------------------------------------------------

GOOGLE_CLIENT = "1234567890-abc123def456.apps.googleusercontent.com"
# The shape of a Google OAuth access token: opaque, not a JWS (one dot, not two).
GOOGLE_ACCESS_TOKEN = "ya29.a0AfB_byDxQpVq3Zt8kLmN0pR5sT7uVwXyZ1a2b3c4d5e6f7g8h9i0j"


def google_id_token(signer: Signer, **claims: Any) -> str:
    payload = {
        "iss": "https://accounts.google.com",
        "azp": GOOGLE_CLIENT,
        "aud": GOOGLE_CLIENT,
        "sub": "110169484474386276334",
        "email": "alice@example.com",
        "email_verified": True,
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
        "iat": NOW,
        "exp": NOW + 3600,
        **claims,
    }
    return mint(signer, {"alg": "RS256", "kid": signer.kid, "typ": "JWT"}, payload)


def test_google_access_token_is_opaque_and_refused(rs: Signer) -> None:
    verifier = recipe(rs, issuer="https://login.example.com", audience="https://api.example.com")
    refused(verifier, GOOGLE_ACCESS_TOKEN, "not a compact-serialized JWS")


def test_google_id_token_is_not_an_access_token(rs: Signer) -> None:
    api = recipe(rs, issuer="https://login.example.com", audience="https://api.example.com", require_typ=None)
    refused(api, google_id_token(rs), "issuer")
    # Configured for Google itself with the client ID as the audience, the default still refuses
    # it (typ JWT) ...
    google = {"issuer": "https://accounts.google.com", "audience": GOOGLE_CLIENT}
    refused(recipe(rs, **google), google_id_token(rs), "typ must be at\\+jwt")
    # ... and with require_typ=None it is accepted with no scopes: it grants nothing, and it is
    # still the wrong token (any holder of the user's ID token for that client could send it).
    assert recipe(rs, **google, require_typ=None).verify(google_id_token(rs)).scopes == frozenset()


def test_identity_platform_token_with_custom_claims(rs: Signer) -> None:
    # Identity Platform / Firebase Authentication: ID tokens for your own project's backend.
    project = "my-project"
    payload = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": NOW - 60,
        "user_id": "kV3pQ9mXcYb2Rz7LwT1s",
        "sub": "kV3pQ9mXcYb2Rz7LwT1s",
        "iat": NOW,
        "exp": NOW + 3600,
        "email": "alice@example.com",
        "email_verified": True,
        "firebase": {"identities": {"email": ["alice@example.com"]}, "sign_in_provider": "password"},
        "scope": "project:read",  # custom claims set with the Admin SDK
        "org_id": "acme",
    }
    token = mint(rs, {"alg": "RS256", "kid": rs.kid, "typ": "JWT"}, payload)
    verifier = recipe(
        rs,
        issuer=f"https://securetoken.google.com/{project}",
        audience=project,
        algorithms=("RS256",),
        require_typ=None,
    )
    verified = verifier.verify(token)
    assert (verified.subject, verified.scopes, verified.org) == (
        "kV3pQ9mXcYb2Rz7LwT1s",
        {"project:read"},
        "acme",
    )


# -- end to end: Okta's scp array through a Flask app -----------------------------------------------

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MEMBERS = {
    ("alice@example.com", "acme"): "member",
    ("alice@example.com", "globex"): "member",
    ("bob@example.com", "acme"): "admin",
}


@pytest.fixture
def okta_app(rs: Signer) -> Flask:
    app = Flask(__name__)
    rs_ext = ResourceServer(
        app,
        verifier=recipe(rs, **OKTA),
        roles=ROLES,
        membership=lambda subject, org: MEMBERS.get((subject, org)),
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs_ext.require({"GET": "project:read", "POST": "project:write"})
    def projects(org: str) -> Any:
        return jsonify(org=org, subject=current_access.subject, scopes=sorted(current_access.scopes))

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_of(response: Any) -> Challenge:
    (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
    return challenge


def test_okta_scope_array_meets_the_scope_map_and_the_role(okta_app: Flask, rs: Signer) -> None:
    client = okta_app.test_client()
    # A member whose token holds read and write: the role caps the request at read.
    member = client.get("/orgs/acme/projects", headers=bearer(okta_token(rs)))
    assert member.status_code == 200
    assert member.get_json() == {"org": "acme", "subject": "alice@example.com", "scopes": ["project:read"]}
    refused_write = client.post("/orgs/acme/projects", headers=bearer(okta_token(rs)))
    assert refused_write.status_code == 403 and "WWW-Authenticate" not in refused_write.headers
    # An admin whose token lacks write is told which scope to ask Okta for.
    admin_token = okta_token(rs, sub="bob@example.com", scp=["openid", "project:read"])
    step_up = client.post("/orgs/acme/projects", headers=bearer(admin_token))
    assert step_up.status_code == 403
    assert challenge_of(step_up).get("error") == "insufficient_scope"
    assert challenge_of(step_up).get("scope") == "project:write"
    written = client.post("/orgs/acme/projects", headers=bearer(okta_token(rs, sub="bob@example.com")))
    assert written.status_code == 200 and written.get_json()["scopes"] == ["project:read", "project:write"]


def test_okta_token_bound_to_another_org_is_invalid_token(okta_app: Flask, rs: Signer) -> None:
    # Alice is a member of globex too, but her token says org_id "acme".
    response = okta_app.test_client().get("/orgs/globex/projects", headers=bearer(okta_token(rs)))
    assert response.status_code == 401
    assert challenge_of(response).get("error") == "invalid_token"


def test_google_opaque_token_through_flask_is_invalid_token(okta_app: Flask) -> None:
    response = okta_app.test_client().get("/orgs/acme/projects", headers=bearer(GOOGLE_ACCESS_TOKEN))
    assert response.status_code == 401
    assert challenge_of(response).get("error") == "invalid_token"
    assert response.get_json()["error"] == "invalid_token"
