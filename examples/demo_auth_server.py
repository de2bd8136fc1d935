"""The demo's authorization server: Authlib, SQLite, RFC 9068 JWT access tokens signed with ES256,
and opaque access tokens checked through RFC 7662 introspection.

Grants: authorization code with PKCE (RFC 6749 §4.1, RFC 7636 with S256 required) for users, and
client credentials (RFC 6749 §4.4) for service accounts. Each token is bound to one organization
(an ``org_id`` claim) and its scope is capped by the subject's role there (RFC 6749 §3.3 lets the
server grant less than asked), so a token never carries more than its subject may do. The
authorization endpoint is scriptable, a form POST with the user's credentials and the org, so the
demo's client runs unattended. Orgs, users, memberships, clients, codes and opaque tokens live in
SQLite.

Most clients get JWTs; a client registered with the ``opaque`` token format gets random strings
that mean nothing outside this server, which a resource server learns about at ``/introspect``
(RFC 7662), authenticated as a client allowed to introspect (``client_secret_basic``).

A client may name the resource it wants a token for (RFC 8707 ``resource``, at the authorization
and the token endpoint): the API, the default, or the MCP server given as one of ``resources``; the
token's ``aud`` is that resource, and an unknown one is ``invalid_target``. Clients may register
themselves (RFC 7591, at ``/register``, public clients only: see demo_registration.py), as MCP
clients do.

The authorization endpoint records how the person signed in (RFC 9068 §2.2.1, put in every token
of that sign-in): ``acr`` ``pwd`` for a password, ``mfa`` for a password and the second factor
(an ``otp`` form field), and ``auth_time``, the moment of the sign-in, from the server's clock. A
client that asks for ``acr_values=mfa`` (OpenID Connect Core §3.1.2.1, which RFC 9470 §4 uses to
step up) gets a code only once the person passed the second factor. The second factor is a fixed
code per user (:data:`SECOND_FACTORS`): demo only; a real server checks a TOTP (RFC 6238) or a
passkey.

An agent gets a token to act for a person by token exchange (RFC 8693 §2, a grant Authlib does not
have, written here: :class:`TokenExchangeGrant`): it authenticates as itself, sends the person's
access token as ``subject_token`` and its own as ``actor_token``, and gets a token for the same
person and org whose ``act`` claim names it (§4.1), nesting the ``act`` of the subject token
(an agent acting for an agent), with the person's ``acr`` and ``auth_time``, and a scope within
the subject token's (and the person's role).

A token request that carries a valid ``DPoP`` proof (RFC 9449 §5) gets a token bound to the
proof's key: ``cnf.jkt``, the key's RFC 7638 thumbprint, in the JWT (or in the introspection
answer of an opaque token), and ``token_type`` ``DPoP``. An invalid proof is a 400
``invalid_dpop_proof``; a request without one gets a bearer token, as before.

Each server serves one :class:`Tenant` (its orgs, users, memberships and clients): ``ACME`` is the
shared server of the demo, ``GLOBEX`` a server of globex's own, which the API trusts for globex only.

    python examples/demo_auth_server.py --port 5000 --resource http://127.0.0.1:5001
    python examples/demo_auth_server.py --port 5003 --resource http://127.0.0.1:5001 --tenant globex
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, errors, grants
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from demo_registration import (
    DYNAMIC_PREFIX,
    MAX_REGISTRATION_BYTES,
    ClientMetadata,
    RegistrationRefused,
    check_client_metadata,
)
from flask import Flask, Response, g, jsonify, request
from joserfc.jwk import ECKey, KeySet

from policy import Actor
from resource_server import InvalidToken, VerificationUnavailable
from resource_server.bodies import BodyError
from resource_server.client import DPoPKey
from resource_server.dpop import DPoPVerifier, InvalidDPoPProof
from resource_server.flask import json_body, request_body
from resource_server.state import ReplayCache
from resource_server.tokens import JWTVerifier, VerifiedToken
from resource_server.tokens.claims import MAX_ACTOR_DEPTH

log = logging.getLogger("demo_auth_server")

ORGS = ("acme", "globex")
ROLES: dict[str, list[str]] = {
    "member": ["project:read"],
    "admin": ["project:read", "project:write", "team:write"],
    "owner": ["project:read", "project:write", "team:write", "org:admin"],
}
ALL_SCOPES = sorted({scope for scopes in ROLES.values() for scope in scopes})
#: Demo credentials, for the loopback demo only.
PASSWORDS = {"user-admin": "demo-admin-password", "user-member": "demo-member-password"}
#: (subject, org) -> role. Service accounts are members like any user.
MEMBERSHIPS: dict[tuple[str, str], str] = {
    ("user-admin", "acme"): "admin",
    ("user-admin", "globex"): "member",
    ("user-member", "acme"): "member",
    ("svc-reporting", "acme"): "member",
    ("svc-billing", "acme"): "member",
    ("agent-assistant", "acme"): "member",  # its own token reads; it writes only for a person
}
PUBLIC_CLIENT, REDIRECT_URI = "demo-cli", "http://127.0.0.1/callback"
SERVICE_CLIENT, SERVICE_SECRET, SERVICE_ORG = "svc-reporting", "demo-service-secret-0123456789abcdef", "acme"
#: A service account whose access tokens are opaque.
OPAQUE_CLIENT, OPAQUE_SECRET = "svc-billing", "demo-billing-secret-0123456789abcdef"
#: The API, as a client of the authorization server: it may only introspect.
API_CLIENT, API_SECRET = "demo-api", "demo-api-introspection-secret-0123456789"
#: globex's own server: its users, memberships and service account.
GLOBEX_PASSWORDS = {"user-globex": "demo-globex-password"}
GLOBEX_MEMBERSHIPS: dict[tuple[str, str], str] = {
    ("user-globex", "globex"): "admin",
    ("svc-globex", "globex"): "member",
}
GLOBEX_SERVICE_CLIENT, GLOBEX_SERVICE_SECRET = "svc-globex", "demo-globex-service-secret-0123456789"
#: An agent (a confidential client) that acts for people through token exchange (RFC 8693).
AGENT_CLIENT, AGENT_SECRET = "agent-assistant", "demo-agent-secret-0123456789abcdef"
#: Each user's second factor: a fixed code, for the loopback demo only (a real server checks a
#: TOTP, RFC 6238, or a passkey, and never keeps a code in its source).
SECOND_FACTORS = {"user-admin": "246810", "user-member": "135790", "user-globex": "975310"}
#: The authentication context class references (acr) this server records: a password alone, or
#: a password and the second factor.
ACR_PASSWORD, ACR_MFA = "pwd", "mfa"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: The token types (RFC 8693 §3) this server takes as subject and actor tokens, and issues.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
CODE_LIFETIME, TOKEN_LIFETIME = 60, 600
#: How many clients may register themselves (RFC 7591) with one server.
MAX_REGISTRATIONS = 100
# OWASP asks 600,000 PBKDF2-SHA256 iterations; fewer keep the demo's logins quick.
PASSWORD_ITERATIONS = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, salt BLOB NOT NULL, password_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS memberships (subject TEXT, org TEXT REFERENCES orgs (id), role TEXT NOT NULL,
    PRIMARY KEY (subject, org));
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, secret_hash BLOB, auth_methods TEXT NOT NULL,
    grant_types TEXT NOT NULL, redirect_uris TEXT NOT NULL, scope TEXT NOT NULL, endpoints TEXT NOT NULL,
    token_format TEXT NOT NULL, org TEXT REFERENCES orgs (id));
CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, client_id TEXT, user_id TEXT, org TEXT,
    redirect_uri TEXT, scope TEXT, code_challenge TEXT, code_challenge_method TEXT, issued_at REAL,
    resource TEXT, acr TEXT, auth_time INTEGER);
CREATE TABLE IF NOT EXISTS tokens (token_hash BLOB PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL,
    org TEXT NOT NULL, scope TEXT NOT NULL, audience TEXT NOT NULL, issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, jkt TEXT);
"""


@dataclass(frozen=True)
class Registration:
    """A client registered when the database is created (RFC 6749 §2). ``endpoints`` are where it
    may authenticate (``token``, ``introspection``); ``token_format`` is ``jwt`` or ``opaque``."""

    client_id: str
    secret: str | None
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()
    org: str | None = None
    endpoints: tuple[str, ...] = ("token",)
    token_format: str = "jwt"


@dataclass(frozen=True)
class Tenant:
    """What one authorization server serves: its orgs, users, memberships and clients."""

    orgs: tuple[str, ...]
    passwords: Mapping[str, str]
    memberships: Mapping[tuple[str, str], str]
    clients: tuple[Registration, ...]


_CONFIDENTIAL = ("client_secret_basic", "client_secret_post")
_PUBLIC = Registration(PUBLIC_CLIENT, None, ("none",), ("authorization_code",), (REDIRECT_URI,))
ACME = Tenant(
    orgs=ORGS,
    passwords=PASSWORDS,
    memberships=MEMBERSHIPS,
    clients=(
        _PUBLIC,
        Registration(SERVICE_CLIENT, SERVICE_SECRET, _CONFIDENTIAL, ("client_credentials",), org=SERVICE_ORG),
        Registration(
            OPAQUE_CLIENT,
            OPAQUE_SECRET,
            _CONFIDENTIAL,
            ("client_credentials",),
            org="acme",
            token_format="opaque",
        ),
        Registration(
            AGENT_CLIENT, AGENT_SECRET, _CONFIDENTIAL, ("client_credentials", TOKEN_EXCHANGE), org="acme"
        ),
        # RFC 7662 §2.1: the resource server authenticates; it has no grant and gets no tokens.
        Registration(API_CLIENT, API_SECRET, ("client_secret_basic",), (), endpoints=("introspection",)),
    ),
)
GLOBEX = Tenant(
    orgs=("globex",),
    passwords=GLOBEX_PASSWORDS,
    memberships=GLOBEX_MEMBERSHIPS,
    clients=(
        _PUBLIC,
        Registration(
            GLOBEX_SERVICE_CLIENT, GLOBEX_SERVICE_SECRET, _CONFIDENTIAL, ("client_credentials",), org="globex"
        ),
    ),
)
TENANTS = {"acme": ACME, "globex": GLOBEX}


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
    endpoints: tuple[str, ...]
    token_format: str
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
        # Authlib asks this at every endpoint that authenticates clients, named: a resource
        # server's credentials open the introspection endpoint and nothing else.
        return method in self.auth_methods and endpoint in self.endpoints

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True)
class User:
    """The resource owner as seen through one authorization: who, for which org, how and when
    they signed in (``acr``, ``auth_time``; None for a code stored before they were recorded),
    and, for a token obtained by exchange, who acts for them (``actors``, the current one first)."""

    user_id: str
    org: str
    acr: str | None = None
    auth_time: int | None = None
    actors: tuple[Actor, ...] = ()

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
    #: The resource the token is for (RFC 8707): its ``aud``. None (a code stored before there
    #: was a choice) means the server's default resource.
    resource: str | None = None
    #: How and when the person signed in (None: a code stored before they were recorded).
    acr: str | None = None
    auth_time: int | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class IssuedToken(TokenMixin):
    """An opaque access token's record, as found at one moment (``expired`` is as of then);
    ``jkt`` is the thumbprint of the DPoP key it is bound to (RFC 9449 §6.2), or None."""

    client_id: str
    subject: str
    org: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    expired: bool
    jkt: str | None = None

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expired

    def is_revoked(self) -> bool:
        return False  # the demo has no revocation endpoint


def token_hash(token: str) -> bytes:
    """Only a digest is stored: a copy of the database holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


class Store:
    """SQLite storage, one connection per call: the server is threaded and sqlite3 connections are not."""

    def __init__(self, path: str, tenant: Tenant = ACME) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)
            if "jkt" not in {row[1] for row in db.execute("PRAGMA table_info(tokens)")}:
                db.execute("ALTER TABLE tokens ADD COLUMN jkt TEXT")  # a database from before DPoP
            if "resource" not in {row[1] for row in db.execute("PRAGMA table_info(codes)")}:
                db.execute("ALTER TABLE codes ADD COLUMN resource TEXT")  # from before RFC 8707
            if "acr" not in {row[1] for row in db.execute("PRAGMA table_info(codes)")}:
                db.execute("ALTER TABLE codes ADD COLUMN acr TEXT")  # from before sign-ins were recorded
                db.execute("ALTER TABLE codes ADD COLUMN auth_time INTEGER")
            if db.execute("SELECT COUNT(*) FROM orgs").fetchone()[0] == 0:
                self._seed(db, tenant)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=5)) as db, db:  # one transaction per call
            yield db

    def _row(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        with self._db() as db:
            return db.execute(sql, params).fetchone()

    @staticmethod
    def _seed(db: sqlite3.Connection, tenant: Tenant) -> None:
        db.executemany("INSERT INTO orgs VALUES (?)", [(org,) for org in tenant.orgs])
        for user, password in tenant.passwords.items():
            salt = secrets.token_bytes(16)
            db.execute("INSERT INTO users VALUES (?, ?, ?)", (user, salt, hash_password(password, salt)))
        db.executemany(
            "INSERT INTO memberships VALUES (?, ?, ?)", [(*k, v) for k, v in tenant.memberships.items()]
        )
        db.executemany(
            "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [Store._client_row(c) for c in tenant.clients],
        )

    @staticmethod
    def _client_row(c: Registration) -> tuple[Any, ...]:
        return (
            c.client_id,
            # A random secret needs no slow hash.
            hashlib.sha256(c.secret.encode()).digest() if c.secret is not None else None,
            " ".join(c.auth_methods),
            " ".join(c.grant_types),
            " ".join(c.redirect_uris),
            " ".join(ALL_SCOPES) if c.grant_types else "",
            " ".join(c.endpoints),
            c.token_format,
            c.org,
        )

    def register(self, registration: Registration, limit: int) -> bool:
        """Add a dynamically registered client unless ``limit`` of them exist already: counted and
        inserted in one statement, so concurrent registrations cannot pass the limit together."""
        sql = (
            "INSERT INTO clients SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE (SELECT COUNT(*) FROM clients WHERE id LIKE ?) < ?"
        )
        with self._db() as db:
            cursor = db.execute(sql, (*self._client_row(registration), f"{DYNAMIC_PREFIX}%", limit))
            return cursor.rowcount == 1

    def client(self, client_id: str) -> Client | None:
        row = self._row("SELECT * FROM clients WHERE id = ?", client_id)
        if row is None:
            return None
        client_id, secret_hash, *lists, token_format, org = row  # the lists are space-separated
        return Client(client_id, secret_hash, *(tuple(value.split()) for value in lists), token_format, org)

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
            db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(item))

    def find_code(self, code: str, client_id: str, now: float) -> AuthorizationCode | None:
        sql = "SELECT * FROM codes WHERE code = ? AND client_id = ? AND issued_at > ?"
        row = self._row(sql, code, client_id, now - CODE_LIFETIME)
        return AuthorizationCode(*row) if row else None

    def consume_code(self, code: str) -> bool:
        """True for exactly one caller: of two concurrent exchanges of one code, one DELETE hits."""
        with self._db() as db:
            return db.execute("DELETE FROM codes WHERE code = ?", (code,)).rowcount == 1

    def save_token(self, token: str, record: IssuedToken) -> None:
        with self._db() as db:
            db.execute("DELETE FROM tokens WHERE expires_at <= ?", (record.issued_at,))  # no endless growth
            *columns, _expired, jkt = astuple(record)  # ``expired`` is worked out when read
            db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (token_hash(token), *columns, jkt)
            )

    def find_token(self, token: str, now: float) -> IssuedToken | None:
        """The token's record, ``expired`` as of ``now``; None for a token this server never issued."""
        sql = "SELECT *, expires_at <= ? FROM tokens WHERE token_hash = ?"
        row = self._row(sql, now, token_hash(token))
        if row is None:
            return None
        _hash, *columns, jkt, expired = row
        return IssuedToken(*columns, expired=bool(expired), jkt=jkt)


def cap_scope(requested: str | None, *limits: Collection[str]) -> str:
    """Granted scope = requested ∩ every limit; an omitted scope asks for all the limits allow (RFC 6749 §3.3)."""
    allowed = set.intersection(*(set(limit) for limit in limits))
    granted = (set(requested.split()) if requested else allowed) & allowed
    if not granted:
        raise errors.InvalidScopeError(description="none of the requested scopes is allowed for this subject")
    return " ".join(sorted(granted))


class InvalidTargetError(errors.OAuth2Error):
    """RFC 8707 §2: the ``resource`` named is not one this server issues tokens for, or not the
    one the authorization code was issued for."""

    error = "invalid_target"
    status_code = 400


def requested_resource(values: list[str], resources: Collection[str]) -> str | None:
    """The one resource a request names (RFC 8707 ``resource``), or None when it names none. A
    token here has one audience, so naming two is refused, as is naming an unknown one."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidTargetError("name one resource per request")
    if values[0] not in resources:
        raise InvalidTargetError("this server issues no tokens for that resource")
    return values[0]


def token_audience(default: str) -> str:
    """The resource the token being issued is for (set by the token endpoint, and for a code
    from the code), else ``default``."""
    return g.get("audience", default)


def dpop_bound_key() -> str | None:
    """The thumbprint of the key this token request proved it holds (set by the token endpoint
    once the request's ``DPoP`` proof verified), or None: a bearer token is asked for."""
    return g.get("dpop_jkt")


class TokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens (``typ: at+jwt``) with ``org_id``, the scope capped by the subject's
    role; opaque ones, recorded in the store, for clients registered with that token format.
    Either kind is bound to the request's DPoP key when it proved one (RFC 9449 §6)."""

    def __init__(
        self, issuer: str, resource: str, key: ECKey, store: Store, clock: Callable[[], float]
    ) -> None:
        super().__init__(issuer=issuer, alg="ES256", expires_generator=TOKEN_LIFETIME)
        self.resource, self.keys, self.store, self.clock = resource, KeySet([key]), store, clock

    def get_jwks(self) -> KeySet:
        return self.keys  # joserfc puts the key's kid in the header

    def get_audiences(self, client: Client, user: User | None, scope: str) -> str:
        # RFC 9068 §3: the resource the client named (RFC 8707), else the default one; never
        # Authlib's client_id.
        return token_audience(self.resource)

    def get_acr(self, user: User | None) -> str | None:
        return user.acr if user else None  # RFC 9068 §2.2.1: how the person signed in

    def get_auth_time(self, user: User | None) -> int | None:
        return user.auth_time if user else None

    def get_extra_claims(
        self, client: Client, grant_type: str, user: User | None, scope: str
    ) -> dict[str, Any]:
        now = int(self.clock())  # Authlib dates tokens by the wall clock; this server's clock rules
        claims: dict[str, Any] = {
            "org_id": user.org if user else client.org,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        jkt = dpop_bound_key()
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1
        if user is not None and user.actors:
            claims["act"] = act_claim(user.actors)  # RFC 8693 §4.1
        return claims

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
        if client.token_format == "opaque":
            return self.opaque(client, subject, org, granted)
        token = super().generate(grant_type, client, user, granted, expires_in, include_refresh_token=False)
        if dpop_bound_key() is not None:
            token["token_type"] = "DPoP"  # RFC 9449 §5: the client learns the token is bound
        return token

    def opaque(self, client: Client, subject: str, org: str, scope: str) -> dict[str, Any]:
        """A random token (256 bits) that only this server can say anything about (RFC 7662 §1).
        The ``at_`` prefix keeps it from ever starting like the API's ``cap_`` capabilities."""
        token = "at_" + secrets.token_urlsafe(32)
        now = int(self.clock())
        jkt = dpop_bound_key()
        audience = token_audience(self.resource)
        record = IssuedToken(
            client.client_id, subject, org, scope, audience, now, now + TOKEN_LIFETIME, False, jkt
        )
        self.store.save_token(token, record)
        token_type = "Bearer" if jkt is None else "DPoP"
        return {"token_type": token_type, "access_token": token, "expires_in": TOKEN_LIFETIME, "scope": scope}


def act_claim(chain: tuple[Actor, ...]) -> dict[str, Any]:
    """The ``act`` claim (RFC 8693 §4.1) of a non-empty chain, the current actor outermost and
    each prior one nested in the ``act`` of the one after it."""
    claim: dict[str, Any] = {}
    for actor in reversed(chain):
        level: dict[str, Any] = {"sub": actor.sub}
        if actor.client_id is not None:
            level["client_id"] = actor.client_id
        if claim:
            level["act"] = claim
        claim = level
    return claim


def make_code_grant(
    store: Store, clock: Callable[[], float], resources: tuple[str, ...]
) -> type[grants.AuthorizationCodeGrant]:
    """The code grant; ``resources`` are those a client may name, the first the default."""

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

        def validate_authorization_request(self) -> str:
            redirect_uri = super().validate_authorization_request()
            try:  # RFC 8707 §2: once the redirect URI is known, an error goes back to the client
                named = requested_resource(self.request.payload.datalist.get("resource", []), resources)
            except InvalidTargetError as error:
                error.redirect_uri = redirect_uri
                raise
            g.resource = named or resources[0]
            return redirect_uri

        def validate_token_request(self) -> None:
            super().validate_token_request()
            code = self.request.authorization_code
            issued_for = code.resource or resources[0]
            named = requested_resource(self.request.form.getlist("resource"), resources)
            if named is not None and named != issued_for:
                raise InvalidTargetError("the code was issued for another resource")
            g.audience = issued_for

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
                    clock(),
                    g.resource,
                    req.user.acr,
                    req.user.auth_time,
                )
            )

        def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
            return store.find_code(code, client.client_id, clock())  # expired codes are not found

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            # Runs after the token is made and before it is sent: a replay that lost the race gets nothing.
            if not store.consume_code(authorization_code.code):
                raise errors.InvalidGrantError("the authorization code was already used")

        def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
            code = authorization_code
            return User(code.user_id, code.org, code.acr, code.auth_time)

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


def make_token_exchange_grant(tokens: JWTVerifier) -> type[grants.BaseGrant]:
    """RFC 8693 §2 token exchange, delegation only, for tokens ``tokens`` verifies (this server's
    own JWT access tokens): see :class:`TokenExchangeGrant`."""

    class Grant(TokenExchangeGrant):
        verifier = tokens

    return Grant


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """RFC 8693 §2.1: a client allowed this grant (an agent) authenticates as itself and sends

    - ``subject_token``: a person's access token from this server, ``subject_token_type``
      ``...:access_token`` or ``...:jwt`` (§3);
    - ``actor_token``: the agent's own access token from this server (client credentials), of the
      same types, whose ``sub`` is the authenticated client: an agent speaks for itself only.

    The answer (§2.2.1) is an access token for the person and org of the subject token, whose
    ``act`` names the agent and nests the subject token's own ``act`` (§4.1), with the person's
    ``acr`` and ``auth_time`` (the exchange is no sign-in), ``issued_token_type``
    ``...:access_token``, and a scope of the ``scope`` asked for (all of the subject token's when
    none is) capped by the subject token's and the person's role (RFC 6749 §3.3). Whether the
    agent may act for the person at all (``may_act``, §4.4) is this server's decision: here any
    client registered for the grant may, for the tokens its users hand it.

    Refused as RFC 6749 §5.2 says (§2.2.2): a parameter missing, repeated, of an unknown type, a
    ``requested_token_type`` other than an access token, an impersonation request (no
    ``actor_token``) → ``invalid_request``; a subject or actor token that does not verify, is
    bound to a DPoP key, is not the client's own, or would nest actors past the bound →
    ``invalid_grant``; nothing grantable → ``invalid_scope``.
    """

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
    verifier: ClassVar[JWTVerifier]

    def _one(self, name: str, *, required: bool = True) -> str | None:
        values = self.request.payload.datalist.get(name, [])
        if len(values) > 1:
            raise errors.InvalidRequestError(f"send {name} once")
        if not values or not values[0]:
            if required:
                raise errors.InvalidRequestError(f"{name} is required")
            return None
        return str(values[0])

    def _token(self, kind: str) -> VerifiedToken:
        """The ``<kind>_token`` of the request, of a type this server takes, verified."""
        token_type = self._one(f"{kind}_token_type", required=False)
        token = self._one(f"{kind}_token", required=kind == "subject")
        if token is None:
            raise errors.InvalidRequestError(
                "this server issues delegated tokens only: send the agent's own token as actor_token"
            )
        if token_type not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
            raise errors.InvalidRequestError(
                f"{kind}_token_type must be {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}"
            )
        try:
            verified = self.verifier.verify(token)
        except InvalidToken as error:
            raise errors.InvalidGrantError(f"the {kind}_token is not valid: {error.description}") from None
        if verified.jkt is not None:  # its key's holder is not proven here: never passed on
            raise errors.InvalidGrantError(f"the {kind}_token is bound to a DPoP key")
        return verified

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise errors.UnauthorizedClientError(f"the client may not use grant_type={self.GRANT_TYPE}")
        self.request.client = client
        requested = self._one("requested_token_type", required=False)
        if requested not in (None, ACCESS_TOKEN_TYPE):
            raise errors.InvalidRequestError(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
        subject = self._token("subject")
        actor = self._token("actor")
        if actor.subject != client.client_id or actor.actors:
            raise errors.InvalidGrantError("the actor_token must be the authenticated client's own token")
        if subject.org is None:
            raise errors.InvalidGrantError("the subject_token names no organization")
        if len(subject.actors) >= MAX_ACTOR_DEPTH:
            raise errors.InvalidGrantError(f"the delegation chain would pass {MAX_ACTOR_DEPTH} actors")
        asked = self.request.payload.scope
        self.granted = cap_scope(asked, subject.scopes)  # invalid_scope when nothing is left
        self.request.user = User(
            subject.subject,
            subject.org,
            subject.acr,
            subject.auth_time,
            (Actor(client.client_id, client_id=client.client_id), *subject.actors),
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(user=self.request.user, scope=self.granted, include_refresh_token=False)
        token["issued_token_type"] = ACCESS_TOKEN_TYPE  # RFC 8693 §2.2.1
        return 200, token, self.TOKEN_RESPONSE_HEADER


def make_introspection(
    store: Store, issuer: str, resource: str, clock: Callable[[], float]
) -> IntrospectionEndpoint:
    """RFC 7662 at ``/introspect``: a resource server authenticates (``client_secret_basic``) and
    learns what a token this server issued means. Unknown, expired and other resources' tokens are
    all ``{"active": false}`` (§2.2), so a caller cannot tell which it was."""

    class Introspection(IntrospectionEndpoint):
        CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic"]

        def check_params(self, request: Any, client: Client) -> None:
            # §2.1: the server may ignore token_type_hint, and this one does (only access tokens
            # exist here); Authlib would answer an unknown hint with a 401, which reads as our
            # caller's credentials being wrong.
            if not request.form.get("token"):
                raise errors.InvalidRequestError("the token parameter is required")

        def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
            return store.find_token(token_string, clock())

        def check_permission(self, token: IssuedToken, client: Client, request: Any) -> bool:
            # §4: tell a resource server only about tokens meant for the resource it serves.
            return "introspection" in client.endpoints and token.audience == resource

        def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
            answer = {
                "active": True,
                "scope": token.scope,  # space-delimited (§2.2)
                "client_id": token.client_id,
                "sub": token.subject,
                "aud": token.audience,
                "iss": issuer,
                "exp": token.expires_at,
                "iat": token.issued_at,
                "token_type": "Bearer",
                "org_id": token.org,
            }
            if token.jkt is not None:  # RFC 9449 §6.2: the key the token is bound to
                answer.update(token_type="DPoP", cnf={"jkt": token.jkt})
            return answer

    return Introspection()


def load_signing_key(pem: bytes | None) -> ECKey:
    """A P-256 key for ES256 (RFC 7518 §3.4) whose ``kid`` is its RFC 7638 thumbprint."""
    key = serialization.load_pem_private_key(pem, None) if pem else ec.generate_private_key(ec.SECP256R1())
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        raise ValueError("ES256 needs a P-256 private key")
    kid = ECKey.import_key(key).thumbprint()
    return ECKey.import_key(key, {"kid": kid, "use": "sig", "alg": "ES256"})


LOGIN_FORM = """<!doctype html><title>Sign in</title>
<form method="post"><input name="username" placeholder="user"> <input name="password" type="password">
<input name="org" placeholder="org"> <input name="otp" placeholder="second factor (optional)">
<button>Authorize</button></form>"""
#: The longest max_age (seconds) an authorization request may name: OpenID Connect's is a
#: non-negative integer; RFC 9470 §3's challenges carry at most 2147483647.
MAX_AGE_LIMIT = 2**31 - 1


class SignInRefused(Exception):
    """A sign-in at the authorization endpoint that gets no code: ``status`` and why."""

    def __init__(self, description: str, status: int) -> None:
        super().__init__(description)
        self.description, self.status = description, status


def asked_authentication(args: Mapping[str, str]) -> bool:
    """Whether an authorization request asks for the second factor: ``acr_values`` naming
    ``mfa`` (OpenID Connect Core §3.1.2.1; RFC 9470 §4). ``max_age`` is checked for form only:
    every sign-in here is a new one, so it is never older than any ``max_age``. Malformed values
    are a :class:`SignInRefused` (400)."""
    acr_values, max_age = args.get("acr_values"), args.get("max_age")
    if acr_values is not None and (not 0 < len(acr_values) <= 1024 or not acr_values.isascii()):
        raise SignInRefused("acr_values must be space-separated ASCII values", 400)
    if max_age is not None and not (
        max_age.isascii() and max_age.isdigit() and len(max_age) <= 10 and int(max_age) <= MAX_AGE_LIMIT
    ):
        raise SignInRefused(f"max_age must be a number of seconds, 0 to {MAX_AGE_LIMIT}", 400)
    return acr_values is not None and ACR_MFA in acr_values.split(" ")


def second_factor(username: str, code: str, wanted: bool) -> str:
    """The ``acr`` of a sign-in whose password was right: ``mfa`` when the form's ``otp`` is the
    user's code, ``pwd`` when there is none and none was ``wanted``; a wrong code, or none when
    one was wanted, is a :class:`SignInRefused` (401)."""
    if not code:
        if wanted:
            raise SignInRefused(
                "this authorization asks for the second factor (acr_values=mfa): send otp", 401
            )
        return ACR_PASSWORD
    expected = SECOND_FACTORS.get(username, "")
    # Bytes: compare_digest raises TypeError on a non-ASCII str; surrogatepass for "\ud800".
    given = code.encode("utf-8", "surrogatepass")
    if not expected or not hmac.compare_digest(expected.encode(), given):
        raise SignInRefused("wrong second factor", 401)
    return ACR_MFA


def refusal(text: str, status: int) -> Response:
    """Plain text: Authlib's descriptions echo request parameters, which must not render as HTML."""
    return Response(text + "\n", status, mimetype="text/plain")


def token_error(error: str, description: str) -> Response:
    """An RFC 6749 §5.2 error response from the token endpoint (RFC 7591 §3.2.2 from the
    registration endpoint), never cached."""
    response = jsonify(error=error, error_description=description)
    response.status_code = 400
    response.headers["Cache-Control"] = "no-store"
    return response


def proof_unchecked(error: VerificationUnavailable) -> Response:
    """``503`` with ``Retry-After`` for a DPoP proof that cannot be checked now (its replay cache
    cannot be reached, or its key has too many proofs in it). Not ``400 invalid_dpop_proof``:
    the proof may be good, and RFC 6749 §5.2 has no code for a server that cannot answer, so
    this is the answer HTTP has (RFC 9110 §15.6.4), with the body's ``error`` the one OAuth uses
    for it at the authorization endpoint (RFC 6749 §4.1.2.1) and the library at the API."""
    log.error("the token endpoint cannot check a DPoP proof now: %s", error.description)
    response = jsonify(
        error="temporarily_unavailable", error_description="the DPoP proof cannot be checked now; retry later"
    )
    response.status_code = 503
    response.headers["Retry-After"] = str(max(1, int(error.retry_after)))
    response.headers["Cache-Control"] = "no-store"
    return response


def registration_request() -> ClientMetadata:
    """The client metadata of the current registration request (RFC 7591 §3.1: one JSON object),
    checked by :func:`check_client_metadata`; :class:`RegistrationRefused` otherwise."""
    if request.mimetype != "application/json":
        raise RegistrationRefused("invalid_client_metadata", "send the client metadata as application/json")
    try:
        body = json_body(limit=MAX_REGISTRATION_BYTES)  # strict: duplicate members, depth, size
    except BodyError as error:
        raise RegistrationRefused("invalid_client_metadata", error.description) from None
    return check_client_metadata(body)


def create_auth_server(
    *,
    issuer: str,
    db_path: str,
    resource: str,
    signing_key_pem: bytes | None = None,
    tenant: Tenant = ACME,
    clock: Callable[[], float] = time.time,
    resources: Collection[str] = (),
    max_registrations: int = MAX_REGISTRATIONS,
    replay_cache: ReplayCache | None = None,
) -> Flask:
    """Build the authorization server. ``resource`` becomes the ``aud`` (RFC 9068 §2.2) of every
    token whose client names no other; ``resources`` are the others a client may name (RFC
    8707); ``tenant`` seeds a new database; ``clock`` dates codes, opaque tokens and
    registrations (Authlib dates JWTs); ``max_registrations`` caps how many clients may register
    themselves (RFC 7591); ``replay_cache`` keeps the ``jti`` of the DPoP proofs the token
    endpoint accepts (RFC 9449 §11.1): this process's memory by default, a
    ``RedisReplayCache`` when several processes serve."""
    # Authlib refuses plain http unless told otherwise; this demo server only listens on loopback.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = Flask("demo_auth_server")
    store = Store(db_path, tenant)
    key = load_signing_key(signing_key_pem)
    server = AuthorizationServer(app, query_client=store.client, save_token=lambda token, req: None)
    server.register_token_generator("default", TokenGenerator(issuer, resource, key, store, clock))
    known = (resource, *(r for r in resources if r != resource))
    server.register_grant(make_code_grant(store, clock, known), [S256CodeChallenge(required=True)])
    server.register_grant(ServiceGrant)
    # The exchange takes this server's own access tokens, for any resource it serves, as the
    # resource servers check them (strictly: act, acr, auth_time included), on this server's clock.
    own_tokens = JWTVerifier(
        issuer=issuer, audience=known, jwks={"keys": [key.as_dict(private=False)]}, clock=clock
    )
    server.register_grant(make_token_exchange_grant(own_tokens))
    server.register_endpoint(make_introspection(store, issuer, resource, clock))
    token_endpoint = f"{issuer}/token"
    # Proofs at the token endpoint carry no ath (no access token yet); their jti are kept once,
    # in this process unless told otherwise: the demo's authorization server runs as one.
    dpop = DPoPVerifier(clock=clock, replay_cache=replay_cache)

    @app.before_request
    def bounded_body() -> Response | None:
        """Read every body with the library's bounds before Authlib parses it: a malformed chunked
        body or a cut connection is the client's 400, not a 500 inside the form parser."""
        try:
            request_body(request, 64 * 1024)
        except BodyError as error:
            return refusal(error.description, 400)
        return None

    @app.before_request
    def basic_credentials_in_utf8() -> Response | None:
        """RFC 7617 §2.1: Basic credentials are base64 of UTF-8. Authlib decodes them without
        catching a non-ASCII value or bytes that are not UTF-8 (a 500); such a client cannot
        authenticate (RFC 6749 §5.2)."""
        parts = request.headers.get("Authorization", "").split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "basic":
            return None
        try:
            base64.b64decode(parts[1]).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, a non-ASCII str
            response = token_error("invalid_client", "the Basic credentials are not base64 of UTF-8 text")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Basic error="invalid_client"'
            return response
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
            registration_endpoint=f"{issuer}/register",
            introspection_endpoint=f"{issuer}/introspect",
            introspection_endpoint_auth_methods_supported=["client_secret_basic"],
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            grant_types_supported=["authorization_code", "client_credentials", TOKEN_EXCHANGE],
            response_types_supported=["code"],
            scopes_supported=ALL_SCOPES,
            code_challenge_methods_supported=["S256"],
            token_endpoint_auth_methods_supported=["none", "client_secret_basic", "client_secret_post"],
            dpop_signing_alg_values_supported=list(dpop.algorithms),  # RFC 9449 §5.1
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
        try:
            wants_mfa = asked_authentication(request.args)
            if not store.check_password(username, request.form.get("password", "")):
                return refusal("wrong username or password", 401)
            acr = second_factor(username, request.form.get("otp", ""), wants_mfa)
        except SignInRefused as refused:
            return refusal(refused.description, refused.status)
        if store.role_scopes(username, org) is None:
            return refusal("the user is not a member of that organization", 403)
        signed_in = User(username, org, acr, int(clock()))  # RFC 9068 §2.2.1: acr, auth_time
        return server.create_authorization_response(grant_user=signed_in, grant=grant)

    @app.post("/token")
    def token() -> Any:
        """RFC 6749 §3.2; with a ``DPoP`` header, RFC 9449 §5: the proof is checked against this
        endpoint's URL and ``POST`` before the grant is looked at, and the token bound to its key."""
        proofs = request.headers.getlist("DPoP")
        if proofs:
            try:
                if len(proofs) != 1:
                    raise InvalidDPoPProof("send exactly one DPoP header")
                proof = dpop.verify(proofs[0], method="POST", url=token_endpoint, access_token=None)
            except InvalidDPoPProof as error:
                return token_error("invalid_dpop_proof", error.description)
            except VerificationUnavailable as error:
                return proof_unchecked(error)
            g.dpop_jkt = proof.jkt
        try:  # RFC 8707 §2.2; the code grant checks it against the code's resource
            g.audience = requested_resource(request.form.getlist("resource"), known) or resource
        except InvalidTargetError as error:
            return token_error(error.error, error.description)
        return server.create_token_response()

    @app.post("/register")
    def register() -> Response:
        """RFC 7591 §3: a public client registers itself (see demo_registration.py); at most
        ``max_registrations`` of them, then 403."""
        try:
            metadata = registration_request()
        except RegistrationRefused as refused:
            return token_error(refused.error, refused.description)
        client_id = DYNAMIC_PREFIX + secrets.token_urlsafe(16)
        registration = Registration(
            client_id, None, ("none",), ("authorization_code",), metadata.redirect_uris
        )
        if not store.register(registration, max_registrations):
            response = token_error(
                "access_denied", f"this server registers at most {max_registrations} clients"
            )
            response.status_code = 403
            return response
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": int(clock()),
            "redirect_uris": list(metadata.redirect_uris),
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "scope": " ".join(ALL_SCOPES),
        }
        if metadata.client_name is not None:
            answer["client_name"] = metadata.client_name
        response = jsonify(answer)
        response.status_code = 201
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/introspect")
    def introspect() -> Any:
        return server.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)

    return app


def fetch_token_with_code(
    base_url: str,
    *,
    username: str,
    password: str,
    org: str,
    scope: str,
    client: httpx.Client,
    dpop_key: DPoPKey | None = None,
    otp: str | None = None,
    acr_values: tuple[str, ...] | None = None,
    max_age: int | None = None,
    resource: str | None = None,
) -> dict[str, Any]:
    """The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636 §4) over HTTP, scripted;
    with ``dpop_key``, the token is bound to that key (RFC 9449 §5); with ``otp``, the person
    passes the second factor too; ``acr_values`` and ``max_age`` are asked for as RFC 9470 §4
    says; ``resource`` names the resource the token is for (RFC 8707)."""
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
    if acr_values:
        query["acr_values"] = " ".join(acr_values)
    if max_age is not None:
        query["max_age"] = str(max_age)
    if resource is not None:
        query["resource"] = resource
    login = {"username": username, "password": password, "org": org, **({"otp": otp} if otp else {})}
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
    headers = _proof_header(base_url, dpop_key)
    return _token_response(client.post(f"{base_url}/token", data=exchange, headers=headers))


def fetch_token_client_credentials(
    base_url: str,
    *,
    client_id: str,
    client_secret: str,
    scope: str,
    client: httpx.Client,
    dpop_key: DPoPKey | None = None,
) -> dict[str, Any]:
    """RFC 6749 §4.4, authenticating with client_secret_basic (§2.3.1); with ``dpop_key``, the
    token is bound to that key (RFC 9449 §5)."""
    form = {"grant_type": "client_credentials", "scope": scope}
    headers = _proof_header(base_url, dpop_key)
    return _token_response(
        client.post(f"{base_url}/token", data=form, auth=(client_id, client_secret), headers=headers)
    )


def exchange_token(
    base_url: str,
    *,
    client_id: str,
    client_secret: str,
    subject_token: str,
    actor_token: str,
    scope: str | None,
    client: httpx.Client,
) -> dict[str, Any]:
    """RFC 8693 §2.1 token exchange: a token for the person of ``subject_token``, with the client
    (the agent, whose own token is ``actor_token``) as its actor."""
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": actor_token,
        "actor_token_type": ACCESS_TOKEN_TYPE,
        **({"scope": scope} if scope else {}),
    }
    return _token_response(client.post(f"{base_url}/token", data=form, auth=(client_id, client_secret)))


def _proof_header(base_url: str, dpop_key: DPoPKey | None) -> dict[str, str]:
    """RFC 9449 §5: a proof for the token request itself, without ath (there is no token yet)."""
    return {} if dpop_key is None else {"DPoP": dpop_key.proof("POST", f"{base_url}/token")}


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
    parser.add_argument("--tenant", choices=sorted(TENANTS), default="acme", help="whom this server serves")
    args = parser.parse_args()
    db_path = args.db or os.path.join(tempfile.mkdtemp(), "auth.sqlite3")
    issuer = f"http://127.0.0.1:{args.port}"
    app = create_auth_server(
        issuer=issuer, db_path=db_path, resource=args.resource, tenant=TENANTS[args.tenant]
    )
    app.run("127.0.0.1", args.port)


if __name__ == "__main__":
    main()
