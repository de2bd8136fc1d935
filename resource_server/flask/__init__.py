"""The Flask extension: ``ResourceServer``, ``require``, ``current_access`` and ``current_token``.

Refusals are *returned* as responses, not raised as ``HTTPException``: an application's catch-all
``errorhandler(HTTPException)`` would otherwise replace them and drop the ``WWW-Authenticate``
challenge that clients need to step up.

The package's modules: :mod:`~resource_server.flask.guarded` runs each request through the guard
(``current_access`` and ``current_token`` come from there), :mod:`~resource_server.flask.bodies`
reads request bodies (``json_body``, ``request_body``), :mod:`~resource_server.flask.resource_tokens`
protects routes read with resource tokens; every name is importable from here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

try:
    from flask import Blueprint, Flask, Response, current_app, jsonify
    from flask.blueprints import BlueprintSetupState
    from flask.views import View
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("flask", "resource_server.flask", exc) from exc

from policy import Actors, Roles, ScopeMap

from ..bodies import BodyError
from ..checks import authorization_servers, check_sync_membership
from ..dpop import DPoPVerifier
from ..guard import Denial, Granted, Guard, Membership, SessionLoader
from ..metadata import check_resource, metadata_document, metadata_url_for, resource_for
from ..tokens import TokenVerifier
from ..viewer_context import ViewerContextVerifier
from .bodies import json_body, request_body
from .cli import scopes_cli
from .guarded import EXTENSION, AppState, RequestGuard, current_access, current_token
from .marks import mark
from .openapi import openapi_security
from .proxies import current_app_object, current_request
from .resource_tokens import current_resource_token, resource_token_required
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


class ResourceServer(RequestGuard):
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

    ``actors`` (a :class:`policy.Actors`) caps what each agent acting for a person may do
    (RFC 8693: a token whose ``act`` names it); without it a delegated token is treated as any
    other. ``current_access.actor`` is the current actor (None when the person acts directly).
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
        actors: Actors | None = None,
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
        self.actors = actors  # the ceilings of actors acting for people (RFC 8693); see Guard
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
            actors=self.actors,
        )
        # Unset, the issuers the verifier accepts tokens from are the authorization servers.
        servers = authorization_servers(config.get("RESOURCE_SERVER_AUTHORIZATION_SERVERS"), self.verifier)
        if resource is not None:
            check_resource(resource, "RESOURCE_SERVER_RESOURCE")
        app.extensions[EXTENSION] = AppState(guard, resource, servers, self)
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
                self._protect_view_class(target, scope_map, org, viewer_context)
                return target
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
            rule = current_request().url_rule  # request.endpoint, without two proxy lookups
            view = current_app_object().view_functions.get(rule.endpoint) if rule is not None else None
            if getattr(view, "_resource_server_protected", False):
                return None
            return self._check(compiled, org)

        blueprint.before_request(check_blueprint_view)

    def public(self, view: F) -> F:
        """Declare a view public on purpose (``/health``, ``/login``): ``flask scopes check`` then
        accepts it unprotected, and OpenAPI marks it ``security: []``. For views you do not write
        yourself, list their endpoint names in ``RESOURCE_SERVER_PUBLIC_ENDPOINTS``."""
        mark(view, public=True)
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

        app = app or current_app_object()
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
    ) -> None:
        """Protect every method of ``cls`` (through its ``decorators``), in place."""
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

    def _wrap(self, view: F, compiled: ScopeMap, org: str | None, viewer_context: bool = False) -> F:
        is_async = inspect.iscoroutinefunction(view)  # decided once, not per request

        @functools.wraps(view)
        def protected(*args: Any, **kwargs: Any) -> Any:
            outcome = self._outcome(compiled, org, viewer_context)
            if type(outcome) is not Granted and outcome is not None:
                return denial_response(outcome) if type(outcome) is Denial else outcome
            if is_async:
                return current_app_object().ensure_sync(view)(*args, **kwargs)
            return view(*args, **kwargs)

        mark(protected, protected=True, scope_map=compiled, org=org)
        # mypy's idiom for a decorator that keeps the view's type: the wrapper takes the view's
        # arguments and returns its answer, or a refusal, which Flask sends alike.
        return cast(F, protected)

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


def _bad_body(error: BodyError) -> Response:
    return denial_response(Denial(400, "invalid_request", error.description, None))
