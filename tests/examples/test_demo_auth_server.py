"""The demo authorization server over real HTTP on loopback: keys, both grants, scope capping, refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    PASSWORDS,
    PUBLIC_CLIENT,
    REDIRECT_URI,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    AuthorizationCode,
    Store,
    create_auth_server,
    fetch_token_client_credentials,
    fetch_token_with_code,
)

RESOURCE = "http://127.0.0.1:5001"
VERIFIER = "a-fixed-code-verifier-for-these-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db_path = str(tmp_path_factory.mktemp("auth") / "auth.sqlite3")
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bind first: the issuer names the port
    base = f"http://127.0.0.1:{server.server_port}"
    server.app = create_auth_server(issuer=base, db_path=db_path, resource=RESOURCE)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


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
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "client_credentials"}
    assert "org:admin" in metadata["scopes_supported"]


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
