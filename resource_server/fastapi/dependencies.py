"""The dependencies a FastAPI route declares: :class:`Requirement` (what
``ResourceServer.require`` returns), :func:`verified_token` (``ResourceServer.token``), and
:class:`Refused`, the exception either raises with the refusal to send."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.exceptions import HTTPException

from policy import Access, ScopeMap

from ..asgi_http import bad_host, dpop_request, header
from ..bodies import BodyError
from ..denials import Denial
from ..guard import Granted
from ..tokens import VerifiedToken
from .forms import token_elsewhere_of

if TYPE_CHECKING:
    from . import ResourceServer

__all__ = ["GRANTED", "Refused", "Requirement", "verified_token"]

log = logging.getLogger("resource_server")

#: The request scope key holding the :class:`~resource_server.guard.Granted` of the request.
GRANTED = "resource_server.granted"


class Refused(HTTPException):
    """A refusal from a :meth:`ResourceServer.require` dependency, carrying the
    :class:`~resource_server.denials.Denial` to send. :meth:`ResourceServer.install` answers it
    with exactly the denial's status, headers and JSON body. It is an ``HTTPException`` so that an
    app where ``install`` was forgotten still answers with the right status and challenge (in
    FastAPI's ``{"detail": ...}`` body), never with a 500."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.status, denial.description, dict(denial.headers))
        self.denial = denial


class Requirement:
    """The dependency :meth:`ResourceServer.require` returns: authenticates the request,
    checks it against ``scope_map`` for the organization in the path parameter ``org`` (None:
    the route names no organization) and returns the :class:`policy.Access`."""

    __slots__ = ("org", "scope_map", "server")

    def __init__(self, server: ResourceServer, scope_map: ScopeMap, org: str | None) -> None:
        self.server = server
        self.scope_map = scope_map
        self.org = org

    async def __call__(self, request: Request) -> Access:
        server = self.server
        scope = request.scope
        # The route template (http.route, for telemetry): FastAPI puts the matched route in scope.
        path = getattr(scope.get("route"), "path", None)
        template = path if isinstance(path, str) else None
        method = scope["method"]
        if (refused := bad_host(scope)) is not None:  # RFC 9112 §3.2: a bad Host is a 400, first
            raise server._refused(request, server.guard.refused(refused, route=template, method=method))
        org = None
        if self.org is not None:
            value = scope.get("path_params", {}).get(self.org)
            if value is None:
                # Fail closed: never fall back to the token's own org for a route that declared one.
                route = getattr(scope.get("route"), "path", scope.get("path"))
                reason = (
                    f"the route {route} has no path parameter {self.org!r}; use org=None if it names no org"
                )
                log.error(reason)
                refused = server.guard.refused(server._misconfigured(reason), route=template, method=method)
                raise server._refused(request, refused)
            org = value if type(value) is str else str(value)
        authorization = header(scope, b"authorization")
        try:
            elsewhere = await token_elsewhere_of(request)
        except BodyError as exc:
            refused = server.guard.refused(server.guard.bad_body(exc), route=template, method=method, org=org)
            raise server._refused(request, refused) from None
        dpop = dpop_request(scope, authorization, server.resource) if server.dpop is not None else None
        outcome = await server.async_guard.authorize(
            authorization=authorization,
            token_elsewhere=elsewhere,
            method=method,
            scope_map=self.scope_map,
            org=org,
            dpop=dpop,
            route=template,
        )
        if type(outcome) is Denial:
            raise server._refused(request, outcome)
        scope[GRANTED] = outcome
        state = scope.setdefault("state", {})  # request.state, as the ASGI middleware fills it
        state["resource_server_access"] = access = outcome.access
        state["resource_server_token"] = outcome.token
        return access

    def __repr__(self) -> str:
        return f"Requirement({self.scope_map.to_dict()!r}, org={self.org!r})"


async def verified_token(request: Request) -> VerifiedToken:
    """The dependency ``ResourceServer.token``: the verified token of a request that a
    :class:`Requirement` declared before it has let through."""
    granted: Granted | None = request.scope.get(GRANTED)
    if granted is None or granted.token is None:
        # A route added after install() (which checks the order) with the dependencies reversed.
        reason = "Depends(rs.token) ran before any Depends(rs.require(...)) on this route"
        log.error(reason)
        raise Refused(Denial(403, "forbidden", "this route is misconfigured", None, reason))
    return granted.token
