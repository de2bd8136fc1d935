"""``BearerMiddleware``: the same bearer-token checks for any WSGI application.

For APIs that are not Flask apps (or not only): route patterns map to scope maps, and each
request is authenticated and authorized before the wrapped application sees it. The granted
:class:`policy.Access` and :class:`~resource_server.tokens.VerifiedToken` are put in the WSGI
environ under ``resource_server.access`` and ``resource_server.token``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from policy import Roles, ScopeMap

from .credentials import MAX_FORM_INSPECTED, names_access_token
from .guard import Denial, Guard, Membership
from .tokens import JWTVerifier

__all__ = ["ACCESS_KEY", "TOKEN_KEY", "BearerMiddleware"]

ACCESS_KEY = "resource_server.access"
TOKEN_KEY = "resource_server.token"
_PUBLIC = "public"
_UNCOVERED = Denial(403, "forbidden", "no access policy covers this path", None)
_FORM = "application/x-www-form-urlencoded"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BearerMiddleware:
    """Wrap ``app`` so that every path matching one of ``routes`` (werkzeug rule syntax, e.g.
    ``"/orgs/<org>/projects/<int:id>"``) needs a bearer token that satisfies its scope map.

    Paths in ``public`` pass through untouched. Every other path is refused with ``403``: an API
    behind this middleware is closed by default, so a route nobody listed is not silently open.
    ``org`` names the URL variable holding the organization.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        verifier: JWTVerifier,
        roles: Roles,
        membership: Membership,
        routes: Mapping[str, ScopeMap | Mapping[str, Any]],
        public: Iterable[str] = (),
        org: str = "org",
        realm: str = "api",
        resource_metadata: str | None = None,
    ) -> None:
        self.app = app
        self.org = org
        self.guard = Guard(
            verifier=verifier,
            roles=roles,
            membership=membership,
            realm=realm,
            resource_metadata=resource_metadata,
        )
        self.scope_maps = [m if isinstance(m, ScopeMap) else ScopeMap(m) for m in routes.values()]
        rules = [Rule(pattern, endpoint=index) for index, pattern in enumerate(routes)]
        rules += [Rule(pattern, endpoint=_PUBLIC) for pattern in public]
        # No slash redirects: a middleware must answer or pass, never redirect on the app's behalf.
        self._map = Map(rules, strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            endpoint, args = self._map.bind_to_environ(environ).match()
        except HTTPException:
            return _send(_UNCOVERED, start_response)
        if endpoint == _PUBLIC:
            return self.app(environ, start_response)
        scope_map = self.scope_maps[endpoint]
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if (
            method == "OPTIONS"
            and "OPTIONS" not in scope_map.methods
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            # A CORS preflight (Fetch standard) carries no credentials: the app answers it. Any
            # other OPTIONS is checked like every method, so no view runs unauthenticated.
            return self.app(environ, start_response)
        org = args.get(self.org)
        outcome = self.guard.authorize(
            authorization=environ.get("HTTP_AUTHORIZATION"),
            token_elsewhere=_token_elsewhere(environ),
            method=method,
            scope_map=scope_map,
            org=None if org is None else str(org),
        )
        if isinstance(outcome, Denial):
            return _send(outcome, start_response)
        environ[ACCESS_KEY] = outcome.access
        environ[TOKEN_KEY] = outcome.token
        return self.app(environ, start_response)


def _send(denial: Denial, start_response: Callable[..., Any]) -> list[bytes]:
    body = denial.body
    status = HTTPStatus(denial.status)
    start_response(f"{status.value} {status.phrase}", [*denial.headers, ("Content-Length", str(len(body)))])
    return [body]


def _token_elsewhere(environ: dict[str, Any]) -> bool:
    """Whether an ``access_token`` came in the query (RFC 6750 §2.3) or a form body (§2.2).

    Up to :data:`MAX_FORM_INSPECTED` bytes of an urlencoded body are read and put back in front
    of the rest of the stream, so the application still receives the body whole."""
    query = environ.get("QUERY_STRING", "")
    if query and names_access_token(query):
        return True
    if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != _FORM:
        return False
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    if length <= 0 and not environ.get("wsgi.input_terminated"):
        return False  # no length and no end-of-input guarantee: reading could block
    stream = environ["wsgi.input"]
    head = stream.read(min(length, MAX_FORM_INSPECTED + 1) if length > 0 else MAX_FORM_INSPECTED + 1)
    environ["wsgi.input"] = io.BufferedReader(_Prefixed(head, stream))
    return len(head) <= MAX_FORM_INSPECTED and names_access_token(head)


class _Prefixed(io.RawIOBase):
    """The bytes already read, then the rest of the original input stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._head.readinto(buffer)
        if count:
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
