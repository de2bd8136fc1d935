"""The demo's authorization server: Authlib, SQLite, RFC 9068 JWT access tokens signed with ES256.

Grants: authorization code with PKCE (RFC 6749 §4.1, RFC 7636 with S256 required) for users, and
client credentials (RFC 6749 §4.4) for a service account. Each token is bound to one organization
(an ``org_id`` claim) and its scope is capped by the subject's role there (RFC 6749 §3.3 lets the
server grant less than asked), so a token never carries more than its subject may do. The
authorization endpoint is scriptable, a form POST with the user's credentials and the org, so the
demo's client runs unattended. Orgs, users, memberships, clients and codes live in SQLite.

    python examples/demo_auth_server.py --port 5000 --resource http://127.0.0.1:5001
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, errors, grants
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, jsonify, request
from joserfc.jwk import ECKey, KeySet

from resource_server.bodies import BodyError
from resource_server.flask import request_body

ORGS = ("acme", "globex")
ROLES: dict[str, list[str]] = {
    "member": ["project:read"],
    "admin": ["project:read", "project:write", "team:write"],
    "owner": ["project:read", "project:write", "team:write", "org:admin"],
}
ALL_SCOPES = sorted({scope for scopes in ROLES.values() for scope in scopes})
#: Demo credentials, for the loopback demo only.
PASSWORDS = {"user-admin": "demo-admin-password", "user-member": "demo-member-password"}
#: (subject, org) -> role. The service account is a member like any user.
MEMBERSHIPS: dict[tuple[str, str], str] = {
    ("user-admin", "acme"): "admin",
    ("user-admin", "globex"): "member",
    ("user-member", "acme"): "member",
    ("svc-reporting", "acme"): "member",
}
PUBLIC_CLIENT, REDIRECT_URI = "demo-cli", "http://127.0.0.1/callback"
SERVICE_CLIENT, SERVICE_SECRET, SERVICE_ORG = "svc-reporting", "demo-service-secret-0123456789abcdef", "acme"
CODE_LIFETIME, TOKEN_LIFETIME = 60, 600
# OWASP asks 600,000 PBKDF2-SHA256 iterations; fewer keep the demo's logins quick.
PASSWORD_ITERATIONS = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, salt BLOB NOT NULL, password_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS memberships (subject TEXT, org TEXT REFERENCES orgs (id), role TEXT NOT NULL,
    PRIMARY KEY (subject, org));
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, secret_hash BLOB, auth_methods TEXT NOT NULL,
    grant_types TEXT NOT NULL, redirect_uris TEXT NOT NULL, scope TEXT NOT NULL, org TEXT REFERENCES orgs (id));
CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, client_id TEXT, user_id TEXT, org TEXT,
    redirect_uri TEXT, scope TEXT, code_challenge TEXT, code_challenge_method TEXT, issued_at REAL);
"""


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ITERATIONS)


@dataclass(frozen=True)
class Client(ClientMixin):
    """A registered client (RFC 6749 §2); ``org`` binds a service account to its organization."""

    client_id: str
    secret_hash: bytes | None
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    org: str | None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return " ".join(self.scopes)
        # None, not "", when nothing is allowed: Authlib turns None into invalid_scope.
        return " ".join(s for s in scope.split() if s in self.scopes) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, no patterns (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        digest = hashlib.sha256(client_secret.encode()).digest()
        return self.secret_hash is not None and hmac.compare_digest(self.secret_hash, digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True)
class User:
    """The resource owner as seen through one authorization: who, and for which org."""

    user_id: str
    org: str

    def get_user_id(self) -> str:
        return self.user_id


@dataclass(frozen=True)
class AuthorizationCode:
    code: str
    client_id: str
    user_id: str
    org: str
    redirect_uri: str | None
    scope: str
    code_challenge: str
    code_challenge_method: str
    issued_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class Store:
    """SQLite storage, one connection per call: the server is threaded and sqlite3 connections are not."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)
            if db.execute("SELECT COUNT(*) FROM orgs").fetchone()[0] == 0:
                self._seed(db)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=5)) as db, db:  # one transaction per call
            yield db

    def _row(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        with self._db() as db:
            return db.execute(sql, params).fetchone()

    @staticmethod
    def _seed(db: sqlite3.Connection) -> None:
        db.executemany("INSERT INTO orgs VALUES (?)", [(org,) for org in ORGS])
        for user, password in PASSWORDS.items():
            salt = secrets.token_bytes(16)
            db.execute("INSERT INTO users VALUES (?, ?, ?)", (user, salt, hash_password(password, salt)))
        db.executemany("INSERT INTO memberships VALUES (?, ?, ?)", [(*k, v) for k, v in MEMBERSHIPS.items()])
        scope = " ".join(ALL_SCOPES)
        secret_hash = hashlib.sha256(SERVICE_SECRET.encode()).digest()  # a random secret needs no slow hash
        db.executemany(
            "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (PUBLIC_CLIENT, None, "none", "authorization_code", REDIRECT_URI, scope, None),
                (
                    SERVICE_CLIENT,
                    secret_hash,
                    "client_secret_basic client_secret_post",
                    "client_credentials",
                    "",
                    scope,
                    SERVICE_ORG,
                ),
            ],
        )

    def client(self, client_id: str) -> Client | None:
        row = self._row("SELECT * FROM clients WHERE id = ?", client_id)
        if row is None:
            return None
        client_id, secret_hash, *lists, org = row  # the lists are space-separated in their columns
        return Client(client_id, secret_hash, *(tuple(value.split()) for value in lists), org)

    def check_password(self, user_id: str, password: str) -> bool:
        row = self._row("SELECT salt, password_hash FROM users WHERE id = ?", user_id)
        salt, expected = row or (b"\0" * 16, b"")  # hash anyway: unknown users take as long as known ones
        return hmac.compare_digest(hash_password(password, salt), expected) and row is not None

    def role_scopes(self, subject: str, org: str) -> list[str] | None:
        """The scopes of the subject's role in the org; None when it is not a member."""
        row = self._row("SELECT role FROM memberships WHERE subject = ? AND org = ?", subject, org)
        return ROLES[row[0]] if row else None

    def save_code(self, item: AuthorizationCode) -> None:
        with self._db() as db:
            db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(vars(item).values()))

    def find_code(self, code: str, client_id: str, now: float) -> AuthorizationCode | None:
        sql = "SELECT * FROM codes WHERE code = ? AND client_id = ? AND issued_at > ?"
        row = self._row(sql, code, client_id, now - CODE_LIFETIME)
        return AuthorizationCode(*row) if row else None

    def consume_code(self, code: str) -> bool:
        """True for exactly one caller: of two concurrent exchanges of one code, one DELETE hits."""
        with self._db() as db:
            return db.execute("DELETE FROM codes WHERE code = ?", (code,)).rowcount == 1


def cap_scope(requested: str | None, *limits: Collection[str]) -> str:
    """Granted scope = requested ∩ every limit; an omitted scope asks for all the limits allow (RFC 6749 §3.3)."""
    allowed = set.intersection(*(set(limit) for limit in limits))
    granted = (set(requested.split()) if requested else allowed) & allowed
    if not granted:
        raise errors.InvalidScopeError(description="none of the requested scopes is allowed for this subject")
    return " ".join(sorted(granted))


class TokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens (``typ: at+jwt``) with ``org_id``, the scope capped by the subject's role."""

    def __init__(self, issuer: str, resource: str, key: ECKey, store: Store) -> None:
        super().__init__(issuer=issuer, alg="ES256", expires_generator=TOKEN_LIFETIME)
        self.resource, self.keys, self.store = resource, KeySet([key]), store

    def get_jwks(self) -> KeySet:
        return self.keys  # joserfc puts the key's kid in the header

    def get_audiences(self, client: Client, user: User | None, scope: str) -> str:
        return self.resource  # RFC 9068 §3: the default resource, not Authlib's client_id

    def get_extra_claims(
        self, client: Client, grant_type: str, user: User | None, scope: str
    ) -> dict[str, Any]:
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
        # Capped again at the token endpoint: a role lost since the code was issued is lost here too.
        subject, org = (user.user_id, user.org) if user else (client.client_id, client.org)
        granted = cap_scope(scope, self.store.role_scopes(subject, org) or (), client.scopes)
        return super().generate(grant_type, client, user, granted, expires_in, include_refresh_token=False)


def make_code_grant(store: Store) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

        def create_authorization_response(self, redirect_uri: str, grant_user: User) -> Any:
            # The code records what was granted; nothing grantable is invalid_scope (RFC 6749 §4.1.2.1).
            role_scopes = store.role_scopes(grant_user.user_id, grant_user.org) or ()
            try:
                self.request.scope = cap_scope(self.request.payload.scope, role_scopes, self.client.scopes)
            except errors.InvalidScopeError as error:
                error.redirect_uri = redirect_uri
                raise
            return super().create_authorization_response(redirect_uri, grant_user)

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            store.save_code(
                AuthorizationCode(
                    code,
                    req.client.client_id,
                    req.user.user_id,
                    req.user.org,
                    req.payload.redirect_uri,
                    req.scope,
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                    time.time(),
                )
            )

        def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
            return store.find_code(code, client.client_id, time.time())  # expired codes are not found

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            # Runs after the token is made and before it is sent: a replay that lost the race gets nothing.
            if not store.consume_code(authorization_code.code):
                raise errors.InvalidGrantError("the authorization code was already used")

        def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
            return User(authorization_code.user_id, authorization_code.org)

    return CodeGrant


class S256CodeChallenge(CodeChallenge):
    """RFC 7636 with S256 only, demanded at the authorization endpoint (RFC 9700 §2.1.1).

    Authlib's ``CodeChallenge(required=True)`` accepts ``plain`` and lets an authorization request
    without a challenge through (it only insists on a verifier at the token endpoint).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: grants.AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise errors.InvalidRequestError("PKCE with code_challenge_method=S256 is required")
        super().validate_code_challenge(grant, redirect_uri)


class ServiceGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def load_signing_key(pem: bytes | None) -> ECKey:
    """A P-256 key for ES256 (RFC 7518 §3.4) whose ``kid`` is its RFC 7638 thumbprint."""
    key = serialization.load_pem_private_key(pem, None) if pem else ec.generate_private_key(ec.SECP256R1())
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        raise ValueError("ES256 needs a P-256 private key")
    kid = ECKey.import_key(key).thumbprint()
    return ECKey.import_key(key, {"kid": kid, "use": "sig", "alg": "ES256"})


LOGIN_FORM = """<!doctype html><title>Sign in</title>
<form method="post"><input name="username" placeholder="user"> <input name="password" type="password">
<input name="org" placeholder="org"> <button>Authorize</button></form>"""


def refusal(text: str, status: int) -> Response:
    """Plain text: Authlib's descriptions echo request parameters, which must not render as HTML."""
    return Response(text + "\n", status, mimetype="text/plain")


def create_auth_server(
    *, issuer: str, db_path: str, resource: str, signing_key_pem: bytes | None = None
) -> Flask:
    """Build the authorization server. ``resource`` becomes every token's ``aud`` (RFC 9068 §2.2)."""
    # Authlib refuses plain http unless told otherwise; this demo server only listens on loopback.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = Flask("demo_auth_server")
    store = Store(db_path)
    key = load_signing_key(signing_key_pem)
    server = AuthorizationServer(app, query_client=store.client, save_token=lambda token, req: None)
    server.register_token_generator("default", TokenGenerator(issuer, resource, key, store))
    server.register_grant(make_code_grant(store), [S256CodeChallenge(required=True)])
    server.register_grant(ServiceGrant)

    @app.before_request
    def bounded_body() -> Response | None:
        """Read every body with the library's bounds before Authlib parses it: a malformed chunked
        body or a cut connection is the client's 400, not a 500 inside the form parser."""
        try:
            request_body(request, 64 * 1024)
        except BodyError as error:
            return refusal(error.description, 400)
        return None

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        """RFC 7517 §5: the public half only."""
        return jsonify(keys=[key.as_dict(private=False)])

    @app.get("/.well-known/oauth-authorization-server")
    def metadata() -> Response:
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
    def authorize() -> Any:
        """RFC 6749 §4.1.1: the client and request are checked before anyone is asked to log in."""
        try:
            grant = server.get_consent_grant(end_user=None)
        except errors.OAuth2Error as error:
            if error.redirect_uri:  # the redirect URI is verified: tell the client there (§4.1.2.1)
                return server.handle_error_response(None, error)
            return refusal(f"invalid authorization request: {error.error}: {error.description}", 400)
        if request.method != "POST":  # GET, and HEAD (which Flask routes here too)
            return LOGIN_FORM
        username, org = request.form.get("username", ""), request.form.get("org", "")
        if not store.check_password(username, request.form.get("password", "")):
            return refusal("wrong username or password", 401)
        if store.role_scopes(username, org) is None:
            return refusal("the user is not a member of that organization", 403)
        return server.create_authorization_response(grant_user=User(username, org), grant=grant)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    return app


def fetch_token_with_code(
    base_url: str, *, username: str, password: str, org: str, scope: str, client: httpx.Client
) -> dict[str, Any]:
    """The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636 §4) over HTTP, scripted."""
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
    params = parse_qs(urlsplit(response.headers.get("location", "")).query)
    if response.status_code != 302 or "code" not in params:
        reason = " ".join(params.get("error", []) + params.get("error_description", [])) or response.text
        raise RuntimeError(f"authorization refused ({response.status_code}): {reason.strip()}")
    if params.get("state") != [query["state"]]:
        raise RuntimeError("authorization response state does not match the request")
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
    """RFC 6749 §4.4, authenticating with client_secret_basic (§2.3.1)."""
    form = {"grant_type": "client_credentials", "scope": scope}
    return _token_response(client.post(f"{base_url}/token", data=form, auth=(client_id, client_secret)))


def _token_response(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(
            f"token request refused ({response.status_code}): {body.get('error')}: {body.get('error_description')}"
        )
    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--db", help="SQLite file (default: a new file in a temporary directory)")
    parser.add_argument("--resource", default="http://127.0.0.1:5001", help="the API's identifier, the aud")
    args = parser.parse_args()
    db_path = args.db or os.path.join(tempfile.mkdtemp(), "auth.sqlite3")
    issuer = f"http://127.0.0.1:{args.port}"
    create_auth_server(issuer=issuer, db_path=db_path, resource=args.resource).run("127.0.0.1", args.port)


if __name__ == "__main__":
    main()
