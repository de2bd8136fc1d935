"""First-party sessions: a request without a token, from a user signed in to this Django site,
acts with the member role's scopes (no token narrows them), as in the other adapters.

CSRF protection for unsafe methods is exactly DRF's ``SessionAuthentication``'s: the views this
adapter protects are exempt from ``CsrfViewMiddleware`` (a token client carries no CSRF token),
so a request that is authenticated by its session cookie is checked here, the same way DRF
checks it (``CsrfViewMiddleware.process_view`` run on the request); never weaker.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase, HttpResponseForbidden
from django.middleware.csrf import CsrfViewMiddleware

__all__ = ["CsrfRefused", "csrf_failure", "default_session_subject", "session_user"]


class CsrfRefused(Exception):
    """A session request whose CSRF check failed (answered ``403``, as DRF answers it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.description = f"CSRF Failed: {reason}"


class _CSRFCheck(CsrfViewMiddleware):
    """Django's own check (DRF's ``CSRFCheck``), keeping the reason it refuses a request for
    instead of rendering the failure page."""

    reason = "CSRF verification failed"  # Django's own reason replaces it in _reject

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponseForbidden:
        self.reason = reason
        return HttpResponseForbidden()  # never sent: csrf_failure answers with the reason


def _no_view(request: HttpRequest) -> HttpResponseBase:  # pragma: no cover (never called)
    raise AssertionError("the CSRF check calls no view")


def csrf_failure(request: HttpRequest) -> str | None:
    """Why the request fails Django's CSRF check, or None when it passes (safe methods always
    pass): DRF's ``SessionAuthentication.enforce_csrf``, for plain Django views."""
    check = _CSRFCheck(_no_view)
    check.process_request(request)  # sets request.META["CSRF_COOKIE"], which process_view reads
    # Any response is a refusal (fail closed), and _reject has recorded why.
    return None if check.process_view(request, _no_view, (), {}) is None else check.reason


def default_session_subject(user: Any) -> str | None:
    """The subject ``membership`` is asked about for a signed-in user: ``user.get_username()``
    (the user model's ``USERNAME_FIELD``)."""
    name: str | None = user.get_username()  # the user model's USERNAME_FIELD, text
    return name


def session_user(request: HttpRequest) -> Any | None:
    """The active user ``AuthenticationMiddleware`` found for this request's session, or None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
        return None
    return user
