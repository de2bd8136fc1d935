"""The example's data: acme and globex, the demo authorization server's people (the same
usernames, so a token's subject finds its account) with their roles, and a project each."""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Membership, Organization, Project

ORGANIZATIONS = {"acme": "Acme Corporation", "globex": "Globex"}
PROJECTS = {"acme": ["website"], "globex": ["billing"]}


@transaction.atomic
def seed(memberships: Mapping[tuple[str, str], str]) -> None:
    """``memberships`` maps (username, org slug) to a role; accounts are made without a usable
    password: people sign in at the authorization server, not here."""
    organizations = {
        slug: Organization.objects.create(slug=slug, name=name) for slug, name in ORGANIZATIONS.items()
    }
    users = {
        username: get_user_model().objects.create_user(username)  # no usable password
        for username in sorted({username for username, _ in memberships})
    }
    for (username, slug), role in memberships.items():
        Membership.objects.create(user=users[username], organization=organizations[slug], role=role)
    for slug, names in PROJECTS.items():
        for name in names:
            Project.objects.create(organization=organizations[slug], name=name)
