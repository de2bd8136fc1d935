"""FastAPI: ``ResourceServer.require`` as a dependency yielding :class:`policy.Access`.

::

    rs = ResourceServer(verifier=..., roles=..., membership=..., resource="https://api.example.com")

    @app.get("/orgs/{org}/projects")
    async def projects(access: Annotated[Access, Depends(rs.require({"GET": "project:read"}))]): ...

    rs.install(app)

A refusal is raised as :class:`Refused` and answered by a handler that :meth:`ResourceServer.install`
registers for exactly that type. Starlette looks handlers up along the exception's MRO, so the
exact type wins over any handler the app has for ``HTTPException`` or a base class; handlers for
``Exception`` or 500 live in the outermost ``ServerErrorMiddleware``, which the refusal never
reaches; and it is answered inside the route's own exception wrapper, so the app's middleware
(even one that catches exceptions) sees a finished response, never the exception. A pure ASGI
middleware catching the exception would sit outside that wrapper and outside the
``ExceptionMiddleware``: handlers for a base class and the app's inner middleware would see the
exception first, and every request would pay for one more layer.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from fastapi.routing import APIRoute, APIWebSocketRoute
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("fastapi", "resource_server.fastapi", exc) from exc

from policy import Actors, Roles, ScopeMap

from ..asgi_http import Receive, Scope, Send
from ..async_guard import AsyncGuard
from ..checks import authorization_servers as servers_of
from ..checks import check_scopes_granted
from ..denials import Denial
from ..dpop import DPoPVerifier
from ..guard import AsyncMembership, Granted, Guard
from ..metadata import check_resource, metadata_document, metadata_url_for, resource_for
from ..openapi import security_scheme
from ..tokens import TokenVerifier, VerifiedToken
from .dependencies import GRANTED, Refused, Requirement, verified_token
from .openapi import describe_in_openapi
from .routes import requirements_of, routes_of, solve_order

if TYPE_CHECKING:
    from ..capability import CapabilityVerifier

__all__ = ["Refused", "Requirement", "ResourceServer"]

log = logging.getLogger("resource_server")


class ResourceServer:
    """Protects FastAPI routes with bearer (and DPoP) tokens and per-method scope maps.

    ``membership(subject, org)`` returns the member's role name or None; it may be a coroutine
    function (give one when it does I/O: a plain function runs on the event loop). Tokens in the
    cache are decided on the event loop, and so are new ones whose keys are in hand; verifying one
    that may wait (a key fetch, an introspection call) runs in a worker thread
    (:class:`~resource_server.async_guard.AsyncGuard`).

    ``resource`` is the resource identifier (RFC 9728 §1.2); with it, :meth:`install` serves the
    protected resource metadata at its well-known URL and challenges carry ``resource_metadata``.
    ``authorization_servers`` defaults to the issuers the verifier accepts tokens from (a
    :class:`~resource_server.tokens.TrustedIssuers`' issuers, a
    :class:`~resource_server.tokens.JWTVerifier`'s issuer, an
    :class:`~resource_server.tokens.IntrospectionVerifier`'s when it names one).

    ``actors`` (a :class:`policy.Actors`) caps what each agent acting for a person may do
    (RFC 8693); the :class:`policy.Access` a route receives names the actor (``access.actor``).
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: AsyncMembership,
        realm: str = "api",
        resource: str | None = None,
        authorization_servers: str | Sequence[str] | None = None,
        resource_metadata: str | None = None,
        capabilities: CapabilityVerifier | None = None,
        cache_size: int = 4096,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
        actors: Actors | None = None,
    ) -> None:
        if resource and not resource_metadata:
            resource_metadata = metadata_url_for(resource)
        elif resource_metadata and not resource:
            resource = resource_for(resource_metadata)
        if resource is not None:
            check_resource(resource)
        self.authorization_servers = servers_of(authorization_servers, verifier)
        self.resource = resource
        self.resource_metadata = resource_metadata
        self.verifier = verifier
        self.dpop = dpop
        self.guard = Guard(
            verifier=verifier,
            roles=roles,
            membership=membership,
            realm=realm,
            resource_metadata=resource_metadata,
            capabilities=capabilities,
            cache_size=cache_size,
            dpop=dpop,
            dpop_required=dpop_required,
            actors=actors,
        )
        self.async_guard = AsyncGuard(self.guard)
        #: The dependency giving the request's :class:`~resource_server.tokens.VerifiedToken`;
        #: declare it after ``Depends(rs.require(...))``. The token and the access are also
        #: ``request.state.resource_server_token`` and ``request.state.resource_server_access``.
        self.token: Callable[[Request], Awaitable[VerifiedToken]] = verified_token
        self._scope_maps: list[ScopeMap] = []
        self._org_names = {"org"}  # path parameters that name an organization
        self._apps: weakref.WeakSet[Any] = weakref.WeakSet()
        self._unanswered: weakref.WeakSet[Any] = weakref.WeakSet()  # apps already warned about

    # -- declaring what routes need ---------------------------------------------------------------

    def require(self, scope_map: ScopeMap | Mapping[str, Any], org: str | None = "org") -> Requirement:
        """A dependency for ``Depends(...)`` returning the request's :class:`policy.Access`.
        ``scope_map`` is validated now (a :class:`policy.ScopeMap`); ``org`` names the path
        parameter holding the organization, or is None for routes that name none (the token's own
        org is then asked about)."""
        compiled = scope_map if isinstance(scope_map, ScopeMap) else ScopeMap(scope_map)
        if org is not None and (not isinstance(org, str) or not org.isidentifier()):
            raise ValueError(f"org must name a path parameter (or be None), not {org!r}")
        self._scope_maps.append(compiled)
        if org is not None:
            self._org_names.add(org)
        return Requirement(self, compiled, org)

    @property
    def scopes_supported(self) -> list[str]:
        """Every scope named by a scope map given to :meth:`require` (RFC 9728 ``scopes_supported``)."""
        return sorted(set().union(*(m.scopes for m in self._scope_maps)))

    def metadata_document(self) -> dict[str, Any]:
        """RFC 9728 §2: the protected resource metadata (with RFC 9449 §5.1's DPoP members)."""
        return metadata_document(
            resource=self.resource,
            scopes_supported=self.scopes_supported,
            authorization_servers=self.authorization_servers,
            dpop=self.dpop,
            dpop_required=self.guard.dpop_required,
        )

    # -- the app ----------------------------------------------------------------------------------

    def install(
        self,
        app: FastAPI,
        *,
        token_url: str | None = None,
        authorization_url: str | None = None,
        openid_connect_url: str | None = None,
        scheme: str = "oauth2",
        serve_metadata: bool = True,
    ) -> None:
        """Bind to ``app``; call it once the routes are declared, before the app starts.

        - registers the handler that answers :class:`Refused` with the exact refusal;
        - checks every route using this server's dependencies (:meth:`check_routes`), now and
          again when the app starts: ``ValueError`` naming a misconfigured route;
        - describes the security of every protected operation in ``app.openapi()``: each
          alternative of the scope map its own requirement of the security scheme named
          ``scheme``, with the 401 and 403 responses. The scheme is chosen by
          :func:`resource_server.openapi.security_scheme` from the endpoints given, never
          guessed: ``oauth2`` with ``token_url`` (and ``authorization_url`` for the code flow),
          ``openIdConnect`` at ``openid_connect_url`` or at the discovery document of a verifier
          that discovers its issuer, else ``http`` bearer;
        - serves the RFC 9728 metadata document when ``resource`` is known and ``serve_metadata``;
        - with DPoP nonces, adds the fresh ``DPoP-Nonce`` to every granted response.
        """
        self.check_routes(app)
        described = security_scheme(
            self.verifier,
            token_url=token_url,
            authorization_url=authorization_url,
            openid_connect_url=openid_connect_url,
            authorization_servers=self.authorization_servers,
            dpop_required=self.guard.dpop_required,
        )
        if app not in self._apps:
            self._apps.add(app)
            app.exception_handler(Refused)(_answer)  # FastAPI's typed form of add_exception_handler
            self._check_on_startup(app)
            if self.dpop is not None and self.dpop.nonces is not None:
                app.add_middleware(_GrantHeaders)
            if self.resource and self.resource_metadata and serve_metadata:
                app.add_api_route(
                    urlsplit(self.resource_metadata).path,
                    self._metadata_endpoint,
                    methods=["GET"],
                    include_in_schema=False,
                )
            if app.openapi_url:
                describe_in_openapi(self, app, described, scheme)

    def check_routes(self, app: FastAPI) -> None:
        """``ValueError`` naming the first misconfigured route: one whose path lacks the org
        parameter its :meth:`require` names, or has one while the requirement says ``org=None``
        (its requests would be checked in the token's own organization), one serving a method
        its scope map does not cover, one whose scope map names a scope no role grants
        (:func:`~resource_server.checks.check_scopes_granted`), or one asking for ``rs.token``
        before any ``rs.require``."""
        for route in routes_of(app, APIRoute, APIWebSocketRoute):
            calls = list(solve_order(route.dependant))
            path = route.path_format
            if isinstance(getattr(route, "original_route", route), APIWebSocketRoute):
                if requirements_of(calls, self):
                    raise ValueError(
                        f"the WebSocket route {path} uses rs.require(...), which protects HTTP "
                        "routes: check its handshake with resource_server.asgi.BearerMiddleware"
                    )
                continue
            requirements = requirements_of(calls, self)
            check_scopes_granted(self.guard.roles, [(f"the route {path}", r.scope_map) for r in requirements])
            for requirement in requirements:
                if requirement.org is not None and requirement.org not in route.param_convertors:
                    raise ValueError(
                        f"the route {path} has no path parameter {requirement.org!r} for "
                        f"{requirement!r}; use org=None for a route that names no organization"
                    )
                named = sorted(self._org_names.intersection(route.param_convertors))
                if requirement.org is None and named:
                    raise ValueError(
                        f"the route {path} has the path parameter {named[0]!r} but {requirement!r} "
                        f"would check its requests in the token's own organization: give org={named[0]!r}"
                    )
                unmapped = sorted(m for m in route.methods or () if m not in requirement.scope_map)
                if unmapped:
                    raise ValueError(
                        f"the route {path} serves {', '.join(unmapped)} but {requirement!r} does not "
                        "map it: every such request would be refused"
                    )
            if verified_token in calls:
                before = calls[: calls.index(verified_token)]
                if not any(isinstance(call, Requirement) for call in before):
                    raise ValueError(
                        f"the route {path} asks for rs.token before any rs.require(...): "
                        "declare Depends(rs.require(...)) first"
                    )

    def _refused(self, request: Request, denial: Denial) -> Refused:
        """The exception for ``denial``; logs once per app that :meth:`install` was not called
        for it (its refusals then lose their exact body)."""
        app = request.scope.get("app")
        if app is not None and app not in self._apps and app not in self._unanswered:
            self._unanswered.add(app)
            log.error(
                "rs.install(app) was not called: refusals are answered by the app's HTTPException handler"
            )
        return Refused(denial)

    def _misconfigured(self, reason: str) -> Denial:
        return self.guard.refusals.forbidden(reason, "this route is misconfigured")

    # -- inside -----------------------------------------------------------------------------------

    async def _metadata_endpoint(self) -> JSONResponse:
        return JSONResponse(self.metadata_document())

    def _check_on_startup(self, app: FastAPI) -> None:
        """Check the routes again when the app starts: routes added after :meth:`install` too."""
        previous = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(application: Any) -> Any:
            self.check_routes(app)
            async with previous(application) as state:
                yield state

        app.router.lifespan_context = lifespan


class _GrantHeaders:
    """Adds a grant's response headers (a fresh ``DPoP-Nonce``, RFC 9449 §8.2) to whatever
    response the endpoint makes, a ``Response`` object included. Installed only when DPoP
    nonces are on."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                granted: Granted | None = scope.get(GRANTED)
                if granted is not None and granted.headers:
                    added = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in granted.headers]
                    message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, sending)


async def _answer(request: Request, exc: Refused) -> Response:
    """The refusal exactly: the status, ``WWW-Authenticate`` and JSON body of the status table."""
    denial = exc.denial
    return Response(denial.body, status_code=denial.status, headers=dict(denial.headers))


#: The refusals every protected operation may answer, in ``components`` once and referred to.
