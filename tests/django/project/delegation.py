"""The resource server of the delegation and step-up tests (tests/django/test_delegation_and_step_up.py),
in the settings' dict form with ``ACTORS`` as a dotted path; their views are in
:mod:`tests.django.project.delegation_urls`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from resource_server import JWTVerifier
from tests.resource_server import delegation_scenario as scenario
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, jwks

from .keys import SIGNER

#: ``RESOURCE_SERVER`` while those tests run.
RESOURCE_SERVER = {
    "VERIFIER": "tests.django.project.delegation.verifier",
    "ROLES": scenario.ROLES,
    "MEMBERSHIP": "tests.resource_server.delegation_scenario.membership",
    "RESOURCE": "https://api.test",
    "ACTORS": "tests.resource_server.delegation_scenario.ACTORS",
}


def verifier() -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW))


def seen(request: HttpRequest) -> dict[str, Any]:
    """What a view answers: the scenario's view of ``request.access``."""
    return scenario.seen(request.access)  # type: ignore[attr-defined]
