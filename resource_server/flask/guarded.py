"""One Flask request through the guard: the request's facts handed to the app's
:class:`~resource_server.guard.Guard`, and its answer kept for the view (:data:`current_access`,
:data:`current_token`) or turned into the refusal to send.

:class:`RequestGuard` is the per-request half of :class:`~resource_server.flask.ResourceServer`,
its base class; the other half declares what routes need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import Flask, Request, Response, after_this_request, current_app, request
from werkzeug.local import LocalProxy

from policy import Access, ScopeMap

from ..bodies import MAX_BOUND_BODY, BodyError
from ..credentials import MalformedHost, check_host, request_url
from ..denials import Denial
from ..dpop import dpop_request
from ..guard import Granted, Guard, SessionLoader
from ..tokens import VerifiedToken
from ..viewer_context import ViewerContext, ViewerContextVerifier
from .bodies import request_body, token_elsewhere_of
from .proxies import current_app_object, current_request
from .responses import denial_response

if TYPE_CHECKING:
    from . import ResourceServer

__all__ = ["AppState", "RequestGuard", "current_access", "current_token"]

#: Where :meth:`~resource_server.flask.ResourceServer.init_app` keeps an app's :class:`AppState`.
EXTENSION = "resource_server"
_VERIFIED_VIEWER = "resource_server.viewer_context"


#: Where the extension leaves the request's grant: the WSGI environ, which lives exactly as long
#: as the request (no second lookup through ``g``'s proxy on every request).
_GRANT = "resource_server.grant"


def _granted() -> Granted:
    granted: Granted | None = request.environ.get(_GRANT)
    if granted is None:
        raise RuntimeError(
            "current_access and current_token exist only inside a view protected by ResourceServer"
        )
    return granted


# Typed as what they stand for, as Flask types its own proxies: a view reads them as an Access
# and a VerifiedToken.
#: The :class:`policy.Access` of the current request (inside a protected view).
current_access: Access = cast(Access, LocalProxy(lambda: _granted().access))
#: The :class:`~resource_server.tokens.VerifiedToken` of the current request (None for a session).
current_token: VerifiedToken = cast(VerifiedToken, LocalProxy(lambda: _granted().token))


@dataclass(frozen=True, slots=True)
class AppState:
    """The extension's state for one app, in ``app.extensions``."""

    guard: Guard
    resource: str | None
    authorization_servers: tuple[str, ...]
    server: ResourceServer


class RequestGuard:
    """What :class:`~resource_server.flask.ResourceServer` does on each request."""

    session_loader: SessionLoader | None
    viewer_context: ViewerContextVerifier | None

    def _check(
        self, compiled: ScopeMap, org_arg: str | None, viewer_context: bool = False
    ) -> Response | None:
        """None when the request may proceed (``current_access`` is then set), else the refusal."""
        outcome = self._outcome(compiled, org_arg, viewer_context)
        if outcome is None or type(outcome) is Granted:
            return None
        return denial_response(outcome) if type(outcome) is Denial else outcome

    def _outcome(
        self, compiled: ScopeMap, org_arg: str | None, viewer_context: bool = False
    ) -> Granted | Denial | Response | None:
        """What the server does with the current request: a grant, a refusal, Flask's own OPTIONS
        answer, or None to let Flask answer an automatic OPTIONS. ``flask scopes explain`` calls
        this too, so the tool and the server cannot disagree."""
        # Each proxy access costs a context lookup; this runs on every request, so resolve once.
        req = current_request()
        if req.method == "OPTIONS" and "OPTIONS" not in compiled:
            # CORS preflights carry no credentials. Flask answers automatic OPTIONS itself; when a
            # route lists OPTIONS, answer the same way rather than run the view unauthenticated.
            rule = req.url_rule
            return (
                None
                if getattr(rule, "provide_automatic_options", False)
                else current_app.make_default_options_response()
            )
        org = None
        if org_arg is not None:
            value = req.view_args.get(org_arg) if req.view_args else None
            if value is None:
                # Fail closed: never fall back to the token's own org for a route that declared one.
                reason = f"the route {req.url_rule} has no URL variable {org_arg!r}; use org=None if it names no org"
                current_app.logger.error(reason)
                return Denial(403, "forbidden", "this route is misconfigured", None, reason)
            org = value if type(value) is str else str(value)
        return self._guarded(req, org, compiled, viewer_context)

    def authenticate(self, org: str | None) -> Granted | Response:
        """Who is asking, as a member of ``org``, without a scope decision: for endpoints any
        member may call (such as minting a capability). A refusal comes back as the response."""
        outcome = self._guarded(current_request(), org, None)
        return denial_response(outcome) if type(outcome) is Denial else outcome

    def _guarded(
        self,
        req: Request,
        org: str | None,
        compiled: ScopeMap | None,
        viewer_context: bool = False,
    ) -> Granted | Denial:
        """Run the guard (with a scope decision when ``compiled`` is given); remember the grant."""
        state = self._state(current_app_object())
        guard = state.guard
        environ = req.environ
        authorization = environ.get("HTTP_AUTHORIZATION")
        viewer = self._viewer_loader(req) if viewer_context else None
        dpop = (
            dpop_request(
                authorization,
                environ.get("HTTP_DPOP"),
                req.method,
                lambda: request_url(environ, state.resource),
            )
            if guard.dpop is not None
            else None
        )
        route = req.url_rule.rule if req.url_rule is not None else None  # http.route, for telemetry
        try:
            check_host(environ.get("HTTP_HOST"))  # RFC 9112 §3.2: a bad Host is a 400, first
            # Most requests have neither a query string nor a body: nothing to look into.
            token_elsewhere = (
                token_elsewhere_of(req)
                if environ.get("QUERY_STRING") or environ.get("CONTENT_TYPE")
                else False
            )
        except MalformedHost as exc:
            outcome: Granted | Denial = guard.refused(
                guard.refusals.bad_host(exc),
                route=route,
                method=req.method,
                authorization=authorization,
                org=org,
            )
        except BodyError as exc:
            outcome = guard.refused(
                guard.bad_body(exc), route=route, method=req.method, authorization=authorization, org=org
            )
        else:
            if compiled is None:
                outcome = guard.authenticate(
                    authorization=authorization,
                    token_elsewhere=token_elsewhere,
                    org=org,
                    session=self.session_loader,
                    viewer=viewer,
                    dpop=dpop,
                    method=req.method,
                    route=route,
                )
            else:
                outcome = guard.authorize(
                    authorization=authorization,
                    token_elsewhere=token_elsewhere,
                    method=req.method,
                    scope_map=compiled,
                    org=org,
                    session=self.session_loader,
                    viewer=viewer,
                    dpop=dpop,
                    route=route,
                )
        # Only a context that verified for this request reaches the view: not a forged one, not
        # one next to a token, not one on a route that did not opt in.
        if "HTTP_X_VIEWER_CONTEXT" in environ and environ.pop(_VERIFIED_VIEWER, None) is None:
            del environ["HTTP_X_VIEWER_CONTEXT"]
        if type(outcome) is Granted:
            environ[_GRANT] = outcome
            if outcome.headers:  # a fresh DPoP nonce, for the response the view will make
                after_this_request(_adding(outcome.headers))
        return outcome

    def _viewer_loader(self, req: Request) -> Callable[[], ViewerContext | None]:
        """Verify ``X-Viewer-Context`` against this very request (method, target, body hash)."""

        verifier = self.viewer_context  # set: require(viewer_context=True) insists on it

        def load() -> ViewerContext | None:
            if verifier is None or "HTTP_X_VIEWER_CONTEXT" not in req.environ:
                return None
            context = verifier.verify(
                req.headers,
                method=req.method,
                path=_request_target(req),
                body=lambda: request_body(req, MAX_BOUND_BODY),  # read only for a sound context
            )
            if context is not None:
                req.environ[_VERIFIED_VIEWER] = context
            return context

        return load

    def _state(self, app: Flask) -> AppState:
        try:
            state: AppState = app.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError("ResourceServer.init_app(app) was not called for this app") from None
        return state


def _request_target(req: Request) -> str:
    """The path and query as the client sent them (RFC 9110 §7.1 origin-form), which is what a
    viewer context's ``htu`` signs; decoded ``request.path`` could differ from it."""
    environ = req.environ
    raw: str | None = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING")
    target: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return target + (f"?{query}" if query else "")


def _adding(headers: tuple[tuple[str, str], ...]) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        for name, value in headers:
            response.headers[name] = value
        return response

    return add
