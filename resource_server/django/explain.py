"""``manage.py scopes explain``: a request run through the server's own code, the view never called,
so what it prints is what the server sends. A DRF view is set up as DRF sets it up and runs
``initial()`` (authentication, permissions, throttles) and, on a refusal, the project's exception
handler and ``finalize_response``; a plain view runs the check its decorator, mixin or
``ResourceServerMiddleware`` runs. The request carries the token and no session."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.http import HttpRequest
from django.test import RequestFactory
from django.urls import Resolver404, resolve

from ..denials import Denial
from ..guard import Granted
from ..tooling import check_explained_token, explanation
from .conf import Config
from .responses import denial_response
from .routes import describe, patterns
from .server import OUTCOME
from .views import org_of

__all__ = ["ExplainError", "explain"]


class ExplainError(ValueError):
    """What cannot be explained (no route, an unprotected route, a token no header can carry)."""


def explain(config: Config, *, method: str, path: str, token: str) -> dict[str, Any]:
    """The status, ``WWW-Authenticate`` and body the server answers ``method path`` with this
    token, and the reason (never sent)."""
    method = method.upper()
    try:
        check_explained_token(token)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
    target = urlsplit(path)
    try:
        match = resolve(target.path)
    except Resolver404:
        raise ExplainError(f"{method} {path} matches no route (404)") from None
    pattern = next(
        (p for p in patterns() if p.callback is match.func and p.route == match.route),
        None,
    )
    route, protection = describe(pattern, config) if pattern is not None else (None, None)
    if route is None or protection is None or route.scope_map is None or route.kind != "scope map":
        raise ExplainError(f"{path} is not protected by a scope map")
    request = RequestFactory().generic(
        method, path, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/json"
    )
    request.resolver_match = match
    if apps.is_installed("django.contrib.auth"):
        # What AuthenticationMiddleware makes of a request without a session. A project without
        # django.contrib.auth (whose models cannot even be imported) has no sessions: the
        # request then carries no user, and the token alone is explained.
        from django.contrib.auth.models import AnonymousUser

        request.user = AnonymousUser()
    if protection.drf_view is not None:  # the DRF view protects itself: run DRF's own steps
        return _drf(match.func, request, match.kwargs, method, route.scope_map, config.server.guard.clock)
    org = org_of(config.server, request, match.kwargs, route.org)
    outcome = org if isinstance(org, Denial) else config.server.authorize(request, route.scope_map, org)
    return explanation(
        outcome, method=method, scope_map=route.scope_map, response=_sent, now=config.server.guard.clock()
    )


def _sent(denial: Denial) -> tuple[int, str | None, Any]:
    response = denial_response(denial)
    return response.status_code, response.get("WWW-Authenticate"), json.loads(response.content)


def _drf(
    callback: Any,
    request: HttpRequest,
    kwargs: dict[str, Any],
    method: str,
    scope_map: Any,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """``APIView.dispatch`` up to the handler: set-up, ``initial()``, and for a refusal the
    project's exception handler and ``finalize_response``, as DRF runs them."""
    view = callback.cls(**getattr(callback, "initkwargs", {}))
    actions = getattr(callback, "actions", None)
    if actions:  # a viewset: its actions bound to methods, as ViewSetMixin.as_view binds them
        view.action_map = dict(actions)
        for verb, action in actions.items():
            setattr(view, verb, getattr(view, action))
    view.setup(request, **kwargs)
    view.args, view.kwargs = (), kwargs
    drf_request = view.initialize_request(request, **kwargs)
    view.request = drf_request
    view.headers = view.default_response_headers
    try:
        view.initial(drf_request)
    except Exception as exc:
        response = view.finalize_response(drf_request, view.handle_exception(exc))
        response.render()
        outcome = request.__dict__.get(OUTCOME)
        denial = (
            outcome if isinstance(outcome, Denial) else Denial(response.status_code, "", "", None, str(exc))
        )
        body = json.loads(response.content) if response.content else None
        sent = (response.status_code, response.get("WWW-Authenticate"), body)
        return explanation(denial, method=method, scope_map=scope_map, response=lambda _: sent)
    outcome = request.__dict__.get(OUTCOME)
    if not isinstance(outcome, Granted):  # another permission class let it through alone
        raise ExplainError("the view's permission classes decide without the scope map")
    return explanation(outcome, method=method, scope_map=scope_map, now=clock())
