"""The test project's data: organizations' projects, and who holds which role in which org."""

from __future__ import annotations

from django.db import models


class Membership(models.Model):
    """The role a subject (a token's ``sub``, a user's username) holds in an organization."""

    subject = models.CharField(max_length=255)
    org = models.CharField(max_length=255)
    role = models.CharField(max_length=64)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("subject", "org"), name="one_role_per_org"),)


class Project(models.Model):
    org = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
