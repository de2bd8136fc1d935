"""Django REST Framework: ``BearerTokenAuthentication`` and ``ScopeMapPermission``.

::

    class Projects(APIView):
        authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
        permission_classes = [ScopeMapPermission]
        scope_map = {"GET": "project:read", "POST": [["project:write", "team:write"], "project:admin"]}
        org_url_kwarg = "org"          # the URL kwarg naming the organization; None: the route names none

        def get(self, request, org):   # request.auth: the VerifiedToken; request.access: the policy.Access
            ...

Refusals follow the status table: 401 with the exact challenge for missing and invalid
credentials (not DRF's default 403), 403 with ``insufficient_scope`` and the scope to step up to,
403 without a challenge when no token could help, 400 for malformed requests, 503 with
``Retry-After`` when verification cannot happen now. DRF's ``permission_denied()`` builds a fresh
exception without headers (DRF #8263), so these classes never return False: they raise
:class:`Refused`, whose ``auth_header`` and ``wait`` DRF's exception handler turns into
``WWW-Authenticate`` and ``Retry-After``. ``Cache-Control: no-store`` and ``DPoP-Nonce`` are added
through the view's response headers. A project ``EXCEPTION_HANDLER`` that drops
``WWW-Authenticate`` is reported by a system check (``resource_server.W030``).

First-party sessions: list DRF's ``SessionAuthentication`` too. A request it authenticates (CSRF
checked exactly as DRF checks it) acts with the member role's scopes; a request another
authentication class admitted (Basic, another token) counts as one without credentials.
"""

from __future__ import annotations

from typing import Any, NoReturn

try:
    from rest_framework.authentication import BaseAuthentication, SessionAuthentication
    from rest_framework.exceptions import APIException
    from rest_framework.permissions import BasePermission
    from rest_framework.request import Request
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("django", "resource_server.django.rest_framework", exc) from exc

from policy import Access

from ..denials import Denial
from ..guard import Granted
from ..tokens import VerifiedToken
from ..viewer_context import ViewerContext
from .conf import get_resource_server
from .responses import denial_body
from .server import OUTCOME, ResourceServer
from .views import compiled_scope_map, org_of, preflight

__all__ = [
    "BearerTokenAuthentication",
    "OrgMemberPermission",
    "ProtectedRequest",
    "Refused",
    "ScopeMapPermission",
]

#: Headers of a refusal that DRF's exception handler has no attribute for: sent through the
#: view's response headers (``APIView.headers``, which ``finalize_response`` copies).
_VIEW_HEADERS = frozenset({"Cache-Control", "DPoP-Nonce"})


class ProtectedRequest(Request):
    """DRF's ``Request`` in a view these classes protect, as a type checker sees it: annotate a
    handler's ``request`` with it to read what the adapter set
    (``def get(self, request: ProtectedRequest, org: str) -> Response``). DRF passes its own
    ``Request`` all the same; this class only declares the attributes.

    ``access`` is the :class:`policy.Access` and ``viewer_context`` as on
    :class:`~resource_server.django.ProtectedHttpRequest` (DRF's ``Request`` reads them from the
    Django request under it); ``auth`` is the :class:`~resource_server.tokens.VerifiedToken`
    ``BearerTokenAuthentication`` admitted, None for a session or a viewer context (a view that
    lists another token's authentication class gets that class's credentials there instead)."""

    access: Access
    auth: VerifiedToken | None
    viewer_context: ViewerContext | None


class Refused(APIException):
    """A refusal of the status table, as DRF sends exceptions: ``status_code``, ``detail`` (the
    body: ``{"detail", "error", "error_description"}``), ``auth_header`` (the challenge) and
    ``wait`` (``Retry-After``) for DRF's exception handler. ``denial`` is the refusal itself."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(detail=denial_body(denial), code=denial.error)
        self.status_code = denial.status
        self.denial = denial
        self.auth_header = denial.www_authenticate
        self.wait = next((int(value) for name, value in denial.extra_headers if name == "Retry-After"), None)


def refuse(request: Request, denial: Denial) -> NoReturn:
    """Raise ``denial`` as :class:`Refused`, its other headers set on the view's response."""
    view = (request.parser_context or {}).get("view")
    headers = getattr(view, "headers", None)
    if isinstance(headers, dict):
        headers.update((name, value) for name, value in denial.headers if name in _VIEW_HEADERS)
    raise Refused(denial)


def _add_grant_headers(view: Any, granted: Granted) -> None:
    headers = getattr(view, "headers", None)
    if isinstance(headers, dict):
        headers.update(granted.headers)  # a fresh DPoP nonce (RFC 9449 §8.2) on the view's response


class BearerTokenAuthentication(BaseAuthentication):
    """Verifies the ``Authorization`` header (``Bearer``, and ``DPoP`` with its proof when the
    ``ResourceServer`` accepts DPoP) through the shared guard: ``request.auth`` is the
    :class:`~resource_server.tokens.VerifiedToken`, ``request.user`` what ``user_for`` maps its
    subject to (a :class:`~resource_server.django.TokenUser` by default). A request without a
    token is left to the next authentication class; a bad one is refused (401, 400 or 503)."""

    def authenticate(self, request: Request) -> tuple[Any, VerifiedToken] | None:
        http = request._request
        server = get_resource_server()
        earlier = http.__dict__.get(OUTCOME)
        if earlier is not None and isinstance(earlier, Granted) and earlier.token is not None:
            # ResourceServerMiddleware verified this token for this request already (its DPoP
            # proof, if any, is spent): the user it admitted, not a second verification.
            return http.user, earlier.token
        found = server.credential(http)
        if found is None:
            return None
        if isinstance(found, Denial):
            refuse(request, found)
        user = server.user_of(found.token, http)
        if isinstance(user, Denial):
            refuse(request, user)
        return user, found.token

    def authenticate_header(self, request: Request) -> str | None:
        """The challenge of the status table's first row, for 401s DRF raises itself."""
        return get_resource_server().guard.refusals.no_credentials.www_authenticate


class _GuardPermission(BasePermission):
    """Asks the shared guard about the request: the credential ``BearerTokenAuthentication``
    found (or verified here, once, when the view does not list it), else a viewer context or a
    session ``SessionAuthentication`` admitted."""

    def _granted(self, request: Request, view: Any, scope_map: Any) -> bool:
        server = get_resource_server()
        http = request._request
        org = org_of(server, http, getattr(view, "kwargs", None) or {}, getattr(view, "org_url_kwarg", "org"))
        if isinstance(org, Denial):
            refuse(request, server.refused(http, org, None))
        credential = server.credential(http)
        if isinstance(credential, Denial):
            refuse(request, credential)
        # Without a token, the session DRF's SessionAuthentication admitted may stand in; with
        # one, no session is looked at (nor DRF's successful_authenticator read).
        session = _session(server, request) if credential is None else None
        outcome = server.grant(http, credential, scope_map, org, session)
        if isinstance(outcome, Denial):
            refuse(request, outcome)
        if outcome.headers:
            _add_grant_headers(view, outcome)
        return True


def _session(server: ResourceServer, request: Request) -> Any:
    """The subject of the session DRF's ``SessionAuthentication`` admitted (it checked CSRF)."""
    subject_of = server.session_subject
    if subject_of is None or not isinstance(request.successful_authenticator, SessionAuthentication):
        return None
    return lambda: subject_of(request.user)


class ScopeMapPermission(_GuardPermission):
    """Allows a request whose access satisfies the view's ``scope_map`` for its method (any-of
    alternatives, each all-of) in the organization of the URL kwarg ``org_url_kwarg`` (default
    ``"org"``; None: the route names none). Access is the token's scopes intersected with the
    member role's (``membership(subject, org)``), bound to the token's org; ``request.access``
    is the :class:`policy.Access`. A view without a valid ``scope_map``, or whose URL lacks
    its org kwarg, refuses every request (403) and fails the system checks."""

    def has_permission(self, request: Request, view: Any) -> bool:
        try:
            scope_map = compiled_scope_map(type(view))
        except ValueError as exc:
            refuse(request, get_resource_server().forbidden(str(exc)))
        if request._request.method == "OPTIONS" and preflight(request._request, scope_map):
            return True
        return self._granted(request, view, scope_map)


class OrgMemberPermission(_GuardPermission):
    """Allows any member of the URL's organization, with no scope decision (endpoints every
    member may call, such as minting a capability token); ``request.access`` as above."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return self._granted(request, view, None)
