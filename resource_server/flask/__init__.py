"""The Flask extension: ``ResourceServer``, ``require``, ``current_access`` and ``current_token``.

Refusals are *returned* as responses, not raised as ``HTTPException``: an application's catch-all
``errorhandler(HTTPException)`` would otherwise replace them and drop the ``WWW-Authenticate``
challenge that clients need to step up.
"""

from __future__ import annotations

import functools
import inspect
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

try:
    from flask import (
        Blueprint,
        Flask,
        Request,
        Response,
        after_this_request,
        current_app,
        g,
        jsonify,
        request,
    )
    from flask.blueprints import BlueprintSetupState
    from flask.views import View
    from werkzeug.local import LocalProxy
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("flask", "resource_server.flask", exc) from exc

from policy import Access, Roles, ScopeMap

from ..bodies import MAX_BOUND_BODY, MAX_JSON_BYTES, MAX_JSON_DEPTH, BodyError, json_object, read_body
from ..checks import authorization_servers, check_sync_membership
from ..credentials import (
    MAX_FORM_INSPECTED,
    MalformedHost,
    check_host,
    names_access_token,
    request_url,
    token_elsewhere,
)
from ..dpop import DPoPVerifier, dpop_request
from ..guard import Denial, Granted, Guard, Membership, SessionLoader
from ..metadata import check_resource, metadata_document, metadata_url_for, resource_for
from ..resource_tokens import ResourceToken, ResourceTokenVerifier
from ..tokens import TokenVerifier, VerifiedToken
from ..tokens.jws import InvalidToken
from ..viewer_context import ViewerContext, ViewerContextVerifier
from .cli import scopes_cli
from .openapi import openapi_security
from .responses import denial_response
from .routes import WrappedViews, check_routes, checking_routes_once

if TYPE_CHECKING:
    from ..capability import CapabilityVerifier

__all__ = [
    "ResourceServer",
    "current_access",
    "current_resource_token",
    "current_token",
    "json_body",
    "request_body",
    "resource_token_required",
]

F = TypeVar("F", bound=Callable[..., Any])
_EXTENSION = "resource_server"
_FORM = "application/x-www-form-urlencoded"
_VERIFIED_VIEWER = "resource_server.viewer_context"


#: Where the extension leaves the request's grant: the WSGI environ, which lives exactly as long
#: as the request (no second lookup through ``g``'s proxy on every request).
_GRANT = "resource_server.grant"


def _granted() -> Granted:
    granted = request.environ.get(_GRANT)
    if granted is None:
        raise RuntimeError(
            "current_access and current_token exist only inside a view protected by ResourceServer"
        )
    return granted


#: The :class:`policy.Access` of the current request (inside a protected view).
current_access: Access = LocalProxy(lambda: _granted().access)  # type: ignore[assignment]
#: The :class:`~resource_server.tokens.VerifiedToken` of the current request (None for a session).
current_token: VerifiedToken = LocalProxy(lambda: _granted().token)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class _AppState:
    guard: Guard
    resource: str | None
    authorization_servers: tuple[str, ...]
    server: ResourceServer


class ResourceServer:
    """Protects Flask views with bearer tokens and declarative per-method scope maps.

    Config keys (read by :meth:`init_app`, overriding the constructor): ``RESOURCE_SERVER_REALM``,
    ``RESOURCE_SERVER_RESOURCE_METADATA`` (the RFC 9728 metadata URL put in challenges),
    ``RESOURCE_SERVER_RESOURCE`` (the resource identifier; derived from the metadata URL when
    unset), ``RESOURCE_SERVER_AUTHORIZATION_SERVERS`` (unset: the issuers the verifier accepts
    tokens from) and ``RESOURCE_SERVER_SERVE_METADATA`` (default True: serve the metadata
    document when the resource is known).

    ``membership`` is a plain function (a coroutine function is a ``TypeError``: Flask cannot
    await it). At :meth:`init_app` and again at the first request, a route serving a function
    :meth:`require` wrapped (``@rs.require`` written above ``@app.route``) or requiring a scope
    no role grants is a ``ValueError``.

    ``dpop`` (a :class:`~resource_server.dpop.DPoPVerifier`) accepts ``Authorization: DPoP``
    with its proof (RFC 9449 §7). ``dpop_required=True`` accepts an access token only that way,
    bound by ``cnf.jkt`` (``Bearer`` is refused with a ``DPoP`` challenge; sessions and viewer
    contexts are not tokens and are accepted as before). It needs ``dpop``, and contradicts
    ``capabilities`` (capability tokens are bearer tokens): either mistake is a ``ValueError``
    from :meth:`init_app`, so from the constructor when it is given ``app``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: Membership,
        realm: str = "api",
        resource_metadata: str | None = None,
        capabilities: CapabilityVerifier | None = None,
        session_loader: SessionLoader | None = None,
        viewer_context: ViewerContextVerifier | None = None,
        cache_size: int = 4096,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
    ) -> None:
        check_sync_membership(membership, "resource_server.flask")
        self.verifier = verifier
        self.dpop = dpop  # RFC 9449: accept Authorization: DPoP with a proof checked by it
        self.dpop_required = dpop_required  # access tokens only as DPoP; see the class docstring
        self.roles = roles
        self.membership = membership
        self.realm = realm
        self.resource_metadata = resource_metadata
        self.capabilities = capabilities  # tokens with its prefix are verified as capabilities
        self.session_loader = session_loader  # () -> subject of a first-party session, or None
        self.viewer_context = viewer_context  # for routes declared with viewer_context=True
        self.cache_size = cache_size  # verified credentials kept per app (Guard)
        self._scope_maps: list[ScopeMap] = []
        # registered endpoint prefix -> (map, org variable), for the tooling
        self.blueprint_maps: dict[str, tuple[ScopeMap, str | None]] = {}
        # The functions require() wrapped: one of them served by a route is served unprotected.
        self.wrapped_views = WrappedViews()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Bind the extension to ``app`` (Flask extension conventions: state in ``app.extensions``)."""
        config = app.config
        realm = config.setdefault("RESOURCE_SERVER_REALM", self.realm)
        metadata_url = config.setdefault("RESOURCE_SERVER_RESOURCE_METADATA", self.resource_metadata)
        resource = config.get("RESOURCE_SERVER_RESOURCE")
        if resource and not metadata_url:
            metadata_url = metadata_url_for(resource)
        elif metadata_url and not resource:
            resource = resource_for(metadata_url)
        guard = Guard(
            verifier=self.verifier,
            roles=self.roles,
            membership=self.membership,
            realm=realm,
            resource_metadata=metadata_url,
            capabilities=self.capabilities,
            cache_size=self.cache_size,
            dpop=self.dpop,
            dpop_required=self.dpop_required,
        )
        # Unset, the issuers the verifier accepts tokens from are the authorization servers.
        servers = authorization_servers(config.get("RESOURCE_SERVER_AUTHORIZATION_SERVERS"), self.verifier)
        if resource is not None:
            check_resource(resource, "RESOURCE_SERVER_RESOURCE")
        app.extensions[_EXTENSION] = _AppState(guard, resource, servers, self)
        # json_body() and request_body() raise BodyError from inside views: answer it as a 400.
        app.register_error_handler(BodyError, _bad_body)

        app.cli.add_command(scopes_cli)
        if resource and metadata_url and config.get("RESOURCE_SERVER_SERVE_METADATA", True):
            app.add_url_rule(
                urlsplit(metadata_url).path,
                endpoint="resource_server_metadata",
                view_func=self._metadata_view,
                methods=["GET"],
            )
        # Routes declared before init_app are checked now; those declared after (the usual order,
        # and blueprints registered later), before the first request.
        check_routes(app, self)
        app.before_request(checking_routes_once(app, self))

    # -- declaring what routes need ---------------------------------------------------------------

    def require(
        self,
        scope_map: ScopeMap | Mapping[str, Any] | None = None,
        org: str | None = "org",
        *,
        viewer_context: bool = False,
    ) -> Callable[[F], F]:
        """Protect a view function, or a ``MethodView`` class (whose ``scope_map`` attribute is used
        when ``scope_map`` is not given). ``org`` names the URL variable holding the organization,
        or is None for routes without one. ``viewer_context=True`` also accepts a verified
        ``X-Viewer-Context`` from another service when the request carries no token."""
        if viewer_context and self.viewer_context is None:
            raise ValueError(
                "viewer_context=True needs ResourceServer(viewer_context=ViewerContextVerifier(...))"
            )

        def decorate(target: F) -> F:
            if isinstance(target, type) and issubclass(target, View):
                return self._protect_view_class(target, scope_map, org, viewer_context)  # type: ignore[return-value]
            if scope_map is None:
                raise TypeError("require() on a view function needs a scope map")
            self.wrapped_views.remember(target)
            return self._wrap(target, self._register(scope_map), org, viewer_context)

        return decorate

    def protect_blueprint(
        self, blueprint: Blueprint, scope_map: ScopeMap | Mapping[str, Any], org: str | None = "org"
    ) -> None:
        """Apply ``scope_map`` to every view of ``blueprint``; a view with its own
        :meth:`require` keeps its own map."""
        compiled = self._register(scope_map)

        def remember(state: BlueprintSetupState) -> None:
            # Keyed by the endpoint prefix the blueprint is registered under (a renamed or nested
            # blueprint's differs from its name), for the tooling.
            self.blueprint_maps[f"{state.name_prefix}.{state.name}".lstrip(".")] = (compiled, org)

        blueprint.record(remember)

        def check_blueprint_view() -> Response | None:
            view = current_app.view_functions.get(request.endpoint or "")
            if getattr(view, "_resource_server_protected", False):
                return None
            return self._check(compiled, org)

        blueprint.before_request(check_blueprint_view)

    def public(self, view: F) -> F:
        """Declare a view public on purpose (``/health``, ``/login``): ``flask scopes check`` then
        accepts it unprotected, and OpenAPI marks it ``security: []``. For views you do not write
        yourself, list their endpoint names in ``RESOURCE_SERVER_PUBLIC_ENDPOINTS``."""
        view._resource_server_public = True  # type: ignore[attr-defined]
        return view

    def openapi_security(
        self,
        app: Flask | None = None,
        *,
        token_url: str | None = None,
        authorization_url: str | None = None,
        openid_connect_url: str | None = None,
        scheme: str = "oauth2",
    ) -> dict[str, Any]:
        """OpenAPI 3 ``securitySchemes`` and per-operation ``security`` for every protected route;
        see :func:`resource_server.flask.openapi.openapi_security`. No endpoint is guessed: an
        ``oauth2`` scheme needs ``token_url`` (and ``authorization_url`` for the code flow), an
        ``openIdConnect`` one ``openid_connect_url`` or a verifier that discovers its issuer;
        otherwise the scheme is ``http`` bearer."""

        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        return openapi_security(
            app,
            self,
            token_url=token_url,
            authorization_url=authorization_url,
            openid_connect_url=openid_connect_url,
            scheme=scheme,
        )

    @property
    def scopes_supported(self) -> list[str]:
        """Every scope named by a registered scope map (RFC 9728 ``scopes_supported``)."""
        return sorted(set().union(*(m.scopes for m in self._scope_maps)))

    def _register(self, scope_map: ScopeMap | Mapping[str, Any]) -> ScopeMap:
        compiled = scope_map if isinstance(scope_map, ScopeMap) else ScopeMap(scope_map)
        self._scope_maps.append(compiled)
        return compiled

    def _protect_view_class(
        self, cls: type[View], scope_map: Any, org: str | None, viewer_context: bool = False
    ) -> type[View]:
        compiled = self._register(
            scope_map if scope_map is not None else getattr(cls, "scope_map", None) or {}
        )
        implemented = {m.upper() for m in (cls.methods or ())} - {"HEAD"}  # an options() too
        unmapped = sorted(implemented.difference(compiled.methods))
        if unmapped:
            # Fail at start-up, not with a 403 on the first request.
            raise ValueError(
                f"{cls.__name__} implements {', '.join(unmapped)} but its scope map does not cover them"
            )
        cls.decorators = [*cls.decorators, lambda view: self._wrap(view, compiled, org, viewer_context)]
        return cls

    def _wrap(self, view: F, compiled: ScopeMap, org: str | None, viewer_context: bool = False) -> F:
        is_async = inspect.iscoroutinefunction(view)  # decided once, not per request

        @functools.wraps(view)
        def protected(*args: Any, **kwargs: Any) -> Any:
            outcome = self._outcome(compiled, org, viewer_context)
            if outcome.__class__ is not Granted and outcome is not None:
                return denial_response(outcome) if isinstance(outcome, Denial) else outcome
            if is_async:
                return current_app.ensure_sync(view)(*args, **kwargs)
            return view(*args, **kwargs)

        protected._resource_server_protected = True  # type: ignore[attr-defined]
        protected._resource_server_scope_map = compiled  # type: ignore[attr-defined]  # for the tooling
        protected._resource_server_org = org  # type: ignore[attr-defined]
        return protected  # type: ignore[return-value]

    # -- per request -------------------------------------------------------------------------------

    def _check(
        self, compiled: ScopeMap, org_arg: str | None, viewer_context: bool = False
    ) -> Response | None:
        """None when the request may proceed (``current_access`` is then set), else the refusal."""
        outcome = self._outcome(compiled, org_arg, viewer_context)
        if outcome is None or isinstance(outcome, Granted):
            return None
        return denial_response(outcome) if isinstance(outcome, Denial) else outcome

    def _outcome(
        self, compiled: ScopeMap, org_arg: str | None, viewer_context: bool = False
    ) -> Granted | Denial | Response | None:
        """What the server does with the current request: a grant, a refusal, Flask's own OPTIONS
        answer, or None to let Flask answer an automatic OPTIONS. ``flask scopes explain`` calls
        this too, so the tool and the server cannot disagree."""
        # Each proxy access costs a context lookup; this runs on every request, so resolve once.
        req = request._get_current_object()  # type: ignore[attr-defined]
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
            org = value if value.__class__ is str else str(value)
        return self._guarded(req, org, compiled, viewer_context)

    def authenticate(self, org: str | None) -> Granted | Response:
        """Who is asking, as a member of ``org``, without a scope decision: for endpoints any
        member may call (such as minting a capability). A refusal comes back as the response."""
        outcome = self._guarded(request._get_current_object(), org, None)  # type: ignore[attr-defined]
        return denial_response(outcome) if isinstance(outcome, Denial) else outcome

    def _guarded(
        self,
        req: Request,
        org: str | None,
        compiled: ScopeMap | None,
        viewer_context: bool = False,
    ) -> Granted | Denial:
        """Run the guard (with a scope decision when ``compiled`` is given); remember the grant."""
        state = self._state(current_app._get_current_object())  # type: ignore[attr-defined]
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
        try:
            check_host(environ.get("HTTP_HOST"))  # RFC 9112 §3.2: a bad Host is a 400, first
            # Most requests have neither a query string nor a body: nothing to look into.
            token_elsewhere = (
                _token_elsewhere(req) if environ.get("QUERY_STRING") or environ.get("CONTENT_TYPE") else False
            )
        except MalformedHost as exc:
            outcome: Granted | Denial = guard.refusals.bad_host(exc)
        except BodyError as exc:
            outcome = guard.bad_body(exc)
        else:
            if compiled is None:
                outcome = guard.authenticate(
                    authorization=authorization,
                    token_elsewhere=token_elsewhere,
                    org=org,
                    session=self.session_loader,
                    viewer=viewer,
                    dpop=dpop,
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
                )
        # Only a context that verified for this request reaches the view: not a forged one, not
        # one next to a token, not one on a route that did not opt in.
        if "HTTP_X_VIEWER_CONTEXT" in environ and environ.pop(_VERIFIED_VIEWER, None) is None:
            del environ["HTTP_X_VIEWER_CONTEXT"]
        if isinstance(outcome, Granted):
            environ[_GRANT] = outcome
            if outcome.headers:  # a fresh DPoP nonce, for the response the view will make
                after_this_request(_adding(outcome.headers))
        return outcome

    def _viewer_loader(self, req: Request) -> Callable[[], ViewerContext | None]:
        """Verify ``X-Viewer-Context`` against this very request (method, target, body hash)."""

        def load() -> ViewerContext | None:
            if "HTTP_X_VIEWER_CONTEXT" not in req.environ:
                return None
            context = self.viewer_context.verify(  # type: ignore[union-attr]
                req.headers,
                method=req.method,
                path=_request_target(req),
                body=lambda: request_body(req, MAX_BOUND_BODY),  # read only for a sound context
            )
            if context is not None:
                req.environ[_VERIFIED_VIEWER] = context
            return context

        return load

    def _state(self, app: Flask) -> _AppState:
        try:
            return app.extensions[_EXTENSION]
        except KeyError:
            raise RuntimeError("ResourceServer.init_app(app) was not called for this app") from None

    def _metadata_view(self) -> Response:
        """RFC 9728 §2: the protected resource metadata document."""
        state = self._state(current_app)
        return jsonify(
            metadata_document(
                resource=state.resource,
                scopes_supported=self.scopes_supported,
                authorization_servers=state.authorization_servers,
                dpop=self.dpop,
                dpop_required=self.dpop_required,
            )
        )


def _token_elsewhere(req: Request) -> bool:
    """:func:`resource_server.credentials.token_elsewhere` for a Flask request, which the
    application may have read already (a ``before_request`` hook, another extension)."""
    if "stream" not in req.__dict__:  # werkzeug opens the body lazily: nobody has read it yet
        return token_elsewhere(req.environ)
    if req.environ.get("QUERY_STRING") and "access_token" in req.args:
        return True
    if req.environ.get("CONTENT_TYPE", "")[: len(_FORM)].lower() != _FORM:
        return False
    if "form" in req.__dict__:  # parsed already: the raw bytes may be gone, the fields are not
        return "access_token" in req.form
    length = req.content_length
    if length is None or length > MAX_FORM_INSPECTED:
        return False  # opened by the app and unbounded or large: not buffered to look
    return names_access_token(request_body(req, MAX_FORM_INSPECTED))


def request_body(req: Request, limit: int) -> bytes:
    """The body of a Flask request, at most ``limit`` bytes, still readable by the view
    afterwards (``get_data``, ``form``, ``get_json``). :class:`BodyError` when it cannot be
    read, ends before its ``Content-Length``, is larger than ``limit``, or was consumed by the
    application's own form parsing before it could be checked."""
    if "stream" not in req.__dict__:  # werkzeug builds the stream lazily: nobody has read yet
        return read_body(req.environ, limit=limit)
    too_large = BodyError(f"the request body is larger than {limit} bytes")
    length = req.content_length
    if length is not None and length > limit:
        raise too_large
    data = getattr(req, "_cached_data", None)  # werkzeug keeps what get_data() read
    if data is None:
        if "form" in req.__dict__:
            # Form parsing read the stream without keeping the bytes; an empty body would be a lie.
            raise BodyError("the request body was consumed before it could be checked")
        try:
            data = req.stream.read(limit + 1)
        except Exception:  # a malformed chunked body, a cut connection
            raise BodyError("the request body could not be read") from None
        if length is not None and len(data) != length:
            raise BodyError("the request body ended before its Content-Length")
        req.__dict__["stream"] = io.BytesIO(data)  # the view reads it whole after us
    if len(data) > limit:
        raise too_large
    return data


def json_body(*, limit: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The current request's body as one JSON object, at most ``limit`` bytes and nested at most
    ``max_depth`` deep, duplicate members refused. Raises :class:`~resource_server.bodies.BodyError`,
    which an app with the extension answers ``400`` with a JSON error. Use it instead of
    ``request.get_json()``, which lets a body nested 1,000 deep raise ``RecursionError`` (a 500)."""
    return json_object(request_body(request._get_current_object(), limit), max_depth=max_depth)  # type: ignore[attr-defined]


def _bad_body(error: BodyError) -> Response:
    return denial_response(Denial(400, "invalid_request", error.description, None))


def _request_target(req: Request) -> str:
    """The path and query as the client sent them (RFC 9110 §7.1 origin-form), which is what a
    viewer context's ``htu`` signs; decoded ``request.path`` could differ from it."""
    raw = req.environ.get("REQUEST_URI") or req.environ.get("RAW_URI")
    if raw:
        return raw
    query = req.environ.get("QUERY_STRING")
    return (
        req.environ.get("SCRIPT_NAME", "") + req.environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    )


def _adding(headers: tuple[tuple[str, str], ...]) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        for name, value in headers:
            response.headers[name] = value
        return response

    return add


def resource_token_required(
    verifier: ResourceTokenVerifier,
    *,
    usecase: str,
    org: str = "org",
    project: str | None = None,
    param: str = "X-Os-Auth",
) -> Callable[[F], F]:
    """Let a route be read with a resource token from the query parameter ``param``: the opt-in
    that keeps URL tokens from ever being a general bearer source. ``org`` and ``project`` name
    the URL variables of the resource prefix. Refusals are 403 with a JSON body; the response
    carries ``Referrer-Policy: no-referrer`` so the token does not leak through links."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def protected(*args: Any, **kwargs: Any) -> Any:
            values = request.args.getlist(param)
            view_args = request.view_args or {}
            missing = [name for name in (org, project) if name is not None and view_args.get(name) is None]
            if missing:
                # Fail closed: a prefix part the route cannot name must not compare as "None".
                current_app.logger.error(
                    "the route has no URL variable %r for its resource token", missing[0]
                )
                return denial_response(Denial(403, "forbidden", "this route is misconfigured", None))
            try:
                if len(values) != 1:
                    raise InvalidToken(f"exactly one {param} query parameter is needed")
                g._resource_server_resource_token = verifier.verify(
                    values[0],
                    method=request.method,
                    usecase=usecase,
                    org=str(view_args[org]),
                    project=None if project is None else str(view_args[project]),
                )
            except InvalidToken as exc:
                return denial_response(Denial(403, "forbidden", exc.description, None))
            response = current_app.make_response(current_app.ensure_sync(view)(*args, **kwargs))
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

        protected._resource_server_resource_token = True  # type: ignore[attr-defined]
        protected._resource_server_org = org  # type: ignore[attr-defined]  # for `flask scopes check`
        return protected  # type: ignore[return-value]

    return decorate


def _resource_token() -> ResourceToken:
    grant = g.get("_resource_server_resource_token")
    if grant is None:
        raise RuntimeError("current_resource_token exists only inside a view using resource_token_required")
    return grant


#: The :class:`~resource_server.resource_tokens.ResourceToken` of the current request.
current_resource_token: ResourceToken = LocalProxy(_resource_token)  # type: ignore[assignment]
