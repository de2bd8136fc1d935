"""The per-request pipeline shared by every web adapter: credentials → token → role → decision.

Adapters (Flask, plain WSGI) extract a few facts from their request: the ``Authorization`` value,
whether a token also came another way, the method, the organization the URL names, and for DPoP
(RFC 9449) the ``DPoP`` header and the request URL. The :class:`Guard` answers with
:class:`Granted` or a ready-to-send :class:`Denial` (:mod:`resource_server.denials`) that follows
the status and header table in DESIGN.md.

A token the cache does not hold is checked by :mod:`resource_server.token_check`; the values the
guard answers with and keeps, :class:`Granted` and :class:`Credential`, are defined in
:mod:`resource_server.granted`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from policy import Access, Actors, OrgMismatch, Roles, ScopeMap, assemble_access, decide

from .bodies import BodyError
from .checks import authorization_servers
from .credentials import MalformedHost
from .denials import Denial, Refusals
from .dpop import (
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPRequest,
    DPoPVerifier,
    InvalidDPoPProof,
    ReplayedDPoPProof,
    bound_key,
)
from .expiring import ExpiringCache
from .granted import Credential, Granted
from .telemetry import audit
from .telemetry.observer import Observer
from .token_check import TokenCheck
from .tokens import TokenVerifier, VerificationUnavailable, VerifiedToken

__all__ = [
    "AsyncMembership",
    "Credential",
    "DPoPRequest",
    "Denial",
    "Granted",
    "Guard",
    "Membership",
    "SessionLoader",
    "ViewerLoader",
]

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
#: The same answer from a plain function or a coroutine function, as the async adapters take it
#: (:class:`~resource_server.async_guard.AsyncGuard` awaits it).
AsyncMembership = Callable[[str, "str | None"], "str | Awaitable[str | None] | None"]


_NO_SCOPES: frozenset[str] = frozenset()


class Guard:
    """Authenticates and authorizes one request at a time.

    It keeps no per-request state, only one cache: verified access tokens keyed by the exact
    ``Authorization`` field value they arrived in (bounded by ``cache_size``; an entry leaves at
    the token's ``exp``, never answers after it, and is found only by the same header form),
    with the :class:`Granted` already built for each (org, role) the token was used in. A
    request whose header is in the cache costs a dict lookup, the ``membership`` call (roles
    change, so it is asked every time) and the decision; a DPoP request also its proof, which is
    checked every time. Capability tokens are not kept in it.

    With ``dpop`` (a :class:`~resource_server.dpop.DPoPVerifier`), ``Authorization: DPoP``
    requests are accepted (RFC 9449 §7): exactly one ``DPoP`` header, a valid proof, and the
    token's ``cnf.jkt`` equal to the proof key's thumbprint. A token bound with ``cnf.jkt`` is
    never accepted as a bearer token (no downgrade).

    ``dpop_required=True`` (RFC 9449 §7.1; RFC 9728 ``dpop_bound_access_tokens_required``)
    covers every access token: one in ``Authorization`` is accepted only under the DPoP scheme,
    bound by ``cnf.jkt`` and with its proof; ``Bearer`` is refused, and so is a token sent any
    other way, as always. Capability tokens are bearer tokens by design, so a guard given both
    ``capabilities`` and ``dpop_required=True`` is refused at construction (``ValueError``).
    It does not cover what is not a token: a first-party session (``session=``) and a verified
    viewer context (``viewer=``) are accepted as before on the routes that ask for them; the
    application opts into each, and each is checked its own way (a cookie of this site; a
    context signed for one request and used once).

    ``actors`` (a :class:`policy.Actors`) caps what each actor acting for a person may do
    (RFC 8693 delegation: a token whose ``act`` names the actor): a delegated request's
    effective scopes are the token's, the member role's and the current actor's ceiling
    together. Without it, a delegated token is treated as any other. Either way the token's
    actor chain, ``acr`` and ``auth_time`` reach the decision (``Access.actors``, ``acr``,
    ``auth_time``), so a :class:`policy.Requirement` can refuse actors or ask the person to
    authenticate again: ``401 insufficient_user_authentication`` (RFC 9470 §3).
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: Membership | AsyncMembership,  # a coroutine function only under AsyncGuard
        realm: str = "api",
        resource_metadata: str | None = None,
        capabilities: CapabilityVerifier | None = None,
        cache_size: int = 4096,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
        scope_on_401: str | None = None,
        actors: Actors | None = None,
    ) -> None:
        if not isinstance(roles, Roles):
            raise TypeError("roles must be a policy.Roles")
        if actors is not None and not isinstance(actors, Actors):
            raise TypeError("actors must be a policy.Actors (actor sub -> the scopes it may exercise)")
        if not callable(membership):
            raise TypeError("membership must be a callable (subject, org) -> role name or None")
        if dpop is not None and not isinstance(dpop, DPoPVerifier):
            raise TypeError("dpop must be a resource_server.dpop.DPoPVerifier")
        if capabilities is not None and dpop_required:
            # Fail closed: accepting them would break the promise the option makes, and
            # refusing them silently would break every agent the application hands them to.
            reason = (
                "capabilities and dpop_required=True contradict each other: capability tokens are "
                "bearer tokens; drop capabilities, or set dpop_required=False"
            )
            raise ValueError(audit.misconfigured("Guard", reason))
        self.verifier = verifier
        self.roles = roles
        # Each role's scopes, looked up once per new grant (Roles is immutable).
        self._scopes_of_role = {name: roles.scopes_for(name) for name in roles}
        self.actors = actors
        self.membership: AsyncMembership = membership
        self.realm = realm
        self.resource_metadata = resource_metadata
        self.capabilities = capabilities
        self.dpop = dpop
        self.dpop_required = dpop_required
        # The verifier's own clock, so a cached token expires exactly when the verifier says.
        self.clock: Callable[[], float] = getattr(verifier, "clock", time.time)
        self.refusals = Refusals(
            realm=realm,
            resource_metadata=resource_metadata,
            dpop_algs=dpop.algorithms if dpop is not None else None,
            dpop_required=dpop_required,
            scope_on_401=scope_on_401,
            clock=self.clock,
        )
        self._credentials: ExpiringCache[str, Credential] = ExpiringCache(cache_size, self.clock)
        self._token_check = TokenCheck(
            verifier=verifier,
            capabilities=capabilities,
            dpop=dpop,
            dpop_required=dpop_required,
            refusals=self.refusals,
            credentials=self._credentials,
        )
        #: Records each request's answer: metrics, audit events (resource_server.telemetry).
        self.observer = Observer(
            cache=self._credentials,
            issuers=authorization_servers(None, verifier),
            dpop=dpop is not None,
            dpop_required=dpop_required,
            capabilities=capabilities,
        )

    # -- the steps, for adapters that run them themselves (the ASGI adapters await some) ----------

    def cached(self, authorization: str | None) -> Credential | None:
        """The verified token cached for this exact ``Authorization`` value, or None. Never
        blocks: a dict lookup."""
        if authorization is None:
            return None
        try:
            return self._credentials.get(authorization)
        except Exception:  # a failing clock: verification fails the same way, as a 401
            return None

    def credential(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        dpop: DPoPRequest | None = None,
        wait: bool = True,
    ) -> Credential | Denial | None:
        """The request's verified access token, from the cache or verified now (which may wait on
        the network: JWKS, discovery, introspection), its DPoP proof checked; None when the
        request carries no token (a viewer context or a session may stand in). ``wait=False``:
        :class:`~resource_server.tokens.errors.WouldWait` rather than a wait on the network for
        the token (the proof's replay cache is the caller's to judge)."""
        if authorization is not None and not token_elsewhere:
            cached = self.cached(authorization)
            if cached is not None:  # a bound token is cached under "DPoP <token>" only
                return self.proved(cached, authorization[5:] if cached.jkt is not None else "", dpop)
        return self.uncached(authorization, token_elsewhere, dpop, wait)

    def uncached(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        dpop: DPoPRequest | None = None,
        wait: bool = True,
    ) -> Credential | Denial | None:
        """:meth:`credential` once the cache has been asked and does not hold it (the token is
        verified: each lookup of a new token's value costs a clock read and a hash)."""
        found = self._token_check.verified(authorization, token_elsewhere, wait)
        if found is None or type(found) is Denial:
            return found
        credential, raw = found
        return credential if credential.jkt is None else self.proved(credential, raw, dpop)

    def proved(self, credential: Credential, raw: str, dpop: DPoPRequest | None) -> Credential | Denial:
        """``credential`` once the DPoP proof of this request holds for it (with a fresh nonce
        to send back, if any); a bearer credential as it is. ``raw`` is the token itself."""
        if credential.jkt is None:
            return credential
        checked = self._check_proof(credential, raw, dpop)
        if checked is None:
            return credential
        if type(checked) is Denial:
            return checked.noting(token=credential.token)
        return credential.with_nonce(checked)

    def role_of(self, credential: Credential, org: str | None) -> tuple[str, str | None]:
        """(subject, org) to ask ``membership`` about: routes declared without an org
        (``org=None``) ask about the org the token is bound to."""
        token = credential.token
        return token.subject, org if org is not None else token.org

    def grant(self, credential: Credential, org: str | None, role: object) -> Granted | Denial:
        """The access of a verified token as a member holding ``role`` in ``org``: built once per
        (org, role) and then reused (capabilities are never cached, so neither are theirs).
        ``role`` is what ``membership`` answered: a role name, or None for no member; anything
        else (an application bug) is refused as a role without scopes, and never cached."""
        granted: Granted | Denial | None = credential.known(org, role) if type(role) is str else None
        if granted is None:
            token = credential.token
            granted = self._role_access(
                token.subject, org, role, token.scopes, token.org, token, "token", credential.jkt is not None
            )
            if type(role) is str and type(granted) is Granted:
                credential.keep(org, role, granted)
        if credential.fresh_nonce is not None and type(granted) is Granted:
            return replace(granted, headers=(("DPoP-Nonce", credential.fresh_nonce),))
        return granted

    def session_grant(self, subject: str, org: str | None, role: str | None) -> Granted | Denial:
        """The access of a first-party session's subject holding ``role`` in ``org``: the role's
        scopes, as no token narrows them."""
        return self._role_access(subject, org, role, None, None, None, "session")

    def decision(self, granted: Granted | Denial, method: str, scope_map: ScopeMap) -> Granted | Denial:
        """``policy.decide`` on a grant: the grant itself, or the refusal with its challenge.
        The clock is read only for a scope map with a ``max_age`` (RFC 9470 §3)."""
        if type(granted) is Denial:
            return granted
        access = granted.access
        if scope_map.needs_time:  # a max_age (RFC 9470 §3): the decision needs the time
            decision = decide(
                access,
                scope_map,
                method,
                realm=self.realm,
                resource_metadata=self.resource_metadata,
                now=self.clock(),
            )
        else:  # no clock read, and no argument passed for nothing
            decision = decide(
                access, scope_map, method, realm=self.realm, resource_metadata=self.resource_metadata
            )
        if decision.allowed:
            return granted
        if decision.www_authenticate is None:
            if method not in scope_map:
                public = "this method is not permitted on this route"
            elif access.actors:
                public = "neither the member's role nor what the acting agent may do permits this request"
            else:
                public = "the member's role does not permit this request"
            refused = self._forbidden(decision.reason, access, public=public)
            return refused.noting(token=granted.token, source=granted.source)
        token = granted.token
        bound = token is not None and bound_key(token) is not None
        if decision.status == 401 and (token is None or token.kind != "access"):
            # A viewer context or a capability token carries no acr or auth_time and never will:
            # no sign-in of the person could make this credential succeed, so no challenge.
            refused = self._forbidden(
                decision.reason + " (this credential cannot carry the person's sign-in)",
                access,
                public="this request needs a stronger or more recent sign-in than this credential can carry",
            )
            return refused.noting(token=token, source=granted.source)
        if decision.status == 401:  # RFC 9470 §3: the person must authenticate again
            refused = self.refusals.insufficient_user_authentication(
                decision.acr_values, decision.max_age, decision.reason, dpop=bound
            )
        else:
            refused = self.refusals.insufficient_scope(decision.scope or "", decision.reason, dpop=bound)
        return refused.noting(token=token, access=access, source=granted.source)

    def without_token(
        self, org: str | None, session: SessionLoader | None, viewer: ViewerLoader | None
    ) -> Granted | Denial:
        """A request without an access token: a viewer context, a session, or nobody."""
        try:
            context = viewer() if viewer is not None else None
        except BodyError as exc:  # the context is bound to a body that could not be read
            return self.refusals.bad_body(exc).noting(source="viewer")
        except VerificationUnavailable as exc:  # its replay cache cannot be reached
            return self.refusals.unavailable(exc).noting(source="viewer")
        if context is not None and context.user_id is not None:
            return self._member_access(context.user_id, org, context.scopes, context.org_id, None, "viewer")
        subject = session() if session is not None else None
        if subject is None:
            return self.refusals.no_credentials
        return self._member_access(subject, org, None, None, None, "session")

    # -- the whole pipeline, for synchronous adapters -----------------------------------------------

    def authenticate(
        self,
        *,
        authorization: str | None,
        token_elsewhere: bool,
        org: str | None,
        session: SessionLoader | None = None,
        viewer: ViewerLoader | None = None,
        dpop: DPoPRequest | None = None,
        method: str | None = None,
        route: str | None = None,
    ) -> Granted | Denial:
        """Who is asking, as which member of ``org``: credentials → token → role → access.

        With no ``Authorization`` header, ``viewer`` (if given) may supply a verified
        service-to-service viewer context (its ``scope``, when present, narrows the role like a
        token's; its ``org_id`` binds like a token's), and then ``session`` the subject of a
        first-party session, whose access is the member role's scopes (``token`` is then None).
        ``dpop`` carries what a DPoP proof is checked against (adapters give it for requests
        with the DPoP scheme when the guard has a DPoP verifier).

        Given the request's ``method`` (and ``route``, the route template the adapter matched),
        the answer is recorded as one request's (:mod:`resource_server.telemetry`); without,
        this is a step of a pipeline that records it elsewhere.
        """
        if method is None:
            return self._authenticate(authorization, token_elsewhere, org, session, viewer, dpop)
        observer = self.observer
        begun = observer.begin(authorization, token_elsewhere)
        outcome = self._authenticate(authorization, token_elsewhere, org, session, viewer, dpop)
        return observer.end(begun, outcome, route, method, authorization, org, None)

    def _authenticate(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        org: str | None,
        session: SessionLoader | None,
        viewer: ViewerLoader | None,
        dpop: DPoPRequest | None,
        looked: bool = False,
    ) -> Granted | Denial:
        # looked: the cache was asked already, and holds no credential for this value.
        credential = (
            self.uncached(authorization, token_elsewhere, dpop)
            if looked
            else self.credential(authorization, token_elsewhere, dpop)
        )
        if credential is None:
            return self.without_token(org, session, viewer)
        if type(credential) is Denial:
            return credential
        token = credential.token  # role_of(), inline
        return self.grant(
            credential, org, self.membership(token.subject, org if org is not None else token.org)
        )

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
        dpop: DPoPRequest | None = None,
        route: str | None = None,
    ) -> Granted | Denial:
        """Run the whole pipeline for one request: :meth:`authenticate`, then ``policy.decide``.
        The answer is recorded (:mod:`resource_server.telemetry`) with ``route``, the route
        template the adapter matched (``http.route``: never the raw path)."""
        observer = self.observer
        begun = observer.begin(authorization, token_elsewhere)
        outcome = self._authorize(
            authorization, token_elsewhere, method, scope_map, org, session, viewer, dpop
        )
        return observer.end(begun, outcome, route, method, authorization, org, scope_map)

    def _authorize(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        method: str,
        scope_map: ScopeMap,
        org: str | None,
        session: SessionLoader | None,
        viewer: ViewerLoader | None,
        dpop: DPoPRequest | None,
    ) -> Granted | Denial:
        # The warm path: two lookups (cached() and grant()'s cache, inlined), the membership call
        # and the decision; no parsing, no verification (a DPoP proof only). The typed results
        # cost 0.03 µs here (decide()'s isinstance most of it); inlined, the two lookups pay for
        # them: 0.824 µs before, 0.827 after (bench_hot_path.py's warm guard.authorize, medians
        # of 20 alternated runs).
        if authorization is not None and not token_elsewhere:
            try:
                credential = self._credentials.get(authorization)
            except Exception:  # a failing clock: verification fails the same way, as a 401
                credential = None
            if credential is not None:
                if credential.jkt is not None:  # cached under "DPoP <token>" only
                    proved = self.proved(credential, authorization[5:], dpop)
                    if type(proved) is Denial:
                        return proved
                    credential = proved
                token = credential.token
                role = self.membership(token.subject, org if org is not None else token.org)
                known = credential.known(org, role) if type(role) is str else None
                if known is not None and credential.fresh_nonce is None:
                    return self.decision(known, method, scope_map)
                return self.decision(self.grant(credential, org, role), method, scope_map)
            granted = self._authenticate(authorization, False, org, session, viewer, dpop, looked=True)
            return self.decision(granted, method, scope_map)
        granted = self._authenticate(authorization, token_elsewhere, org, session, viewer, dpop)
        return self.decision(granted, method, scope_map)

    # -- inside -----------------------------------------------------------------------------------

    def _check_proof(self, credential: Credential, raw: str, dpop: DPoPRequest | None) -> Denial | str | None:
        """RFC 9449 §7.1: exactly one ``DPoP`` header, a valid proof for this request and token,
        by the key the token is bound to. None when it holds (or a fresh nonce to send back)."""
        assert self.dpop is not None
        if dpop is None or not dpop.proof or "," in dpop.proof:
            return self.refusals.invalid_dpop_proof("a DPoP request needs exactly one DPoP header")
        try:
            # The token's key goes to the verifier, which compares it (ASCII, constant time; it
            # cannot raise) before the proof's jti is recorded.
            return self.dpop.check(
                dpop.proof, method=dpop.method, url=dpop.url(), access_token=raw, jkt=credential.jkt
            )
        except DPoPNonceRequired as exc:
            return self.refusals.use_dpop_nonce(exc.nonce)
        except MalformedHost as exc:  # dpop.url(), before the proof is read: its jti stays unspent
            return self.refusals.bad_host(exc)
        except ReplayedDPoPProof as exc:
            return self.refusals.invalid_dpop_proof(exc.description).noting(event="dpop_proof_replayed")
        except InvalidDPoPProof as exc:
            return self.refusals.invalid_dpop_proof(exc.description)
        except DPoPKeyMismatch as exc:
            # RFC 9449 §7.1: the token is bound to another key; the token is the problem.
            refused = self.refusals.invalid_token(
                exc.description, dpop=True, reason="a DPoP proof by a key the token is not bound to"
            )
            return refused.noting(event="dpop_key_mismatch")
        except VerificationUnavailable as exc:  # the replay cache cannot answer, or the key's share is full
            return self.refusals.unavailable(exc)

    def bad_body(self, error: BodyError) -> Denial:
        """``400`` for a request body the library had to read and could not accept."""
        return self.refusals.bad_body(error)

    def refused(
        self,
        denial: Denial,
        *,
        route: str | None = None,
        method: str | None = None,
        authorization: str | None = None,
        org: str | None = None,
    ) -> Denial:
        """``denial``, recorded as the answer to one request: for the refusals an adapter makes
        itself (a bad ``Host``, a body it could not read, a path no route covers), before or
        after the guard's pipeline, which records its own."""
        return self.observer.refused(denial, route, method, authorization, org)

    def unavailable(self, error: VerificationUnavailable) -> Denial:
        """``503`` with ``Retry-After``: a credential that cannot be checked now."""
        return self.refusals.unavailable(error)

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
        role: object,
        token_scopes: frozenset[str] | None,
        token_org: str | None,
        token: VerifiedToken | None,
        source: str,
        dpop: bool = False,
    ) -> Granted | Denial:
        try:
            access = assemble_access(
                subject=subject,
                role_scopes=self._role_scopes(role),
                token_scopes=token_scopes,
                token_org=token_org,
                request_org=org,
                actors=self.actors,
                actor_chain=token.actors if token is not None else (),
                acr=token.acr if token is not None else None,
                auth_time=token.auth_time if token is not None else None,
            )
        except OrgMismatch as exc:
            refused = self.refusals.invalid_token(
                "the token is bound to a different organization", dpop=dpop, reason=str(exc)
            )
            # What it would have had here: nothing; the subject is what the security event needs.
            tried = Access(subject, org, frozenset(), token_scopes, frozenset())
            return refused.noting(token=token, access=tried, source=source, event="org_binding_violation")
        if role is None:
            refused = self._forbidden(f"{subject!r} is not a member of this organization", access)
            return refused.noting(token=token, source=source)
        return Granted(access, token, source)

    def _role_scopes(self, role: object) -> frozenset[str]:
        if role is None:
            return _NO_SCOPES
        scopes = self._scopes_of_role.get(role) if type(role) is str else None
        if scopes is not None:
            return scopes
        log.error("membership() returned the unknown role %r; treating it as no scopes", role)
        return frozenset()

    def _forbidden(
        self, reason: str, access: Access, public: str = "not a member of this organization"
    ) -> Denial:
        return self.refusals.forbidden(reason, public).noting(access=access)
