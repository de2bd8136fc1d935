"""The demo authorization server over real HTTP on loopback: keys, both grants, scope capping,
refusals, opaque tokens and their introspection (RFC 7662), and a server for a second tenant."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo_auth_server import (
    API_CLIENT,
    API_SECRET,
    GLOBEX,
    GLOBEX_PASSWORDS,
    GLOBEX_SERVICE_CLIENT,
    GLOBEX_SERVICE_SECRET,
    OPAQUE_CLIENT,
    OPAQUE_SECRET,
    PASSWORDS,
    PUBLIC_CLIENT,
    REDIRECT_URI,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    AuthorizationCode,
    IssuedToken,
    Store,
    Tenant,
    create_auth_server,
    fetch_token_client_credentials,
    fetch_token_with_code,
)

RESOURCE = "http://127.0.0.1:5001"
VERIFIER = "a-fixed-code-verifier-for-these-tests-0123456789abcdef"
#: Where the fake clocks start: any fixed instant does, the wall clock is never read.
T0 = 1_700_000_000


@contextmanager
def running(db_path: str, **options: Tenant | Callable[[], float]) -> Iterator[str]:
    """An authorization server on a loopback port chosen by the OS; yields its issuer URL."""
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bind first: the issuer names the port
    base = f"http://127.0.0.1:{server.server_port}"
    server.app = create_auth_server(issuer=base, db_path=db_path, resource=RESOURCE, **options)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(str(tmp_path_factory.mktemp("auth") / "auth.sqlite3")) as base:
        yield base


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def user_token(issuer: str, http: httpx.Client, username: str, org: str, scope: str) -> dict[str, Any]:
    return fetch_token_with_code(
        issuer, username=username, password=PASSWORDS[username], org=org, scope=scope, client=http
    )


def authorize(http: httpx.Client, issuer: str, **overrides: str | None) -> httpx.Response:
    """POST /authorize as the scripted login form does; an override of None drops the field."""
    query = {
        "client_id": PUBLIC_CLIENT,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "project:read",
        "state": "state-1",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    login = {"username": "user-member", "password": PASSWORDS["user-member"], "org": "acme"}
    for name, value in overrides.items():
        fields = login if name in login else query
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    return http.post(f"{issuer}/authorize", params=query, data=login, follow_redirects=False)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {name: values[0] for name, values in parse_qs(location.query).items()}


def exchange(http: httpx.Client, issuer: str, code: str, verifier: str = VERIFIER) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": PUBLIC_CLIENT,
        "code_verifier": verifier,
    }
    return http.post(f"{issuer}/token", data=form)


def verify(issuer: str, access_token: str) -> dict[str, Any]:
    """Verify the way a resource server would: keys from the served JWK Set, algorithm from the key."""
    signing_key = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json").get_signing_key_from_jwt(access_token)
    return jwt.decode(
        access_token,
        signing_key,
        algorithms=["ES256"],
        audience=RESOURCE,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]},
    )


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    canonical = json.dumps({name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def test_jwks_and_metadata_are_served(issuer: str, http: httpx.Client) -> None:
    (key,) = http.get(f"{issuer}/.well-known/jwks.json").json()["keys"]
    assert {key["kty"], key["crv"], key["use"], key["alg"]} == {"EC", "P-256", "sig", "ES256"}
    assert key["kid"] == rfc7638_thumbprint(key)
    assert "d" not in key  # never the private half
    metadata = http.get(f"{issuer}/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",  # RFC 8693 §2
    }
    assert "org:admin" in metadata["scopes_supported"]
    assert metadata["introspection_endpoint"] == f"{issuer}/introspect"
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic"]


def test_code_flow_gives_an_es256_at_jwt_capped_by_the_role(issuer: str, http: httpx.Client) -> None:
    response = user_token(issuer, http, "user-member", "acme", "project:read project:write")
    assert response["scope"] == "project:read"  # the response says what was granted (RFC 6749 §5.1)
    header = jwt.get_unverified_header(response["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    (key,) = http.get(f"{issuer}/.well-known/jwks.json").json()["keys"]
    assert header["kid"] == key["kid"]
    claims = verify(issuer, response["access_token"])
    assert claims["sub"] == "user-member" and claims["client_id"] == PUBLIC_CLIENT
    assert claims["org_id"] == "acme" and claims["scope"] == "project:read"
    assert claims["exp"] - claims["iat"] == 600


def test_omitted_scope_grants_the_whole_role_in_the_chosen_org(issuer: str, http: httpx.Client) -> None:
    acme = user_token(issuer, http, "user-admin", "acme", "")
    assert acme["scope"] == "project:read project:write team:write"
    globex = verify(issuer, user_token(issuer, http, "user-admin", "globex", "")["access_token"])
    assert globex["org_id"] == "globex" and globex["scope"] == "project:read"


def test_a_code_is_single_use(issuer: str, http: httpx.Client) -> None:
    code = redirect_params(authorize(http, issuer))["code"]
    assert exchange(http, issuer, code).status_code == 200
    again = exchange(http, issuer, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_concurrent_exchanges_of_one_code_yield_one_token(issuer: str, http: httpx.Client) -> None:
    code = redirect_params(authorize(http, issuer))["code"]
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: exchange(http, issuer, code).status_code, range(8)))
    assert statuses == [200] + [400] * 7


def test_pkce_is_required_and_checked(issuer: str, http: httpx.Client) -> None:
    code = redirect_params(authorize(http, issuer))["code"]
    wrong = exchange(http, issuer, code, verifier="x" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    for dropped in ("code_challenge", "code_challenge_method"):
        missing = redirect_params(authorize(http, issuer, **{dropped: None}))
        assert missing["error"] == "invalid_request" and missing["state"] == "state-1"
    plain = redirect_params(authorize(http, issuer, code_challenge=VERIFIER, code_challenge_method="plain"))
    assert plain["error"] == "invalid_request" and "code" not in plain


def test_wrong_password_and_non_member_are_refused_without_redirect(issuer: str, http: httpx.Client) -> None:
    wrong = authorize(http, issuer, password="not-the-password")
    assert wrong.status_code == 401 and "location" not in wrong.headers
    stranger = authorize(http, issuer, username="user-nobody")
    assert stranger.status_code == 401
    outsider = authorize(http, issuer, org="globex")
    assert outsider.status_code == 403 and "location" not in outsider.headers
    with pytest.raises(RuntimeError, match="403"):
        user_token(issuer, http, "user-member", "globex", "project:read")


def test_unknown_client_or_redirect_uri_gets_no_redirect(issuer: str, http: httpx.Client) -> None:
    assert authorize(http, issuer, client_id="no-such-client").status_code == 400
    elsewhere = authorize(http, issuer, redirect_uri="http://127.0.0.1/elsewhere")
    assert elsewhere.status_code == 400 and "location" not in elsewhere.headers
    hostile = authorize(http, issuer, redirect_uri="http://127.0.0.1/<script>alert(1)</script>")
    assert hostile.status_code == 400 and hostile.headers["content-type"].startswith("text/plain")


def test_empty_intersection_is_invalid_scope(issuer: str, http: httpx.Client) -> None:
    refused = redirect_params(authorize(http, issuer, scope="team:write"))
    assert refused["error"] == "invalid_scope" and "code" not in refused
    assert redirect_params(authorize(http, issuer, scope="no:such"))["error"] == "invalid_scope"
    with pytest.raises(RuntimeError, match="invalid_scope"):
        fetch_token_client_credentials(
            issuer, client_id=SERVICE_CLIENT, client_secret=SERVICE_SECRET, scope="org:admin", client=http
        )


def test_client_credentials_carry_the_service_accounts_org(issuer: str, http: httpx.Client) -> None:
    response = fetch_token_client_credentials(
        issuer,
        client_id=SERVICE_CLIENT,
        client_secret=SERVICE_SECRET,
        scope="project:read project:write",
        client=http,
    )
    assert response["scope"] == "project:read"
    claims = verify(issuer, response["access_token"])
    assert claims["sub"] == SERVICE_CLIENT and claims["client_id"] == SERVICE_CLIENT
    assert claims["org_id"] == "acme"
    form = {"grant_type": "client_credentials", "client_id": SERVICE_CLIENT, "client_secret": SERVICE_SECRET}
    assert http.post(f"{issuer}/token", data=form).json()["scope"] == "project:read"  # client_secret_post


def test_client_credentials_refuse_a_wrong_secret_and_the_public_client(
    issuer: str, http: httpx.Client
) -> None:
    form = {"grant_type": "client_credentials"}
    wrong = http.post(f"{issuer}/token", data=form, auth=(SERVICE_CLIENT, "wrong-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = http.post(f"{issuer}/token", data={**form, "client_id": PUBLIC_CLIENT})
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"  # it has no secret


def test_codes_expire_after_sixty_seconds(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "codes.sqlite3"))
    code = AuthorizationCode(
        "c", PUBLIC_CLIENT, "user-member", "acme", REDIRECT_URI, "project:read", "x", "S256", 1000.0
    )
    store.save_code(code)
    assert store.find_code("c", PUBLIC_CLIENT, now=1059.0) == code
    assert store.find_code("c", PUBLIC_CLIENT, now=1061.0) is None
    assert store.find_code("c", "another-client", now=1001.0) is None


def test_a_given_key_and_an_existing_database_are_reused(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    db_path = str(tmp_path / "auth.sqlite3")
    kids = []
    for _ in range(2):  # the second start finds the seeded tables and must not seed again
        app = create_auth_server(issuer="http://as", db_path=db_path, resource=RESOURCE, signing_key_pem=pem)
        kids.append(app.test_client().get("/.well-known/jwks.json").get_json()["keys"][0]["kid"])
    assert kids[0] == kids[1]
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="P-256"):
        create_auth_server(issuer="http://as", db_path=db_path, resource=RESOURCE, signing_key_pem=p384)


# -- opaque tokens and introspection (RFC 7662) ---------------------------------------------------


def opaque_token(issuer: str, http: httpx.Client, scope: str = "project:read") -> dict[str, Any]:
    return fetch_token_client_credentials(
        issuer, client_id=OPAQUE_CLIENT, client_secret=OPAQUE_SECRET, scope=scope, client=http
    )


def introspect(
    http: httpx.Client,
    issuer: str,
    token: str,
    auth: tuple[str, str] | None = (API_CLIENT, API_SECRET),
    **form: str,
) -> httpx.Response:
    return http.post(f"{issuer}/introspect", data={"token": token, **form}, auth=auth)


def test_an_opaque_token_introspects_as_active_with_its_claims(issuer: str, http: httpx.Client) -> None:
    granted = opaque_token(issuer, http, scope="project:read project:write")
    assert granted["token_type"] == "Bearer" and granted["expires_in"] == 600
    assert granted["scope"] == "project:read"  # capped by the service account's role, as for JWTs
    token = granted["access_token"]
    assert token.startswith("at_") and "." not in token  # not a JWT: it means nothing outside the server
    response = introspect(http, issuer, token, token_type_hint="access_token")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert set(answer) == {
        "active",
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "token_type",
        "org_id",
    }
    assert answer["active"] is True
    assert answer["scope"] == "project:read"
    assert answer["client_id"] == answer["sub"] == OPAQUE_CLIENT
    assert answer["aud"] == RESOURCE and answer["iss"] == issuer
    assert answer["token_type"] == "Bearer" and answer["org_id"] == "acme"
    assert answer["exp"] - answer["iat"] == 600


def test_unknown_tokens_and_jwts_are_inactive(issuer: str, http: httpx.Client) -> None:
    assert introspect(http, issuer, "at_never-issued").json() == {"active": False}
    jwt_token = user_token(issuer, http, "user-member", "acme", "project:read")["access_token"]
    assert introspect(http, issuer, jwt_token).json() == {"active": False}  # self-contained, never stored


def test_any_hint_is_ignored_and_a_missing_token_is_invalid_request(issuer: str, http: httpx.Client) -> None:
    token = opaque_token(issuer, http)["access_token"]
    for hint in ("refresh_token", "no-such-type"):  # RFC 7662 §2.1: the server may ignore it
        assert introspect(http, issuer, token, token_type_hint=hint).json()["active"] is True
    missing = http.post(f"{issuer}/introspect", data={}, auth=(API_CLIENT, API_SECRET))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "auth",
    [
        None,
        (API_CLIENT, "not-the-secret"),
        ("no-such-client", API_SECRET),
        (SERVICE_CLIENT, SERVICE_SECRET),  # a genuine client, but not a resource server
        (OPAQUE_CLIENT, OPAQUE_SECRET),  # the token's own client neither
    ],
    ids=["no-credentials", "wrong-secret", "unknown-client", "service-client", "token-owner"],
)
def test_only_the_resource_server_may_introspect(
    issuer: str, http: httpx.Client, auth: tuple[str, str] | None
) -> None:
    token = opaque_token(issuer, http)["access_token"]
    refused = introspect(http, issuer, token, auth=auth)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert "active" not in refused.json()


def test_introspection_takes_basic_credentials_only(issuer: str, http: httpx.Client) -> None:
    token = opaque_token(issuer, http)["access_token"]
    posted = introspect(http, issuer, token, auth=None, client_id=API_CLIENT, client_secret=API_SECRET)
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"


def test_the_resource_server_client_gets_no_tokens(issuer: str, http: httpx.Client) -> None:
    form = {"grant_type": "client_credentials"}
    refused = http.post(f"{issuer}/token", data=form, auth=(API_CLIENT, API_SECRET))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_an_opaque_token_is_inactive_from_its_expiry(tmp_path: Path, http: httpx.Client) -> None:
    now = [float(T0)]
    db_path = str(tmp_path / "auth.sqlite3")
    with running(db_path, clock=lambda: now[0]) as base:
        token = opaque_token(base, http)["access_token"]
        answer = introspect(http, base, token).json()
        assert (answer["active"], answer["iat"], answer["exp"]) == (True, T0, T0 + 600)
        now[0] = T0 + 599.5
        assert introspect(http, base, token).json()["active"] is True
        now[0] = T0 + 600  # RFC 7519 §4.1.4: not accepted on or after exp
        assert introspect(http, base, token).json() == {"active": False}


def test_a_token_for_another_resource_is_inactive_here(tmp_path: Path, http: httpx.Client) -> None:
    """RFC 7662 §4: a resource server learns only about tokens meant for it."""
    db_path = str(tmp_path / "auth.sqlite3")
    with running(db_path, clock=lambda: T0) as base:
        Store(db_path).save_token(
            "at_for-elsewhere",
            IssuedToken(
                OPAQUE_CLIENT, OPAQUE_CLIENT, "acme", "project:read", "https://elsewhere", T0, T0 + 600, False
            ),
        )
        assert introspect(http, base, "at_for-elsewhere").json() == {"active": False}


def test_stored_tokens_expire_and_only_digests_are_kept(tmp_path: Path) -> None:
    db_path = str(tmp_path / "tokens.sqlite3")
    store = Store(db_path)
    record = IssuedToken("c", "s", "acme", "project:read", RESOURCE, 1000, 1600, expired=False)
    store.save_token("at_secret-value", record)
    assert store.find_token("at_secret-value", now=1599.0) == record
    assert store.find_token("at_secret-value", now=1600.0).expired  # type: ignore[union-attr]
    assert store.find_token("at_other", now=1000.0) is None
    assert b"at_secret-value" not in Path(db_path).read_bytes()


# -- a second tenant: globex's own server ---------------------------------------------------------


@pytest.fixture(scope="module")
def globex_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(str(tmp_path_factory.mktemp("globex") / "auth.sqlite3"), tenant=GLOBEX) as base:
        yield base


def test_globex_server_has_its_own_users_keys_and_clients(
    issuer: str, globex_issuer: str, http: httpx.Client
) -> None:
    granted = fetch_token_with_code(
        globex_issuer,
        username="user-globex",
        password=GLOBEX_PASSWORDS["user-globex"],
        org="globex",
        scope="project:read project:write",
        client=http,
    )
    claims = verify(globex_issuer, granted["access_token"])
    assert (claims["iss"], claims["sub"], claims["org_id"]) == (globex_issuer, "user-globex", "globex")
    assert claims["scope"] == "project:read project:write"
    service = fetch_token_client_credentials(
        globex_issuer,
        client_id=GLOBEX_SERVICE_CLIENT,
        client_secret=GLOBEX_SERVICE_SECRET,
        scope="project:read",
        client=http,
    )
    assert verify(globex_issuer, service["access_token"])["org_id"] == "globex"
    acme_key = http.get(f"{issuer}/.well-known/jwks.json").json()["keys"][0]["kid"]
    globex_key = http.get(f"{globex_issuer}/.well-known/jwks.json").json()["keys"][0]["kid"]
    assert acme_key != globex_key


def test_globex_server_knows_nothing_of_acme(globex_issuer: str, http: httpx.Client) -> None:
    with pytest.raises(RuntimeError, match="401"):  # acme's users are not globex's
        user_token(globex_issuer, http, "user-admin", "globex", "project:read")
    with pytest.raises(RuntimeError, match="invalid_client"):
        fetch_token_client_credentials(
            globex_issuer, client_id=SERVICE_CLIENT, client_secret=SERVICE_SECRET, scope="", client=http
        )
    with pytest.raises(RuntimeError, match="403"):  # no org acme here
        fetch_token_with_code(
            globex_issuer,
            username="user-globex",
            password=GLOBEX_PASSWORDS["user-globex"],
            org="acme",
            scope="project:read",
            client=http,
        )
    assert introspect(http, globex_issuer, "at_anything").status_code == 401  # no client may introspect
