"""The test project's ResourceServer: tokens from the test issuer's key, roles, membership from the
ORM, users from the ORM. ``RESOURCE_SERVER`` names :func:`build`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from policy import Roles
from resource_server import JWTVerifier
from resource_server.capability import CapabilityIssuer
from resource_server.django import ResourceServer
from resource_server.django.grants import DjangoGrantStore
from resource_server.tokens import VerifiedToken
from resource_server.viewer_context import ViewerContextVerifier
from tests.support import AUDIENCE, ISSUER, FakeClock, jwks

from .keys import CAPABILITY_KEY, SIGNER, VIEWER_KEYS

#: Every clock of the project: tokens are minted at tests.support.NOW and never expire on their own.
CLOCK = FakeClock()
ROLES = Roles(
    {
        "member": ["project:read"],
        "admin": ["project:read", "project:write", "team:write", "report:read"],
    }
)
RESOURCE = "https://api.test"
GRANTS = DjangoGrantStore(clock=CLOCK)
CAPABILITIES = CapabilityIssuer(
    keys={"cap-1": CAPABILITY_KEY},
    issuer=RESOURCE,
    readonly_scopes=["project:read"],
    grants=GRANTS,
    clock=CLOCK,
)

#: The same, over a grants database that never answers.
UNREACHABLE_GRANTS = DjangoGrantStore(using="unreachable", clock=CLOCK)
UNREACHABLE_CAPABILITIES = CapabilityIssuer(
    keys={"cap-1": CAPABILITY_KEY},
    issuer=RESOURCE,
    readonly_scopes=["project:read"],
    grants=UNREACHABLE_GRANTS,
    clock=CLOCK,
)


def membership(subject: str, org: str | None) -> str | None:
    """The member's role, from the database (a sync ORM query: async views must not run it on
    the event loop, and the adapter does not)."""
    from .models import Membership

    return Membership.objects.filter(subject=subject, org=org).values_list("role", flat=True).first()


def user_for(token: VerifiedToken) -> Any:
    """The project's user for the token's subject; None (the token is refused) for a subject
    with no account."""
    return get_user_model().objects.filter(username=token.subject).first()


def verifier() -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=CLOCK)


def viewer_contexts() -> ViewerContextVerifier:
    return ViewerContextVerifier(keys=VIEWER_KEYS, audience=RESOURCE, issuers=["gateway"], clock=CLOCK)


def build(**overrides: Any) -> ResourceServer:
    arguments: dict[str, Any] = {
        "verifier": verifier(),
        "roles": ROLES,
        "membership": membership,
        "resource": RESOURCE,
        "capabilities": CAPABILITIES.verifier(),
        "viewer_context": viewer_contexts(),
        "user_for": user_for,
    }
    return ResourceServer(**{**arguments, **overrides})
