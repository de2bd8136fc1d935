"""Resource tokens in Flask (:mod:`resource_server.resource_tokens`): a route a browser loads by
URL, read with a short-lived token bound to one resource prefix, opted into per route."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from werkzeug.local import LocalProxy

from ..denials import Denial
from ..resource_tokens import ResourceToken, ResourceTokenVerifier
from ..tokens.jws import InvalidToken
from .marks import mark
from .responses import denial_response

__all__ = ["current_resource_token", "resource_token_required"]

F = TypeVar("F", bound=Callable[..., Any])


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

        mark(protected, resource_token=True, org=org)  # for `flask scopes check`
        # mypy's idiom for a decorator that keeps the view's type: the wrapper takes the view's
        # arguments and returns its answer, or a refusal, which Flask sends alike.
        return cast(F, protected)

    return decorate


def _resource_token() -> ResourceToken:
    grant: ResourceToken | None = g.get("_resource_server_resource_token")
    if grant is None:
        raise RuntimeError("current_resource_token exists only inside a view using resource_token_required")
    return grant


#: The :class:`~resource_server.resource_tokens.ResourceToken` of the current request (a proxy,
#: typed as what it stands for, as Flask types its own).
current_resource_token: ResourceToken = cast(ResourceToken, LocalProxy(_resource_token))
