"""The agent endpoints as DRF views: agents mint capability tokens, people approve write scopes.

``POST <prefix>/agent-token``      any authenticated member → a de-escalated capability token
``POST <prefix>/agent-approvals``  a first-party session only → approve scopes for one session

Mounted under a prefix that names the org (:func:`resource_server.django.urls.agent_urls`). Both
take JSON only (a cross-site form cannot send it without a CORS preflight) and act only on POST;
a bearer or capability token can never approve anything, so an agent cannot approve itself; a
session's approval is CSRF-checked by DRF's ``SessionAuthentication``. The answers are those of
:mod:`resource_server.agent_endpoints`, every adapter's.
"""

from __future__ import annotations

from typing import Any, NoReturn

from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import agent_endpoints
from ..agent_endpoints import UNAVAILABLE, Answer
from ..bodies import BodyError
from ..capability import CapabilityIssuer
from ..guard import Granted
from ..tokens.errors import VerificationUnavailable
from .conf import get_resource_server
from .requests import json_body
from .rest_framework import BearerTokenAuthentication, OrgMemberPermission, refuse
from .server import OUTCOME

__all__ = ["AgentApprovalView", "AgentTokenView"]


def _response(answer: Answer) -> Response:
    body = answer.body
    if answer.status >= 400:  # a refusal: DRF's detail beside RFC 6750's error, as every refusal here
        body = {"detail": body.get("error_description", ""), **body}
    return Response(body, status=answer.status)


class _AgentView(APIView):
    authentication_classes = (BearerTokenAuthentication, SessionAuthentication)
    permission_classes = (OrgMemberPermission,)
    renderer_classes = (JSONRenderer,)
    http_method_names = ("post", "options")
    org_url_kwarg = "org"

    def _member_json(self, request: Request) -> tuple[dict[str, Any], Granted] | Response:
        granted = request._request.__dict__[OUTCOME]  # OrgMemberPermission admitted the caller
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            return _response(agent_endpoints.not_json)
        try:
            # Bounded and strict: size, nesting depth, duplicate members (DRF's JSONParser would
            # let a body nested 1,000 deep raise RecursionError, a 500).
            return json_body(request._request), granted
        except BodyError as exc:
            return _response(agent_endpoints.error(400, "invalid_request", exc.description))

    def _unavailable(self, request: Request, error: VerificationUnavailable) -> NoReturn:
        refuse(request, get_resource_server().guard.refusals.unavailable(error, UNAVAILABLE))

    def _misconfigured(self, request: Request, argument: str) -> NoReturn:
        """A view mounted without what it needs (``agent_urls`` always gives it): the 403 of a
        misconfigured route, logged, never a 500."""
        name = type(self).__name__
        refuse(request, get_resource_server().forbidden(f"{name}.as_view() needs {argument}"))


class AgentTokenView(_AgentView):
    """Mint a capability token for the caller's access (``issuer``: a ``CapabilityIssuer``)."""

    issuer: CapabilityIssuer | None = None

    def post(self, request: Request, **kwargs: Any) -> Response:
        checked = self._member_json(request)
        if isinstance(checked, Response):
            return checked
        body, granted = checked
        if self.issuer is None:
            self._misconfigured(request, "issuer=CapabilityIssuer(...)")
        try:
            return _response(agent_endpoints.mint(self.issuer, granted, body))
        except VerificationUnavailable as exc:  # the approvals cannot be read now
            self._unavailable(request, exc)


class AgentApprovalView(_AgentView):
    """Approve write scopes for one agent session (``grants``: a grants store)."""

    grants: Any = None
    approval_ttl = 3600

    def post(self, request: Request, **kwargs: Any) -> Response:
        checked = self._member_json(request)
        if isinstance(checked, Response):
            return checked
        body, granted = checked
        if self.grants is None:
            self._misconfigured(request, "grants=, the grants store the capability issuer reads")
        known = get_resource_server().roles.all_scopes
        org = str(granted.access.org)  # the URL's, which OrgMemberPermission read
        try:
            answer = agent_endpoints.approve(
                self.grants, granted, org, body, known_scopes=known, ttl=self.approval_ttl
            )
        except VerificationUnavailable as exc:  # the approval cannot be recorded now
            self._unavailable(request, exc)
        return _response(answer)
