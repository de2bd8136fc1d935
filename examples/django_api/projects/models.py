"""Organizations, who is a member of which in which role, and each organization's projects."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Organization(models.Model):
    slug = models.SlugField(unique=True)  # the URL's <org>
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in an organization: the API's own knowledge, never a token's claim."""

    ROLES = (("member", "member"), ("admin", "admin"), ("owner", "owner"))

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ROLES)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("user", "organization"), name="one_role_per_org"),)

    def __str__(self) -> str:
        return f"{self.user} in {self.organization}: {self.role}"


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.name
