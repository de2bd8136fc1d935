"""What ``RESOURCE_SERVER`` names by dotted path: the verifier, membership and the token's user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from resource_server import JWTVerifier
from resource_server.tokens import VerifiedToken

from .models import Membership


def verifier() -> JWTVerifier:
    """RFC 9068 tokens of the authorization server, its keys fetched from its JWK Set when the
    first token arrives (and cached, refetched on an unknown ``kid``)."""
    return JWTVerifier(
        issuer=settings.ISSUER,
        audience=settings.RESOURCE,
        jwks_uri=f"{settings.ISSUER}/.well-known/jwks.json",
    )


def membership(subject: str, org: str | None) -> str | None:
    """The subject's role in the organization the URL names, or None: one indexed query."""
    return (
        Membership.objects.filter(user__username=subject, organization__slug=org)
        .values_list("role", flat=True)
        .first()
    )


def user_for(token: VerifiedToken) -> Any:
    """``request.user``: the account whose username is the token's subject; None (a 401) for a
    subject with no account here. Never creates one."""
    return get_user_model().objects.filter(username=token.subject, is_active=True).first()
