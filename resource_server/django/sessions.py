"""First-party sessions: a request without a token, from a user signed in to this Django site,
acts with the member role's scopes (no token narrows them), as in the other adapters.

CSRF protection for unsafe methods is exactly DRF's ``SessionAuthentication``'s: the views this
adapter protects are exempt from ``CsrfViewMiddleware`` (a token client carries no CSRF token),
so a request that is authenticated by its session cookie is checked here, the same way DRF
checks it (``CsrfViewMiddleware.process_view`` run on the request); never weaker.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

__all__ = ["CsrfRefused", "csrf_failure", "default_session_subject", "session_user"]


class CsrfRefused(Exception):
    """A session request whose CSRF check failed (answered ``403``, as DRF answers it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.description = f"CSRF Failed: {reason}"


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason  # the reason, not the HTML failure page


def _no_response(request: HttpRequest) -> None:  # pragma: no cover (never called)
    return None


def csrf_failure(request: HttpRequest) -> str | None:
    """Why the request fails Django's CSRF check, or None when it passes (safe methods always
    pass): DRF's ``SessionAuthentication.enforce_csrf``, for plain Django views."""
    check = _CSRFCheck(_no_response)
    check.process_request(request)  # sets request.META["CSRF_COOKIE"], which process_view reads
    reason: str | None = check.process_view(request, None, (), {})
    return reason


def default_session_subject(user: Any) -> str | None:
    """The subject ``membership`` is asked about for a signed-in user: ``user.get_username()``
    (the user model's ``USERNAME_FIELD``)."""
    return user.get_username()  # type: ignore[no-any-return]


def session_user(request: HttpRequest) -> Any | None:
    """The active user ``AuthenticationMiddleware`` found for this request's session, or None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not getattr(user, "is_active", True):
        return None
    return user
