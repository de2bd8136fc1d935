"""The per-request pipeline shared by every web adapter: credentials → token → role → decision.

Adapters (Flask, plain WSGI) extract four facts from their request: the ``Authorization`` value,
whether a token also came another way, the method and the organization the URL names. The
:class:`Guard` answers with :class:`Granted` or a ready-to-send :class:`Denial` that follows the
status and header table in DESIGN.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policy import Access, OrgMismatch, Roles, ScopeMap, assemble_access, bearer_challenge, decide

from .bodies import BodyError
from .credentials import MalformedCredentials, bearer_token
from .expiring import ExpiringCache
from .tokens import InvalidToken, TokenVerifier, VerificationUnavailable, VerifiedToken

__all__ = ["Denial", "Granted", "Guard", "Membership", "SessionLoader", "ViewerLoader"]

if TYPE_CHECKING:
    from .capability import CapabilityVerifier
    from .viewer_context import ViewerContext

log = logging.getLogger("resource_server")

#: Returns the subject of the request's first-party session, or None (called only without a token).
SessionLoader = Callable[[], "str | None"]
#: Returns the request's verified viewer context, or None (called only without a token).
ViewerLoader = Callable[[], "ViewerContext | None"]
#: The application's answer to "which role does this subject hold in this org?" (None: not a member).
Membership = Callable[[str, "str | None"], "str | None"]


@dataclass(frozen=True, slots=True)
class Granted:
    """The request may proceed with this access and token."""

    access: Access
    token: VerifiedToken | None  # None for a first-party session or a viewer context
    source: str = "token"  # "token", "session" (a person signed in here) or "viewer" (another service)


#: The most (org, role) grants remembered per cached credential; a token is used in few orgs.
_GRANTS_PER_CREDENTIAL = 16


@dataclass(slots=True)
class _Credential:
    """A verified access token, cached under the exact ``Authorization`` value it came in, with
    the grants already assembled for it: (request org, member role) → :class:`Granted`."""

    token: VerifiedToken
    grants: dict[tuple[str | None, str], Granted] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Denial:
    """A refusal, ready to send: status, ``WWW-Authenticate`` value and a JSON body.

    ``reason`` is the sentence for logs and tooling (``flask scopes explain``); it is never sent.
    """

    status: int
    error: str
    description: str
    www_authenticate: str | None
    reason: str = ""
    retry_after: int | None = None  # seconds, for a 503 (RFC 9110 §10.2.3)

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.error, "error_description": self.description}).encode()

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if self.www_authenticate is not None:
            headers.append(("WWW-Authenticate", self.www_authenticate))
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return headers


class Guard:
    """Authenticates and authorizes one request at a time.

    It keeps no per-request state, only one cache: verified access tokens keyed by the exact
    ``Authorization`` field value they arrived in (bounded by ``cache_size``; an entry leaves at
    the token's ``exp``, never answers after it, and is found only by the same header form),
    with the :class:`Granted` already built for each (org, role) the token was used in. A
    request whose header is in the cache costs a dict lookup, the ``membership`` call (roles
    change, so it is asked every time) and the decision. Capability tokens are not kept in it.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: Membership,
        realm: str = "api",
        resource_metadata: str | None = None,
        capabilities: CapabilityVerifier | None = None,
        cache_size: int = 4096,
    ) -> None:
        if not isinstance(roles, Roles):
            raise TypeError("roles must be a policy.Roles")
        if not callable(membership):
            raise TypeError("membership must be a callable (subject, org) -> role name or None")
        self.verifier = verifier
        self.roles = roles
        self.membership = membership
        self.realm = realm
        self.resource_metadata = resource_metadata
        self.capabilities = capabilities
        # The verifier's own clock, so a cached token expires exactly when the verifier says.
        self.clock: Callable[[], float] = getattr(verifier, "clock", time.time)
        self._credentials: ExpiringCache[str, _Credential] = ExpiringCache(cache_size, self.clock)
        self._max_token_bytes = max(
            verifier.max_token_bytes, capabilities.max_token_bytes if capabilities else 0
        )
        # RFC 6750 §3.1: no error code when the request carried no bearer credentials at all.
        self._no_credentials = Denial(
            401,
            "unauthorized",
            "bearer credentials are required",
            bearer_challenge(realm=realm, resource_metadata=resource_metadata),
            "the request carries no credentials",
        )

    def authenticate(
        self,
        *,
        authorization: str | None,
        token_elsewhere: bool,
        org: str | None,
        session: SessionLoader | None = None,
        viewer: ViewerLoader | None = None,
    ) -> Granted | Denial:
        """Who is asking, as which member of ``org``: credentials → token → role → access.

        With no ``Authorization`` header, ``viewer`` (if given) may supply a verified
        service-to-service viewer context (its ``scope``, when present, narrows the role like a
        token's; its ``org_id`` binds like a token's), and then ``session`` the subject of a
        first-party session, whose access is the member role's scopes (``token`` is then None).
        """
        credential = self._cached(authorization) if not token_elsewhere else None
        if credential is not None:
            return self._token_access(credential, org)
        return self._authenticate(authorization, token_elsewhere, org, session, viewer)

    def _authenticate(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        org: str | None,
        session: SessionLoader | None,
        viewer: ViewerLoader | None,
    ) -> Granted | Denial:
        """:meth:`authenticate` for credentials the cache does not hold."""
        try:
            raw = bearer_token(authorization, max_token_bytes=self._max_token_bytes)
        except MalformedCredentials as exc:
            return self._invalid_request(exc.description)
        except InvalidToken as exc:
            return self._invalid_token(exc.description)
        if token_elsewhere:
            # RFC 6750 §2: a client MUST NOT use more than one method; we accept the header only.
            return self._invalid_request(
                "send the access token in the Authorization header only"
                if raw is None
                else "the access token was sent in more than one way"
            )
        if raw is None:
            try:
                context = viewer() if viewer is not None else None
            except BodyError as exc:  # the context is bound to a body that could not be read
                return self.bad_body(exc)
            except VerificationUnavailable as exc:  # its replay cache cannot be reached
                return self.unavailable(exc)
            if context is not None and context.user_id is not None:
                return self._member_access(
                    context.user_id, org, context.scopes, context.org_id, None, "viewer"
                )
            subject = session() if session is not None else None
            if subject is None:
                return self._no_credentials
            return self._member_access(subject, org, None, None, None, "session")
        if self.capabilities is not None and self.capabilities.handles(raw):
            # A cheap prefix test: access tokens are never parsed as capabilities. Capabilities
            # live minutes and have their own verifier and clock: they are not cached here.
            token = self._verify(self.capabilities, raw)
            if isinstance(token, Denial):
                return token
            return self._member_access(token.subject, org, token.scopes, token.org, token)
        token = self._verify(self.verifier, raw)
        if isinstance(token, Denial):
            return token
        credential = _Credential(token)
        if authorization == f"Bearer {raw}":
            # Only the canonical spelling is kept: "bearer x", padded or folded forms are parsed
            # and verified (from the verifier's own cache) each time, so one token cannot fill
            # the cache with its spellings, nor an entry grow past the token's own size limit.
            self._credentials.put(authorization, credential, token.expires_at)
        return self._token_access(credential, org)

    def _cached(self, authorization: str | None) -> _Credential | None:
        """The verified access token cached for this exact ``Authorization`` value, or None."""
        if authorization is None:
            return None
        try:
            return self._credentials.get(authorization)
        except Exception:  # a failing clock: verification fails the same way, as a 401
            return None

    def _token_access(self, credential: _Credential, org: str | None) -> Granted | Denial:
        """The grant of a verified access token in ``org``: built once per (org, role), then
        reused; the role is asked for every time."""
        token = credential.token
        # Routes declared without an org (org=None) ask about the org the token is bound to.
        role = self.membership(token.subject, org if org is not None else token.org)
        cacheable = role.__class__ is str  # anything else is an app bug, refused as no role below
        granted = credential.grants.get((org, role)) if cacheable else None  # type: ignore[arg-type]
        if granted is not None:
            return granted
        outcome = self._role_access(token.subject, org, role, token.scopes, token.org, token, "token")
        if cacheable and isinstance(outcome, Granted) and len(credential.grants) < _GRANTS_PER_CREDENTIAL:
            credential.grants[(org, role)] = outcome  # type: ignore[index]
        return outcome

    def authorize(
        self,
        *,
        authorization: str | None,
        token_elsewhere: bool,
        method: str,
        scope_map: ScopeMap,
        org: str | None,
        session: SessionLoader | None = None,
        viewer: ViewerLoader | None = None,
    ) -> Granted | Denial:
        """Run the whole pipeline for one request: :meth:`authenticate`, then ``policy.decide``."""
        credential = self._cached(authorization) if not token_elsewhere else None
        if credential is not None:  # the warm path: no parsing, no hashing, no verification
            granted = self._token_access(credential, org)
        else:
            granted = self._authenticate(authorization, token_elsewhere, org, session, viewer)
        if granted.__class__ is Denial:
            return granted
        access = granted.access  # type: ignore[union-attr]
        decision = decide(
            access, scope_map, method, realm=self.realm, resource_metadata=self.resource_metadata
        )
        if decision.allowed:
            return granted
        if decision.www_authenticate is None:
            public = (
                "the member's role does not permit this request"
                if method in scope_map
                else "this method is not permitted on this route"
            )
            return self._forbidden(decision.reason, access, public=public)
        log.info("403 insufficient_scope for %r: %s", access.subject, decision.reason)
        return Denial(
            403,
            "insufficient_scope",
            "the token lacks the scope this request needs",
            decision.www_authenticate,
            decision.reason,
        )

    def bad_body(self, error: BodyError) -> Denial:
        """``400`` for a request body the library had to read and could not accept."""
        log.info("400 invalid_request: %s", error.description)
        return Denial(400, "invalid_request", error.description, None, error.description)

    def unavailable(self, error: VerificationUnavailable) -> Denial:
        """``503`` with ``Retry-After`` when a credential cannot be checked now (the authorization
        server or a shared store is unreachable). Not the client's fault and not the
        credential's: no challenge, nothing for the client to throw away."""
        log.error("503: the credentials cannot be verified now: %s", error.description)
        return Denial(
            503,
            "temporarily_unavailable",
            "the credentials cannot be verified right now; retry later",
            None,
            error.description,
            max(1, int(error.retry_after)),
        )

    def _verify(self, verifier: Any, raw: str) -> VerifiedToken | Denial:
        try:
            return verifier.verify(raw)
        except InvalidToken as exc:
            log.info("401 invalid_token: %s", exc.description)
            return self._invalid_token(exc.description)
        except VerificationUnavailable as exc:
            return self.unavailable(exc)
        except Exception:  # a verification bug or a key-fetch surprise is a 401, never a 500
            log.exception("unexpected error while verifying a token")
            return self._invalid_token("the token could not be verified")

    def _member_access(
        self,
        subject: str,
        org: str | None,
        token_scopes: frozenset[str] | None,
        token_org: str | None,
        token: VerifiedToken | None,
        source: str = "token",
    ) -> Granted | Denial:
        # Routes declared without an org (org=None) ask about the org the credential is bound to.
        role = self.membership(subject, org if org is not None else token_org)
        return self._role_access(subject, org, role, token_scopes, token_org, token, source)

    def _role_access(
        self,
        subject: str,
        org: str | None,
        role: str | None,
        token_scopes: frozenset[str] | None,
        token_org: str | None,
        token: VerifiedToken | None,
        source: str,
    ) -> Granted | Denial:
        try:
            access = assemble_access(
                subject=subject,
                role_scopes=self._role_scopes(role),
                token_scopes=token_scopes,
                token_org=token_org,
                request_org=org,
            )
        except OrgMismatch as exc:
            log.info("401 invalid_token: %s", exc)
            return self._invalid_token("the token is bound to a different organization")
        if role is None:
            return self._forbidden(f"{subject!r} is not a member of this organization", access)
        return Granted(access, token, source)

    def _role_scopes(self, role: str | None) -> frozenset[str]:
        if role is None:
            return frozenset()
        try:
            return self.roles.scopes_for(role)
        except KeyError:
            log.error("membership() returned the unknown role %r; treating it as no scopes", role)
            return frozenset()

    def _forbidden(
        self, reason: str, access: Access, public: str = "not a member of this organization"
    ) -> Denial:
        log.info("403 for %r in %r: %s", access.subject, access.org, reason)
        return Denial(403, "forbidden", public, None, reason)

    def _invalid_request(self, description: str) -> Denial:
        return Denial(
            400,
            "invalid_request",
            description,
            bearer_challenge(realm=self.realm, error="invalid_request", error_description=description),
            description,
        )

    def _invalid_token(self, description: str) -> Denial:
        return Denial(
            401,
            "invalid_token",
            description,
            bearer_challenge(
                realm=self.realm,
                error="invalid_token",
                error_description=description,
                resource_metadata=self.resource_metadata,
            ),
            description,
        )
