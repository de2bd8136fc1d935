"""``ResourceServer``: the Django adapter's configuration and its per-request pipeline, shared by the
view decorator, the class-based mixin, the middleware and the DRF classes. It extracts the
request's facts and runs the shared guard (:class:`~resource_server.guard.Guard` for sync views,
:class:`~resource_server.async_guard.AsyncGuard` for async ones); it decides nothing itself."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.http import HttpRequest

from policy import Actors, Roles, ScopeMap

from ..async_guard import AsyncGuard
from ..checks import authorization_servers as servers_of
from ..denials import Denial
from ..dpop import DPoPVerifier
from ..guard import Granted, Guard
from ..metadata import check_resource, metadata_document, metadata_url_for
from ..tokens import TokenVerifier, VerifiedToken
from ..viewer_context import ViewerContextVerifier
from .attributes import set_access, set_auth, set_viewer_context, viewer_context_of
from .requests import Facts, facts
from .sessions import CsrfRefused, csrf_failure, default_session_subject, session_user
from .users import TokenUser

if TYPE_CHECKING:
    from ..capability import CapabilityVerifier
    from ..guard import Credential

__all__ = ["ResourceServer"]

log = logging.getLogger("resource_server")

#: Where a request keeps what the adapter found, so no step runs twice for one request (a DPoP
#: proof checked twice would be refused as a replay).
CREDENTIAL = "_resource_server_credential"
OUTCOME = "_resource_server_outcome"
#: What credential() keeps under CREDENTIAL: (the credential, when the observer began, the
#: Authorization value), for grant()'s one record of the request.
_NOTHING_FOUND: tuple[None, None, None] = (None, None, None)


class _AsyncGuard(AsyncGuard):
    """:class:`AsyncGuard` whose ``membership`` never runs the project's sync function on the
    event loop: Django's ORM refuses to (``SynchronousOnlyOperation``), so a sync ``membership``
    is awaited through ``sync_to_async``. A coroutine function is awaited directly."""

    def __init__(self, guard: Guard, membership: Callable[..., Any]) -> None:
        super().__init__(guard)
        self._membership = membership if iscoroutinefunction(membership) else sync_to_async(membership)

    async def membership(self, subject: str, org: str | None) -> str | None:
        role: str | None = await self._membership(subject, org)
        return role


class ResourceServer:
    """Protects Django and DRF views with access tokens and per-method scope maps.

    ``verifier``, ``roles``, ``realm``, ``dpop``, ``dpop_required``, ``capabilities``,
    ``cache_size`` and ``actors`` (a :class:`policy.Actors`: what each agent acting for a person
    may do, RFC 8693) mean what they mean for every adapter (:class:`~resource_server.guard.Guard`).
    ``membership(subject, org)`` returns the member's role name or None; a plain function or a
    coroutine function (sync views call a coroutine function through ``async_to_sync``; async
    views await a plain one through ``sync_to_async``, so its ORM queries are allowed).

    ``resource`` is this API's URL (RFC 9728 §1.2): challenges then carry ``resource_metadata``
    and ``resource_server.django.urls`` serves the metadata document. ``authorization_servers``
    defaults to the issuers the verifier accepts tokens from. ``viewer_context`` verifies the
    ``X-Viewer-Context`` headers ``ViewerContextMiddleware`` reads.

    ``user_for(token)`` returns the ``request.user`` of a request authenticated by ``token``
    (look the subject up in the project's user model; never create users silently), or None to
    refuse the token (``401 invalid_token``); unset, ``request.user`` is a
    :class:`~resource_server.django.users.TokenUser`. ``session_subject(user)`` is the subject
    ``membership`` is asked about for a signed-in user (default ``user.get_username()``);
    ``None`` refuses first-party sessions altogether.

    A contradiction (``dpop_required`` without ``dpop``, or with ``capabilities``), a
    ``resource`` that is not an absolute URL, or a ``roles`` that is not one is refused here.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        roles: Roles | Mapping[str, Any],
        membership: Callable[[str, str | None], Any],
        realm: str = "api",
        resource: str | None = None,
        authorization_servers: str | Sequence[str] | None = None,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
        capabilities: CapabilityVerifier | None = None,
        viewer_context: ViewerContextVerifier | None = None,
        cache_size: int = 4096,
        user_for: Callable[[VerifiedToken], Any] | None = None,
        session_subject: Callable[[Any], str | None] | None = default_session_subject,
        actors: Actors | None = None,
    ) -> None:
        if not callable(membership):
            raise TypeError("membership must be a callable (subject, org) -> role name or None")
        if viewer_context is not None and not isinstance(viewer_context, ViewerContextVerifier):
            raise TypeError("viewer_context must be a resource_server.viewer_context.ViewerContextVerifier")
        for name, value in (("user_for", user_for), ("session_subject", session_subject)):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be a callable or None")
        if resource is not None:
            check_resource(resource)
        self.roles = roles if isinstance(roles, Roles) else Roles(roles)
        self.resource = resource
        self.resource_metadata = metadata_url_for(resource) if resource else None
        self.authorization_servers = servers_of(authorization_servers, verifier)
        self.verifier = verifier
        self.dpop = dpop
        self.viewer_context = viewer_context
        self.user_for = user_for
        self.session_subject = session_subject
        self.membership = membership
        self.guard = Guard(
            verifier=verifier,
            roles=self.roles,
            membership=async_to_sync(membership) if iscoroutinefunction(membership) else membership,
            realm=realm,
            resource_metadata=self.resource_metadata,
            capabilities=capabilities,
            cache_size=cache_size,
            dpop=dpop,
            dpop_required=dpop_required,
            actors=actors,
        )
        self.async_guard: AsyncGuard = _AsyncGuard(self.guard, membership)

    # -- the whole pipeline, for views and the middleware -----------------------------------------

    def authorize(
        self, request: HttpRequest, scope_map: ScopeMap | None, org: str | None
    ) -> Granted | Denial:
        """The outcome for a sync view: credentials → token → role → (with ``scope_map``) the
        decision. A grant is admitted onto the request (``request.access``, ``request.auth``,
        ``request.user``); the outcome is kept on the request."""
        found = self._facts(request)
        if isinstance(found, Denial):
            return self._kept(request, self.refused(request, found, org))
        try:
            outcome = self._run(request, found, scope_map, org)
        except CsrfRefused as exc:
            outcome = self.refused(request, self._csrf(exc), org)
        if isinstance(outcome, Granted):
            user = self._user_of(outcome.token) if outcome.token is not None else None
            outcome = self._admitted(request, outcome, user)
        return self._kept(request, outcome)

    async def aauthorize(
        self, request: HttpRequest, scope_map: ScopeMap | None, org: str | None
    ) -> Granted | Denial:
        """:meth:`authorize` for an async view, on the event loop for a cached token or one whose
        keys are in hand; a token whose verification may wait on the network is verified in a
        worker thread (:class:`~resource_server.async_guard.AsyncGuard`)."""
        found = self._facts(request)
        if isinstance(found, Denial):
            return self._kept(request, self.refused(request, found, org))
        try:
            if viewer_context_of(request) is not None:
                # Another service's verified context (rare, service to service): the sync steps,
                # in a thread, which take a viewer context where the async ones do not.
                outcome = await sync_to_async(self._run)(request, found, scope_map, org)
            else:
                outcome = await self._arun(request, found, scope_map, org)
        except CsrfRefused as exc:
            outcome = self.refused(request, self._csrf(exc), org)
        if isinstance(outcome, Granted):
            token, user = outcome.token, None
            if token is not None:  # user_for may query the ORM: never on the event loop
                user = await sync_to_async(self._user_of)(token) if self.user_for else self._user_of(token)
            outcome = self._admitted(request, outcome, user)
        return self._kept(request, outcome)

    # -- the steps, for DRF's authentication and permission classes -------------------------------

    def credential(self, request: HttpRequest) -> Credential | Denial | None:
        """The request's verified access token (None: it carries none), found once per request:
        DRF's authentication class asks for it, and the permission class again."""
        kept = request.__dict__
        if CREDENTIAL in kept:
            found: Credential | Denial | None = kept[CREDENTIAL][0]  # what this method stored
            return found
        facts_found = self._facts(request)
        if isinstance(facts_found, Denial):
            refused = self.refused(request, facts_found, None)
            kept[CREDENTIAL] = (refused, None, None)
            return refused
        authorization = facts_found.authorization
        # Recorded once (resource_server.telemetry): here when refused, else by grant().
        observer = self.guard.observer
        begun = observer.begin(authorization, facts_found.token_elsewhere)
        found = self.guard.credential(authorization, facts_found.token_elsewhere, facts_found.dpop)
        if found is not None and type(found) is Denial:
            observer.end(begun, found, route_of(request), request.method, authorization, None, None)
        kept[CREDENTIAL] = (found, begun, authorization)
        return found

    def grant(
        self,
        request: HttpRequest,
        credential: Credential | None,
        scope_map: ScopeMap | None,
        org: str | None,
        session: Callable[[], str | None] | None,
    ) -> Granted | Denial:
        """The access of a verified credential (or, without one, of a viewer context or a
        session) as a member of ``org``, and with ``scope_map`` the decision; kept on the
        request. The guard's own steps, in its own order."""
        guard = self.guard
        method = request.method
        if credential is None:
            granted = guard.without_token(org, session, lambda: viewer_context_of(request))
        else:
            granted = guard.grant(credential, org, guard.membership(*guard.role_of(credential, org)))
        outcome = granted if scope_map is None else guard.decision(granted, method or "GET", scope_map)
        _, begun, authorization = request.__dict__.get(CREDENTIAL, _NOTHING_FOUND)
        guard.observer.end(begun, outcome, route_of(request), method, authorization, org, scope_map)
        if type(outcome) is Granted:
            set_access(request, outcome.access)
            _forget_unused_viewer(request, outcome)
        request.__dict__[OUTCOME] = outcome
        return outcome

    def user_of(self, token: VerifiedToken, request: HttpRequest | None = None) -> Any | Denial:
        """``request.user`` for a request authenticated by ``token``, or the ``401`` when
        ``user_for`` maps its subject to no user (recorded as the answer to ``request``)."""
        user = self._user_of(token)
        if user is not None:
            return user
        refused = self._no_user(token)
        return self.refused(request, refused, None) if request is not None else refused

    def refused(self, request: HttpRequest, denial: Denial, org: str | None) -> Denial:
        """``denial``, a refusal of this adapter's own, recorded as the answer to ``request``
        (:meth:`Guard.refused <resource_server.guard.Guard.refused>`)."""
        return self.guard.refused(
            denial,
            route=route_of(request),
            method=request.method,
            authorization=request.META.get("HTTP_AUTHORIZATION"),
            org=org,
        )

    def forbidden(self, reason: str) -> Denial:
        """A 403 without a challenge for a route that cannot be checked: logged, never sent."""
        log.error(reason)
        return self.guard.refusals.forbidden(reason, "this route is misconfigured")

    # -- RFC 9728 ---------------------------------------------------------------------------------

    def metadata_document(self, scopes_supported: Sequence[str]) -> dict[str, Any]:
        """RFC 9728 §2: the protected resource metadata (with RFC 9449 §5.1's DPoP members)."""
        return metadata_document(
            resource=self.resource,
            scopes_supported=scopes_supported,
            authorization_servers=self.authorization_servers,
            dpop=self.dpop,
            dpop_required=self.guard.dpop_required,
        )

    # -- inside -----------------------------------------------------------------------------------

    def _facts(self, request: HttpRequest) -> Facts | Denial:
        return facts(request, self.guard.refusals, dpop=self.guard.dpop is not None, resource=self.resource)

    def _run(
        self, request: HttpRequest, found: Facts, scope_map: ScopeMap | None, org: str | None
    ) -> Granted | Denial:
        arguments: dict[str, Any] = {
            "authorization": found.authorization,
            "token_elsewhere": found.token_elsewhere,
            "org": org,
            "session": self._session(request),
            "viewer": lambda: viewer_context_of(request),
            "dpop": found.dpop,
        }
        method, route = request.method or "GET", route_of(request)
        if scope_map is None:
            return self.guard.authenticate(method=method, route=route, **arguments)
        return self.guard.authorize(method=method, scope_map=scope_map, route=route, **arguments)

    async def _arun(
        self, request: HttpRequest, found: Facts, scope_map: ScopeMap | None, org: str | None
    ) -> Granted | Denial:
        arguments: dict[str, Any] = {
            "authorization": found.authorization,
            "token_elsewhere": found.token_elsewhere,
            "org": org,
            "dpop": found.dpop,
            "session": self._asession(request),
        }
        method, route = request.method or "GET", route_of(request)
        if scope_map is None:
            return await self.async_guard.authenticate(method=method, route=route, **arguments)
        return await self.async_guard.authorize(method=method, scope_map=scope_map, route=route, **arguments)

    def _session(self, request: HttpRequest) -> Callable[[], str | None] | None:
        subject_of = self.session_subject
        if subject_of is None:
            return None

        def load() -> str | None:
            user = session_user(request)
            if user is None:
                return None
            reason = csrf_failure(request)
            if reason is not None:
                raise CsrfRefused(reason)
            return subject_of(user)

        return load

    def _asession(self, request: HttpRequest) -> Callable[[], Any] | None:
        load = self._session(request)
        if load is None or not hasattr(request, "auser"):
            return None

        async def aload() -> str | None:
            await request.auser()  # resolves request.user without the ORM on the loop
            return await sync_to_async(load)()  # the CSRF check may read the session store

        return aload

    def _user_of(self, token: VerifiedToken) -> Any:
        return self.user_for(token) if self.user_for is not None else TokenUser(token)

    def _no_user(self, token: VerifiedToken) -> Denial:
        return self.guard.refusals.invalid_token(
            "the token's subject is not a user of this service",
            dpop=token.jkt is not None,
            reason="user_for() maps the token's subject to no user",
        ).noting(token=token)

    def _csrf(self, refused: CsrfRefused) -> Denial:
        return self.guard.refusals.forbidden(refused.description, refused.description).noting(
            source="session"
        )

    def _admitted(self, request: HttpRequest, granted: Granted, user: Any) -> Granted | Denial:
        """Put the grant on the request, or refuse a token whose subject maps to no user."""
        if granted.token is not None:
            if user is None:
                # The guard recorded its grant; this refusal is the adapter's, recorded too.
                return self.refused(request, self._no_user(granted.token), granted.access.org)
            request.user = user
        set_access(request, granted.access)
        set_auth(request, granted.token)
        _forget_unused_viewer(request, granted)
        return granted

    @staticmethod
    def _kept(request: HttpRequest, outcome: Granted | Denial) -> Granted | Denial:
        request.__dict__[OUTCOME] = outcome
        return outcome


def route_of(request: HttpRequest) -> str | None:
    """The route template Django resolved (``ResolverMatch.route``, as OpenTelemetry's Django
    instrumentation names ``http.route``): never the raw path."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return route if isinstance(route, str) and route else None


def _forget_unused_viewer(request: HttpRequest, granted: Granted) -> None:
    """A view sees a viewer context only when it is what the request was granted on: never one
    next to a token, so no view can mistake it for the caller."""
    if granted.source != "viewer" and viewer_context_of(request) is not None:
        set_viewer_context(request, None)
