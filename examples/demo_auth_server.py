"""The demo's authorization server: Authlib, SQLite, RFC 9068 JWT access tokens signed with ES256.

Grants: authorization code with PKCE (RFC 6749 §4.1, RFC 7636 S256 required) for users, client
credentials (RFC 6749 §4.4) for a service account. Each token is bound to one organization (an
``org_id`` claim) and its scope is capped by the subject's role there, so a token can never carry
more than its subject may do. The authorization endpoint is scriptable (a form POST with the
user's credentials and the org) so the demo's client can run unattended.

    python examples/demo_auth_server.py --port 5000 --resource http://127.0.0.1:5001
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet
from jwt.algorithms import ECAlgorithm

ORGS = ("acme", "globex")
ROLES: dict[str, list[str]] = {
    "member": ["project:read"],
    "admin": ["project:read", "project:write", "team:write"],
    "owner": ["project:read", "project:write", "team:write", "org:admin"],
}
#: Demo credentials, for the loopback demo only.
PASSWORDS = {"user-admin": "demo-admin-password", "user-member": "demo-member-password"}
#: (subject, org) -> role. Service accounts are members too.
MEMBERSHIPS: dict[tuple[str, str], str] = {
    ("user-admin", "acme"): "admin",
    ("user-admin", "globex"): "member",
    ("user-member", "acme"): "member",
    ("svc-reporting", "acme"): "member",
}
PUBLIC_CLIENT = "demo-cli"
REDIRECT_URI = "http://127.0.0.1/callback"
SERVICE_CLIENT, SERVICE_SECRET, SERVICE_ORG = "svc-reporting", "demo-service-secret-0123456789abcdef", "acme"
ALL_SCOPES = sorted({s for scopes in ROLES.values() for s in scopes})
CODE_LIFETIME = 60
TOKEN_LIFETIME = 600


@dataclass
class Client(ClientMixin):
    """A registered client (RFC 6749 §2). The service client is bound to one org."""

    client_id: str
    secret: str | None
    grant_types: tuple[str, ...]
    org: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return REDIRECT_URI if self.secret is None else None

    def get_allowed_scope(self, scope: str | None) -> str:
        requested = (scope or "").split(" ") if scope else ALL_SCOPES
        return " ".join(s for s in requested if s in ALL_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.secret is None and redirect_uri == REDIRECT_URI

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and hmac.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.secret is None:
            return method == "none"  # a public client (RFC 6749 §2.1) relies on PKCE
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


CLIENTS = {
    PUBLIC_CLIENT: Client(PUBLIC_CLIENT, None, ("authorization_code",)),
    SERVICE_CLIENT: Client(SERVICE_CLIENT, SERVICE_SECRET, ("client_credentials",), SERVICE_ORG),
}


@dataclass
class User:
    """The resource owner, as seen through one authorization: who, and for which org."""

    user_id: str
    org: str

    def get_user_id(self) -> str:
        return self.user_id


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    user_id: str
    org: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    issued_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() - self.issued_at > CODE_LIFETIME


class CodeStore:
    """Authorization codes in SQLite; single use is enforced by a DELETE that must hit one row."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, client_id TEXT, user_id TEXT,"
                " org TEXT, redirect_uri TEXT, scope TEXT, code_challenge TEXT,"
                " code_challenge_method TEXT, issued_at REAL)"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5)

    def save(self, item: AuthorizationCode) -> None:
        with self._db() as db:
            db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(vars(item).values()))

    def find(self, code: str, client_id: str) -> AuthorizationCode | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM codes WHERE code = ? AND client_id = ?", (code, client_id)
            ).fetchone()
        return AuthorizationCode(*row) if row else None

    def delete(self, code: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM codes WHERE code = ?", (code,))


def role_scopes(subject: str, org: str) -> set[str]:
    role = MEMBERSHIPS.get((subject, org))
    return set(ROLES[role]) if role else set()


class TokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 tokens (``typ: at+jwt``) with ``org_id``, their scope capped by the subject's role."""

    def __init__(self, issuer: str, resource: str, private_jwk: dict[str, Any]) -> None:
        super().__init__(
            issuer=issuer, alg="ES256", expires_generator=lambda client, grant_type: TOKEN_LIFETIME
        )
        self.resource = resource
        self.keys = KeySet.import_key_set({"keys": [private_jwk]})  # parsed once, not per token

    def get_jwks(self) -> KeySet:
        return self.keys

    def get_audiences(self, client: Client, user: User | None, scope: str) -> str:
        return self.resource

    def get_extra_claims(
        self, client: Client, grant_type: str, user: User | None, scope: str
    ) -> dict[str, str]:
        return {"org_id": user.org if user else client.org}

    def generate(
        self,
        grant_type: str,
        client: Client,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        subject, org = (user.user_id, user.org) if user else (client.client_id, client.org)
        allowed = role_scopes(subject, org)
        requested = set(scope.split(" ")) if scope else allowed
        granted = " ".join(sorted(requested & allowed))
        if not granted:
            raise InvalidScopeError(description="none of the requested scopes is allowed for this role")
        return super().generate(grant_type, client, user, granted, expires_in, include_refresh_token)


def make_code_grant(store: CodeStore) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ("none",)

        def save_authorization_code(self, code: str, req: Any) -> None:
            store.save(
                AuthorizationCode(
                    code=code,
                    client_id=req.client.client_id,
                    user_id=req.user.user_id,
                    org=req.user.org,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.scope or "",
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"),
                    issued_at=time.time(),
                )
            )

        def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
            item = store.find(code, client.client_id)
            return item if item and not item.is_expired() else None

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            store.delete(authorization_code.code)

        def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
            return User(authorization_code.user_id, authorization_code.org)

    return CodeGrant


class ServiceGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def signing_key(pem: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ES256 key pair as (private JWK, public JWK); kid is the RFC 7638 thumbprint."""
    key = serialization.load_pem_private_key(pem, None) if pem else ec.generate_private_key(ec.SECP256R1())
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps({k: public[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    public.update(kid=kid, use="sig", alg="ES256")
    private = {**json.loads(ECAlgorithm.to_jwk(key)), "kid": kid, "use": "sig", "alg": "ES256"}
    return private, public


def create_auth_server(
    *, issuer: str, db_path: str, resource: str, signing_key_pem: bytes | None = None
) -> Flask:
    """Build the authorization server. ``resource`` becomes every token's ``aud``."""
    # Authlib refuses plain http unless told otherwise; this server only ever listens on loopback.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = Flask("demo_auth_server")
    store = CodeStore(db_path)
    private_jwk, public_jwk = signing_key(signing_key_pem)
    server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=lambda token, req: None)
    server.register_token_generator("default", TokenGenerator(issuer, resource, private_jwk))
    server.register_grant(make_code_grant(store), [CodeChallenge(required=True)])
    server.register_grant(ServiceGrant)

    @app.get("/.well-known/jwks.json")
    def jwks():
        return jsonify(keys=[public_jwk])

    @app.get("/.well-known/oauth-authorization-server")
    def metadata():
        """RFC 8414 §2."""
        return jsonify(
            issuer=issuer,
            authorization_endpoint=f"{issuer}/authorize",
            token_endpoint=f"{issuer}/token",
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            grant_types_supported=["authorization_code", "client_credentials"],
            response_types_supported=["code"],
            scopes_supported=ALL_SCOPES,
            code_challenge_methods_supported=["S256"],
            token_endpoint_auth_methods_supported=["none", "client_secret_basic", "client_secret_post"],
        )

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        if request.method == "GET":
            return LOGIN_FORM
        username, org = request.form.get("username", ""), request.form.get("org", "")
        password = request.form.get("password", "")
        expected = PASSWORDS.get(username)
        if expected is None or not hmac.compare_digest(expected, password):
            return "wrong username or password\n", 401
        if (username, org) not in MEMBERSHIPS:
            return "the user is not a member of that organization\n", 403
        user = User(username, org)
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:  # bad client, redirect URI, PKCE parameters...: no redirect
            return jsonify(error=error.error, error_description=error.description), 400
        return server.create_authorization_response(grant_user=user, grant=grant)

    @app.post("/token")
    def token():
        return server.create_token_response()

    return app


LOGIN_FORM = """<!doctype html><title>Sign in</title>
<form method="post"><input name="username" placeholder="user"> <input name="password" type="password">
<input name="org" placeholder="org"> <button>Authorize</button></form>"""


def fetch_token_with_code(
    base_url: str, *, username: str, password: str, org: str, scope: str, client: httpx.Client
) -> dict[str, Any]:
    """The whole authorization code + PKCE flow over HTTP, as a scripted user agent and client."""
    verifier = secrets.token_urlsafe(48)
    query = {
        "client_id": PUBLIC_CLIENT,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    login = {"username": username, "password": password, "org": org}
    response = client.post(f"{base_url}/authorize", params=query, data=login, follow_redirects=False)
    location = response.headers.get("location", "")
    params = parse_qs(urlsplit(location).query)
    if response.status_code != 302 or "code" not in params:
        raise RuntimeError(
            f"authorization failed: {response.status_code} {response.text.strip() or location}"
        )
    if params.get("state") != [query["state"]]:
        raise RuntimeError("authorization response state does not match")
    exchange = {
        "grant_type": "authorization_code",
        "code": params["code"][0],
        "redirect_uri": REDIRECT_URI,
        "client_id": PUBLIC_CLIENT,
        "code_verifier": verifier,
    }
    return _token_response(client.post(f"{base_url}/token", data=exchange))


def fetch_token_client_credentials(
    base_url: str, *, client_id: str, client_secret: str, scope: str, client: httpx.Client
) -> dict[str, Any]:
    """RFC 6749 §4.4 with client_secret_basic."""
    form = {"grant_type": "client_credentials", "scope": scope}
    return _token_response(client.post(f"{base_url}/token", data=form, auth=(client_id, client_secret)))


def _token_response(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(
            f"token request failed: {response.status_code} {body.get('error')}: {body.get('error_description')}"
        )
    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(), "auth.sqlite3"))
    parser.add_argument("--resource", default="http://127.0.0.1:5001")
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    create_auth_server(issuer=issuer, db_path=args.db, resource=args.resource).run("127.0.0.1", args.port)


if __name__ == "__main__":
    main()
